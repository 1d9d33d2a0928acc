// Open HTTP connections per client address, shared by every worker: one address cannot take the
// connection slots everyone else needs.
#pragma once

#include "tracker/types.hpp"

#include <array>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace chihaya::http {

// Threat: max_connections is a per-worker budget of descriptors. Without a per-address share,
// one client holding idle keep-alive connections (or trickling heads, within request_timeout)
// fills it and every other client is shed at accept. The kernel spreads one address's
// connections over all workers (SO_REUSEPORT), so the count must be process-wide.
//
// An IPv6 client is counted by its /64: a single host is usually handed a whole /64, and
// counting /128s would give it 2^64 budgets. IPv4 is counted per address.
//
// Accept-time only (never per request), so one mutex is enough; the table holds one entry per
// address with an open connection, so it is bounded by the connections themselves. Connections
// are counted also while there is no limit, so that a limit set by a live reload counts the
// connections already open.
class ConnectionLimits {
public:
    // `per_address` = 0: no limit.
    explicit ConnectionLimits(uint32_t per_address);

    // Live reload (any thread): the next try_open uses it. Connections already open stay open,
    // also when they now exceed it; the address gets no new one until it is below.
    void set_per_address(uint32_t per_address);

    // True and counted when `client` may open one more connection; false when it holds its share.
    bool try_open(const Endpoint& client);
    // Each successful try_open is matched by exactly one close.
    void close(const Endpoint& client);
    // Connections counted for `client`'s address (tests, diagnostics).
    uint32_t open(const Endpoint& client) const;

private:
    using Key = std::array<uint8_t, 17>;  // family, then 4 (IPv4) or 8 (IPv6 /64) address bytes
    struct KeyHash {
        uint64_t seed;  // random per process: nobody picks addresses that share one bucket chain
        size_t operator()(const Key& k) const noexcept;
    };
    static Key key_of(const Endpoint& client);

    mutable std::mutex mutex_;
    uint32_t per_address_;  // guarded by mutex_
    std::unordered_map<Key, uint32_t, KeyHash> open_;
};

}  // namespace chihaya::http
