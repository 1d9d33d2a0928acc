// address_counts.hpp: peers per (swarm, family, address), counted without a scan of the swarm.
#pragma once

#include "peer_list.hpp"

#include <chihaya/abi.h>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace chihaya::memory {

// max_peers_per_address (abi.h, 2.3) asks how many peers one address already has in one swarm.
// Scanning the swarm for it would make an announce O(peers) in a million-peer swarm, and a count
// per peer record would cost bytes per peer. Instead the cache owns one table of 32-bit counters
// indexed by a keyed hash of (info_hash, family, address): +1 when a peer joins a swarm, -1 when
// it leaves it (stopped, expired, dropped); the rest of the swarm is never touched.
//
// Only big families are counted there: the peers of a family with an index (kIndexFrom peers or
// more, peer_list.hpp) are in the table exactly while it has one, and a smaller family is scanned
// (fewer than kIndexFrom records, which the announce's find() has just read anyway). The table's
// pages are then touched only by big swarms: counting every peer touched all 16 MiB of the old
// default size as soon as a few hundred thousand peers were spread over it, 33 bytes a peer of
// RSS at bench/run's 500,000 peers in swarms of five.
//
// An address is an IPv4 address or an IPv6 /64 (its first 8 bytes): one host holds a whole /64,
// so counting IPv6 addresses whole would give it 2^64 places. The new-swarm rate and the UDP
// connect limiter group IPv6 the same way.
//
// One table for the whole cache, not a slice per shard: a swarm lives in one shard, so a slice
// per shard would crowd a big swarm's addresses into 1/shards of the table (a 300,000-address
// swarm in 4,096 counters: 73 a counter, so false refusals). Several (swarm, address) pairs may
// share a counter, from any shards, so counters are atomics (relaxed: nothing else is ordered by
// them). A counter holds exactly the sum of its pairs' counted peers: every join and leave of
// one pair runs under its swarm's shard lock and moves it by one, and a family gaining or losing
// its index moves all its peers in or out under that lock too. So it is never less
// than the truth, which abi.h allows (an address may be refused early, never admitted past its
// limit), and 32 bits cannot saturate (every peer of the store in one counter still fits). The
// hash is keyed per process (the swarm seed is SipHash of the info_hash under the cache's random
// key), so nobody can aim a flood at another address's counter. Sizing: the default 1,048,576
// counters (4 MiB, RAM only as pages are touched) would hold the default 5,000,000 peers at
// about five a counter even if every one were in a big swarm, where a false refusal at a limit
// of 64 needs some 60 unrelated pairs in one counter (about 1e-40 for a given counter). It was
// 16 MiB while every peer was counted; all of it became resident (see above).
struct AddressTally {
    uint32_t* counts = nullptr;  // the cache's counters; null: nothing is counted (tests)
    uint32_t mask = 0;           // counters - 1 (a power of two)
    uint64_t seed = 0;           // the swarm's: keyed hash of its info_hash

    // The bytes of an endpoint that name its address as counted: IPv4 whole, IPv6 its /64.
    template <class Peer>
    static constexpr size_t counted_bytes = Peer::endpoint_bytes - 2 > 8 ? 8 : Peer::endpoint_bytes - 2;

    template <class Peer>
    std::atomic_ref<uint32_t> counter(const uint8_t* endpoint) const noexcept {
        constexpr size_t addr_bytes = counted_bytes<Peer>;
        static_assert(addr_bytes <= 8);
        uint64_t w = 0;
        std::memcpy(&w, endpoint, addr_bytes);
        const uint64_t h = mix64(mix64(seed ^ uint64_t(Peer::endpoint_bytes)) ^ w);
        return std::atomic_ref<uint32_t>(counts[uint32_t(h) & mask]);
    }

    template <class Peer>
    uint32_t peers_of(const uint8_t* endpoint) const noexcept {
        return counts ? counter<Peer>(endpoint).load(std::memory_order_relaxed) : 0;
    }
    template <class Peer>
    void joined(const uint8_t* endpoint) const noexcept {
        if (counts) counter<Peer>(endpoint).fetch_add(1, std::memory_order_relaxed);
    }
    template <class Peer>
    void left(const uint8_t* endpoint) const noexcept {
        if (counts) counter<Peer>(endpoint).fetch_sub(1, std::memory_order_relaxed);
    }

    // The peers of `endpoint`'s address in `family`: the table's count for a big family, a scan
    // of a small one. 0 when nothing is counted (tests).
    template <class List>
    uint32_t peers_in(const List& family, const uint8_t* endpoint) const noexcept {
        using Peer = typename List::peer_type;
        if (!counts) return 0;
        if (family.indexed()) return peers_of<Peer>(endpoint);
        uint32_t n = 0;
        for (uint32_t i = 0; i < family.size(); ++i)
            n += std::memcmp(family[i].endpoint, endpoint, counted_bytes<Peer>) == 0;
        return n;
    }
    // A peer joined or left `family`, which had an index before the change (`was_indexed`): its
    // count moves if the family was counted, and a family that gained or lost its index with
    // the change moves all its peers into or out of the table. `endpoint` null: only the latter.
    template <class List>
    void changed(const List& family, bool was_indexed, const uint8_t* endpoint, bool joined_now) const noexcept {
        using Peer = typename List::peer_type;
        if (!counts) return;
        if (was_indexed && endpoint) joined_now ? joined<Peer>(endpoint) : left<Peer>(endpoint);
        if (was_indexed == family.indexed()) return;
        for (uint32_t i = 0; i < family.size(); ++i)
            was_indexed ? left<Peer>(family[i].endpoint) : joined<Peer>(family[i].endpoint);
    }
};

}  // namespace chihaya::memory
