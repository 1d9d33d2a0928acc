// Per-address rate limit for BEP 15 connect requests: a flood of connects from one address (each
// answered with a 16-byte connection id) is cut down to a steady trickle, without a lock and
// without memory that grows with the number of addresses.
#pragma once

#include "tracker/types.hpp"

#include <array>
#include <cstdint>
#include <vector>

namespace chihaya::udp {

// A token bucket per address, in a fixed direct-mapped table: an address shares its slot with
// whatever else hashes there, so a flood from many addresses can only make a slot's owner change
// (a fresh bucket for the newcomer), never grow memory. IPv6 addresses count per /64, since one
// host holds a whole /64. The key is keyed per process, so nobody can aim two addresses at one
// slot on purpose.
//
// THREADS: one per worker, used only on its thread. The kernel spreads one address's packets over
// the workers by source port, so an address may get up to workers x rate in all.
class ConnectLimiter {
public:
    // `per_second` sustained, `burst` at once; per_second == 0 disables the limit.
    ConnectLimiter(uint32_t per_second, uint32_t burst, size_t slots = 4096);

    // Live reload, on the owning thread: the next admit uses the new rate and burst. Buckets keep
    // their tokens, cut to the new burst.
    void configure(uint32_t per_second, uint32_t burst);

    // True when a connect from `source` at `now_ms` may be answered (and takes its token).
    bool admit(const Endpoint& source, uint64_t now_ms);

private:
    struct Bucket {
        uint64_t key = 0;       // the address's keyed hash; 0 = unused
        uint64_t updated_ms = 0;
        uint32_t tokens_milli = 0;  // tokens x 1000
    };
    uint64_t key_of(const Endpoint& source) const;

    uint32_t per_second_;
    uint32_t burst_;
    uint64_t seed_;
    size_t slots_;
    std::vector<Bucket> buckets_;  // empty while there is no limit
};

}  // namespace chihaya::udp
