// swarm.hpp: one torrent's peers and counts, and the announce rules applied to them.
#pragma once

#include "peer_list.hpp"
#include "rng.hpp"

#include <chihaya/abi.h>

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
//     and by MemoryCache::tick.
// Times are tracker seconds (MemoryCache converts the host's milliseconds).
// Not thread-safe: the shard mutex guards it.
class Swarm {
public:
    // Applies the announce and writes the answer into `result`. Only fails when out of memory.
    chihaya_status announce(const chihaya_announce_request& request, uint32_t now_s,
                            chihaya_announce_result& result, Rng& rng) noexcept;

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
    bool may_expire(uint32_t now_s) const noexcept { return now_s > sweep_due_s_; }
    void expire(uint32_t now_s, uint32_t budget = kExpireSlice) noexcept {
        if (!may_expire(now_s)) return;
        uint32_t a = expire_family(v4_, now_s, budget);
        uint32_t b = expire_family(v6_, now_s, budget);
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
    bool restore(const Peer& peer, bool seeder, const Counters* counters) noexcept {
        PeerList<Peer>& list = family<Peer>();
        if (counters && !list.enable_counters()) return false;
        const uint32_t i = list.insert(peer, seeder);
        if (i == list.npos) return false;
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
    static uint32_t expire_family(PeerList<Peer>& peers, uint32_t now_s, uint32_t budget) noexcept {
        if (!peers.indexed()) return peers.expire(now_s);
        peers.expire_some(now_s, budget);
        return now_s ? now_s - 1 : 0;
    }

    template <class Peer>
    chihaya_status announce_in(PeerList<Peer>& peers, const chihaya_announce_request& request,
                               uint32_t now_s, chihaya_announce_result& result, Rng& rng) noexcept;

    PeerList<PeerV4> v4_;
    PeerList<PeerV6> v6_;
    uint32_t downloaded_ = 0;
    // A lower bound on every peer's deadline: until now passes it, no peer can have expired and
    // expire() skips the scan. Deadlines only grow, so the bound stays valid between sweeps.
    uint32_t sweep_due_s_ = UINT32_MAX;
};

static_assert(sizeof(Swarm) == 24);

}  // namespace chihaya::memory
