// [limits] new_torrents_per_address: how many swarms one client address may create per minute.
#pragma once

#include "tracker/types.hpp"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace chihaya {

// Token buckets of new swarms, in a fixed table of hashed slots shared by every worker (and by a
// driver's thread, which reports a created swarm for Redis): no allocation after construction,
// no lock, 8 bytes per slot whatever the number of addresses. A bucket holds `per_minute` tokens
// and refills at `per_minute` a minute; an announce that may create a swarm needs a token
// (may_create), and one that did create one takes it (charge). Announces in flight at once may
// overshoot by one each: the store is told NO_NEW_SWARM only once the bucket is seen empty.
//
// Slots are not owned: every address that hashes to a slot shares its bucket (IPv6 per /64,
// since one host holds a whole /64). A flood from one address thus only slows the addresses that
// share its slot (1 in 65,536 of them), never lets anyone past the rate; the hash is keyed per
// process so nobody can aim at another address's slot. A bucket is stored as its deficit (tokens
// missing, in thousandths) and the low 32 bits of the millisecond it was last charged, so an
// untouched (zero) slot is a full bucket and one CAS updates it.
class NewSwarmRate {
public:
    // 512 KiB of calloc'd zeros (fresh pages from the kernel): RAM only as addresses touch them.
    // Storing zeros into std::atomic slots made all of it resident at start, 1 byte a peer of
    // bench/run's whole-process RSS at 500,000 peers.
    static constexpr size_t kSlots = 65536;

    NewSwarmRate();
    explicit NewSwarmRate(uint64_t seed);  // a fixed key (tests)

    // Whether `client` has a token left at `now_ms` under a rate of `per_minute` (0: no limit).
    bool may_create(const Endpoint& client, uint64_t now_ms, uint32_t per_minute) const noexcept;
    // `client` created a swarm: takes one token (an empty bucket stays empty).
    void charge(const Endpoint& client, uint64_t now_ms, uint32_t per_minute) noexcept;

private:
    std::atomic_ref<uint64_t> slot(const Endpoint& client) const noexcept;

    uint64_t seed_;
    struct Free {
        void operator()(uint64_t* p) const noexcept { std::free(p); }
    };
    std::unique_ptr<uint64_t[], Free> slots_;
};

}  // namespace chihaya
