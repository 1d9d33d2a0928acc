// swarm.hpp: one torrent's peers and counts, and the announce rules applied to them.
#pragma once

#include "address_counts.hpp"
#include "peer_list.hpp"
#include "rng.hpp"

#include <chihaya/abi.h>

#include <atomic>
#include <cstdint>

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

// 24 bytes, so a hash-map node (next pointer + 20-byte info_hash + padding + Swarm) is a 56-byte
// request that glibc serves from a 64-byte chunk. Seeder/leecher counts are not stored: they are
// the partition points of the two PeerLists, so they cannot drift from the peers.
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
//     joins or leaves (stopped, expired) moves its address's count in the admission's tally.
// Times are tracker seconds (MemoryCache converts the host's milliseconds).
// Not thread-safe: the shard mutex guards it.
class Swarm {
public:
    // Applies the announce and writes the answer into `result`. Fails when out of memory, on a
    // BEP 7 key mismatch, or when `admission` refuses a new peer.
    chihaya_status announce(const chihaya_announce_request& request, uint32_t now_s,
                            chihaya_announce_result& result, Rng& rng,
                            const PeerAdmission& admission = {}) noexcept;

    SwarmCounts counts() const noexcept {
        return {v4_.seeders() + v6_.seeders(), v4_.leechers() + v6_.leechers(), downloaded_};
    }
    FamilyCounts family_counts() const noexcept {
        return {v4_.seeders(), v4_.leechers(), v6_.seeders(), v6_.leechers()};
    }
    bool empty() const noexcept { return v4_.size() == 0 && v6_.size() == 0; }
    uint32_t peer_count() const noexcept { return v4_.size() + v6_.size(); }

    // Drops expired peers if any may have expired; cheap otherwise (one comparison). A family
    // with an index (a big swarm) is expired incrementally, `budget` records per call, so no
    // announce pays for a scan of the whole swarm; housekeeping passes a larger budget.
    // may_expire: whether expire() would look at any peer (housekeeping skips the rest).
    // `tally`: the swarm's per-address counters, which every expired peer leaves.
    bool may_expire(uint32_t now_s) const noexcept { return now_s > sweep_due_s_; }
    void expire(uint32_t now_s, uint32_t budget = kExpireSlice, const AddressTally& tally = {}) noexcept {
        if (!may_expire(now_s)) return;
        uint32_t a = expire_family(v4_, now_s, budget, tally);
        uint32_t b = expire_family(v6_, now_s, budget, tally);
        sweep_due_s_ = a < b ? a : b;
    }

    // For snapshots (snapshot.cpp): the families as they are, and rebuilding a swarm from saved
    // records. restore() adds a peer without looking for an existing one (a snapshot lists each
    // peer once); false when out of memory.
    const PeerList<PeerV4>& v4() const noexcept { return v4_; }
    const PeerList<PeerV6>& v6() const noexcept { return v6_; }
    uint32_t downloaded() const noexcept { return downloaded_; }
    void set_downloaded(uint32_t n) noexcept { downloaded_ = n; }
    template <class Peer>
    bool restore(const Peer& peer, bool seeder, const Counters* counters, const AddressTally& tally = {}) noexcept {
        PeerList<Peer>& list = family<Peer>();
        if (counters && !list.enable_counters()) return false;
        const uint32_t i = list.insert(peer, seeder);
        if (i == list.npos) return false;
        tally.joined<Peer>(peer.endpoint);
        if (counters && list.counters()) list.counters()[i] = *counters;
        if (peer.deadline() < sweep_due_s_) sweep_due_s_ = peer.deadline();
        return true;
    }

private:
    template <class Peer>
    PeerList<Peer>& family() noexcept {
        if constexpr (sizeof(Peer) == sizeof(PeerV4)) return v4_;
        else return v6_;
    }

    // Returns the family's new lower bound on deadlines: exact after a whole pass; after a slice
    // only "now", so that the next touch takes the next slice.
    template <class Peer>
    static uint32_t expire_family(PeerList<Peer>& peers, uint32_t now_s, uint32_t budget,
                                  const AddressTally& tally) noexcept {
        const auto gone = [&tally](const uint8_t* endpoint) { tally.left<Peer>(endpoint); };
        if (!peers.indexed()) return peers.expire(now_s, gone);
        peers.expire_some(now_s, budget, gone);
        return now_s ? now_s - 1 : 0;
    }

    template <class Peer>
    chihaya_status announce_in(PeerList<Peer>& peers, const chihaya_announce_request& request,
                               uint32_t now_s, chihaya_announce_result& result, Rng& rng,
                               const PeerAdmission& admission) noexcept;

    PeerList<PeerV4> v4_;
    PeerList<PeerV6> v6_;
    uint32_t downloaded_ = 0;
    // A lower bound on every peer's deadline: until now passes it, no peer can have expired and
    // expire() skips the scan. Deadlines only grow, so the bound stays valid between sweeps.
    uint32_t sweep_due_s_ = UINT32_MAX;
};

static_assert(sizeof(Swarm) == 24);

}  // namespace chihaya::memory
