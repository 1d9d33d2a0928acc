// address_counts.hpp: peers per (swarm, family, address), counted without a scan of the swarm.
#pragma once

#include "peer_list.hpp"

#include <chihaya/abi.h>

#include <cstdint>
#include <cstring>

namespace chihaya::memory {

// max_peers_per_address (abi.h, 2.3) asks how many peers one address already has in one swarm.
// Scanning the swarm for it would make an announce O(peers) in a million-peer swarm, and a count
// per peer record would cost bytes per peer. Instead each shard owns a fixed table of 16-bit
// counters indexed by a keyed hash of (info_hash, family, address): +1 when a peer joins a swarm,
// -1 when it leaves it (stopped, expired, dropped); the rest of the swarm is never touched.
//
// Several (swarm, address) pairs may share a counter. A counter then holds the sum of theirs:
// never less than the truth, which abi.h allows (an address may be refused early, never admitted
// past its limit). A counter that reaches 0xffff sticks there rather than wrap or drift below the
// truth. The hash is keyed per process (the swarm seed is SipHash of the info_hash under the
// cache's random key), so nobody can aim a flood at another address's counter. Sizing: the
// default 4,194,304 counters (8 MiB, all shards together) hold 5,000,000 peers at about one per
// counter, where a false refusal at a limit of 64 needs some 60 unrelated pairs in one counter.
//
// Not thread-safe: a shard's counters are guarded by its mutex, like its swarms.
struct AddressTally {
    uint16_t* counts = nullptr;  // the shard's counters; null: nothing is counted (tests)
    uint32_t mask = 0;           // counters - 1 (a power of two)
    uint64_t seed = 0;           // the swarm's: keyed hash of its info_hash

    static constexpr uint16_t kStuck = 0xffff;

    template <class Peer>
    uint16_t* counter(const uint8_t* endpoint) const noexcept {
        constexpr size_t addr_bytes = Peer::endpoint_bytes - 2;  // the address, not the port
        uint64_t h = seed ^ uint64_t(addr_bytes);
        for (size_t i = 0; i < addr_bytes; i += 8) {
            uint64_t w = 0;
            std::memcpy(&w, endpoint + i, addr_bytes - i < 8 ? addr_bytes - i : 8);
            h = mix64(h ^ w);
        }
        return counts + (uint32_t(h) & mask);
    }

    template <class Peer>
    uint32_t peers_of(const uint8_t* endpoint) const noexcept {
        return counts ? *counter<Peer>(endpoint) : 0;
    }
    template <class Peer>
    void joined(const uint8_t* endpoint) const noexcept {
        if (!counts) return;
        uint16_t* c = counter<Peer>(endpoint);
        if (*c != kStuck) ++*c;
    }
    template <class Peer>
    void left(const uint8_t* endpoint) const noexcept {
        if (!counts) return;
        uint16_t* c = counter<Peer>(endpoint);
        if (*c != kStuck && *c != 0) --*c;
    }
};

}  // namespace chihaya::memory
