// swarm.hpp: one torrent's peers and counts, and the announce rules applied to them.
#pragma once

#include "address_counts.hpp"
#include "peer_list.hpp"
#include "rng.hpp"

#include <chihaya/abi.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

namespace chihaya::memory {

// Counts as scrape and announce report them: both families together.
struct SwarmCounts {
    uint32_t complete = 0;
    uint32_t incomplete = 0;
    uint32_t downloaded = 0;
};

// Seeders and leechers of each family: what the shard's stats tally moves by (memory_cache.hpp).
struct FamilyCounts {
    uint32_t seeders_v4 = 0, leechers_v4 = 0, seeders_v6 = 0, leechers_v6 = 0;
};

// What one announce may add, as MemoryCache decided it from the request's budgets (abi.h 2.3)
// and the store's totals. The default admits everything and counts nothing (tests).
struct PeerAdmission {
    AddressTally tally;            // the cache's per-address counters, seeded for this swarm
    // The store's peers (read only when a new peer would join) and its budget: a new peer while
    // it holds max_peers is refused (FULL); 0 = no limit.
    const std::atomic<uint64_t>* peer_total = nullptr;
    uint64_t max_peers = 0;
    uint32_t max_per_address = 0;  // peers of one (family, address) in this swarm; 0 = no limit
};

// What a swarm keeps besides its peers, at the start of its PeerBlock (the block's Prefix): one
// malloc'd block holds the swarm's identity, its counts and both families' peers, and the shard's
// table holds one pointer per swarm (swarm_table.hpp). Before, a std::unordered_map node (next
// pointer, info_hash, a 24-byte Swarm: 64-byte chunk) and its bucket cost some 75 bytes a swarm
// besides the peer block, a third of a 10-peer swarm; and until the families shared the block,
// the IPv6 peers' own block cost a pointer here and a chunk of their own.
// 27 bytes, alignment 1 (Swarm reads the numbers with memcpy): with the block's 16-byte header a
// one-peer IPv4 swarm with its key (27 + 16 + 13 = 56) fits the 56 bytes of a 64-byte chunk; a
// 28th byte made it take an 80-byte one, and most swarms of a public tracker hold one peer
// (bench/README.md, the Zipf workload). A one-peer IPv6 swarm takes 80 (an IPv6 record is 25).
struct SwarmHead {
    uint8_t info_hash[20];
    uint8_t downloaded[4];  // uint32_t
    // A lower bound on every peer's deadline: until now passes it, no peer can have expired and
    // expire() skips the scan. Deadlines only grow, so the bound stays valid between sweeps.
    // Bit 23 set: no peer; else the bound's low 23 bits, as a peer keeps its deadline (the bound
    // is a deadline, or a second of the clock a sweep just passed). It is never 48 days old
    // because the host calls the driver's tick every second and a full rotation of ticks sweeps
    // every swarm whose bound has passed (MemoryCache::tick); peers' deadlines rely on the same.
    uint8_t sweep_due[3];
};
static_assert(sizeof(SwarmHead) == 27 && alignof(SwarmHead) == 1);

// One pointer: the swarm's block (SwarmHead, then both families' peers, peer_list.hpp), or null
// for no swarm (default-constructed or moved from: an empty slot of the cache's table).
// Seeder/leecher counts are not stored: they are the partition points of the two families, so
// they cannot drift from the peers.
//
// Rules (abi.h, and tested in tests/unit/memory_swarm_test.cpp):
//   - a peer is (family, addr, port); left == 0 makes it a seeder, left > 0 a leecher, and an
//     existing peer moves between the two as it reports;
//   - event=completed adds one to `downloaded` once per peer while it stays in the swarm
//     (also when the peer is first seen with it);
//   - event=stopped removes the peer and answers with no peers;
//   - a peer never receives itself; a seeder receives only leechers; a leecher receives a
//     random mix; only peers of the requester's family; at most min(numwant, peers_capacity);
//   - a peer not heard from for peer_ttl_s is gone: expired lazily when the swarm is touched
//     and by MemoryCache::tick;
//   - a new peer is refused, changing nothing, when the admission says the store is full
//     (CHIHAYA_FULL) or its address already has max_per_address peers here
//     (CHIHAYA_ADDRESS_LIMIT); peers already in the swarm are always served. Every peer that
//     joins or leaves (stopped, expired) a big family moves its address's count in the
//     admission's tally; a small family is scanned instead (address_counts.hpp).
// Times are tracker seconds (MemoryCache converts the host's milliseconds).
// Not thread-safe: the shard mutex guards it. Any change to the peers may move the whole block:
// references into it (info_hash(), a peer) are good until the next change.
class Swarm {
public:
    Swarm() noexcept = default;
    // Allocates the swarm of `info_hash`, with no peer; valid() is false when out of memory.
    explicit Swarm(const uint8_t* info_hash) noexcept {
        if (!block_.create()) return;
        SwarmHead* h = ::new (block_.prefix()) SwarmHead;
        std::memcpy(h->info_hash, info_hash, sizeof h->info_hash);
        set_downloaded(0);
        set_sweep_due(UINT32_MAX);
    }

    bool valid() const noexcept { return block_.valid(); }
    const uint8_t* info_hash() const noexcept { return head().info_hash; }
    // Applies the announce and writes the answer into `result`. Fails when out of memory, on a
    // BEP 7 key mismatch, or when `admission` refuses a new peer.
    chihaya_status announce(const chihaya_announce_request& request, uint32_t now_s,
                            chihaya_announce_result& result, Rng& rng,
                            const PeerAdmission& admission = {}) noexcept;

    SwarmCounts counts() const noexcept {
        return {v4().seeders() + v6().seeders(), v4().leechers() + v6().leechers(), downloaded()};
    }
    FamilyCounts family_counts() const noexcept {
        return {v4().seeders(), v4().leechers(), v6().seeders(), v6().leechers()};
    }
    bool empty() const noexcept { return v4().size() == 0 && v6().size() == 0; }
    uint32_t peer_count() const noexcept { return v4().size() + v6().size(); }

    // Drops expired peers if any may have expired; cheap otherwise (one comparison). A family
    // with an index (a big swarm) is expired incrementally, `budget` records per call, so no
    // announce pays for a scan of the whole swarm; housekeeping passes a larger budget.
    // may_expire: whether expire() would look at any peer (housekeeping skips the rest).
    // `tally`: the swarm's per-address counters, which every expired peer leaves.
    bool may_expire(uint32_t now_s) const noexcept { return now_s > sweep_due(now_s); }
    void expire(uint32_t now_s, uint32_t budget = kExpireSlice, const AddressTally& tally = {}) noexcept {
        if (!may_expire(now_s)) return;
        const uint32_t a = expire_family(v4(), now_s, budget, tally);
        const uint32_t b = expire_family(v6(), now_s, budget, tally);
        set_sweep_due(a < b ? a : b);
    }

    // The families as they are (snapshot.cpp, tests): views of the block, made for each use. A
    // view is one pointer to the block and offers changes too; the const ones only read.
    using Block = PeerBlock<sizeof(SwarmHead)>;
    using V4 = Family<PeerV4, sizeof(SwarmHead)>;
    using V6 = Family<PeerV6, sizeof(SwarmHead)>;
    V4 v4() const noexcept { return V4(const_cast<Block&>(block_)); }
    V6 v6() const noexcept { return V6(const_cast<Block&>(block_)); }
    // The chunk malloc handed out for this swarm (tests, memory accounting).
    size_t block_bytes() const noexcept { return block_.bytes(); }
    uint32_t downloaded() const noexcept {
        uint32_t n;
        std::memcpy(&n, head().downloaded, sizeof n);
        return n;
    }
    void set_downloaded(uint32_t n) noexcept { std::memcpy(head().downloaded, &n, sizeof n); }
    // Rebuilds a swarm from saved records: adds a peer whose deadline was set against the clock's
    // now_s, without looking for an existing one (a snapshot lists each peer once); false when out
    // of memory.
    template <class Peer>
    bool restore(const Peer& peer, uint32_t now_s, bool seeder, const Counters* counters,
                 const AddressTally& tally = {}) noexcept {
        if constexpr (sizeof(Peer) == sizeof(PeerV4)) return restore_in(v4(), peer, now_s, seeder, counters, tally);
        else return restore_in(v6(), peer, now_s, seeder, counters, tally);
    }

private:
    SwarmHead& head() const noexcept { return *std::launder(reinterpret_cast<SwarmHead*>(block_.prefix())); }
    // The sweep bound as a whole second (UINT32_MAX: no peer), and storing one.
    uint32_t sweep_due(uint32_t now_s) const noexcept {
        const uint32_t w = load24(head().sweep_due);
        return (w & kNoSweep) ? UINT32_MAX : nearest_time(w, now_s);
    }
    void set_sweep_due(uint32_t s) noexcept {
        const uint32_t w = s == UINT32_MAX ? kNoSweep : (s & PeerV4::deadline_mask);
        store24(head().sweep_due, w);
    }
    static constexpr uint32_t kNoSweep = 1u << 23;

    template <class List>
    bool restore_in(List list, const typename List::peer_type& peer, uint32_t now_s, bool seeder,
                    const Counters* counters, const AddressTally& tally) noexcept {
        if (counters && !list.enable_counters()) return false;
        const bool was_indexed = list.indexed();
        const uint32_t i = list.insert(peer, seeder);
        if (i == list.npos) return false;
        tally.changed(list, was_indexed, peer.endpoint, true);
        if (counters) list.set_counters(i, *counters);
        const uint32_t deadline = peer.deadline(now_s);
        if (deadline < sweep_due(now_s)) set_sweep_due(deadline);
        return true;
    }

    // Returns the family's new lower bound on deadlines: exact after a whole pass; after a slice
    // only "now", so that the next touch takes the next slice.
    template <class List>
    static uint32_t expire_family(List peers, uint32_t now_s, uint32_t budget, const AddressTally& tally) noexcept {
        using Peer = typename List::peer_type;
        const bool was_indexed = peers.indexed();
        const auto gone = [&tally, was_indexed](const uint8_t* endpoint) {
            if (was_indexed) tally.left<Peer>(endpoint);
        };
        if (!was_indexed) return peers.expire(now_s, gone);  // a small family: not in the table
        peers.expire_some(now_s, budget, gone);
        tally.changed(peers, true, nullptr, false);  // it may have dropped its index
        return now_s ? now_s - 1 : 0;
    }

    template <class List>
    chihaya_status announce_in(List peers, const chihaya_announce_request& request, uint32_t now_s,
                               chihaya_announce_result& result, Rng& rng, const PeerAdmission& admission) noexcept;

    Block block_;
};

static_assert(sizeof(Swarm) == sizeof(void*));

}  // namespace chihaya::memory
