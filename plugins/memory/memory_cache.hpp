// memory_cache.hpp: every swarm of the memory driver, sharded by info_hash.
#pragma once

#include "swarm.hpp"
#include "swarm_table.hpp"

#include <chihaya/abi.h>

#include <atomic>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <memory>
#include <mutex>

namespace chihaya::memory {

// Info hashes are chosen by clients, not by SHA-1: an attacker can announce thousands that share
// any bytes we would pick, piling them into one shard and one probe run and walking it under
// the shard lock (measured: 40,000 such announces took 6 s against 13 ms for random ones). So
// both the shard and the slot come from SipHash (libsodium crypto_shorthash) of all 20 bytes
// under a per-instance random key: about 20 ns per call, once per announce (SwarmTable keeps it).
uint64_t keyed_hash(const uint8_t* info_hash, const uint8_t* key) noexcept;

// What stats() reports (chihaya_cache_stats): torrents, and seeders and leechers per family.
struct CacheStats {
    uint64_t torrents = 0, torrents_v4 = 0, torrents_v6 = 0;
    uint64_t seeders_v4 = 0, leechers_v4 = 0, seeders_v6 = 0, leechers_v6 = 0;
};

// Swarms and peers of the whole store, for the budgets (abi.h 2.3: max_torrents, max_peers).
// Moved by ShardTally::move with a relaxed read-modify-write, only when a swarm or a peer comes
// or goes (a refresh, most announces, touches neither), and read relaxed only when an announce
// would add one: announces in flight at once may overshoot a budget by one each, as abi.h allows.
// A cache line of its own: every core writes it as peers come and go, and sharing a line with
// what every announce reads (the hash key, the shard table) would bounce that line between cores.
struct alignas(64) StoreTotals {
    std::atomic<uint64_t> torrents{0};
    std::atomic<uint64_t> peers{0};
};

// One shard's part of CacheStats, moved along with every change to its swarms so that stats()
// never walks them. Written only under the shard's mutex, so there is one writer at a time and a
// relaxed load + store suffices (no read-modify-write on the announce path); read without the
// mutex by stats(), which may see one shard a change behind: fine for a gauge.
struct ShardTally {
    std::atomic<uint64_t> torrents{0}, torrents_v4{0}, torrents_v6{0};
    std::atomic<uint64_t> seeders_v4{0}, leechers_v4{0}, seeders_v6{0}, leechers_v6{0};

    // A swarm went from `before` to `after` (an absent swarm counts as all zero); `totals`
    // follows the swarm and peer counts.
    void move(const FamilyCounts& before, const FamilyCounts& after, StoreTotals& totals) noexcept;
    void clear() noexcept;
};

struct MemoryCacheOptions {
    uint32_t shards = 1024;          // power of two
    uint32_t shards_per_tick = 64;   // tick() sweeps this many shards per call
    // Per-address counters (address_counts.hpp), one table for every shard, rounded down to a
    // power of two; 4 bytes each, RAM only as pages are touched.
    uint32_t address_counters = 1u << 20;
};

// Thread-safe: announce/scrape/scrape_all/tick may run concurrently from any threads.
// Time: the host's milliseconds become "tracker seconds" since `epoch_ms` (31 bits, 68 years),
// which is what PackedPeer stores.
//
// Empty swarms are dropped as soon as their last peer leaves or expires, `downloaded` with them:
// memory then stays proportional to live peers, even on a public tracker that has seen millions
// of dead torrents (opentracker does the same). Lasting snatch counts belong to the storage
// driver (private mode), not to the swarm cache.
class MemoryCache {
public:
    MemoryCache(MemoryCacheOptions options, uint64_t epoch_ms);

    chihaya_status announce(const chihaya_announce_request& request,
                            chihaya_announce_result& result) noexcept;
    chihaya_status scrape(chihaya_scrape_request& request) noexcept;
    // Copies one shard's counts out under its lock, then visits them without it, so a slow
    // visitor (the host encoding a full scrape) never blocks announces. Stops when visit returns 0.
    chihaya_status scrape_all(uint64_t now_ms, chihaya_scrape_visit visit, void* ctx) noexcept;
    // Expires peers and drops empty swarms in the next `shards_per_tick` shards.
    void tick(uint64_t now_ms) noexcept;
    // The shards' tallies summed, without taking a shard lock. Peers that expired but were not
    // swept yet still count: a full pass of tick() takes shards / shards_per_tick ticks.
    CacheStats stats() const noexcept;
    // The budgets' view of the store (StoreTotals): swarms and peers, relaxed.
    uint64_t torrent_total() const noexcept { return totals_.torrents.load(std::memory_order_relaxed); }
    uint64_t peer_total() const noexcept { return totals_.peers.load(std::memory_order_relaxed); }

    // Bits 40 and up of the keyed hash pick the shard; its low 32 bits the slot in the shard's
    // SwarmTable. Public for tests.
    uint32_t shard_of(const uint8_t* info_hash) const noexcept {
        return uint32_t(keyed_hash(info_hash, hash_key_) >> 40) & mask_;
    }

    // Snapshots (snapshot.cpp; format described there). save_snapshot writes every live peer to
    // `path` through a temporary file renamed into place; load_snapshot adds the peers of a
    // snapshot still alive at `now_ms` and, on any error (corrupt, truncated, another version),
    // throws std::runtime_error with the cache left empty. `progress` is called about every
    // million peers read. Both lock one shard at a time.
    struct SnapshotCounts {
        uint64_t torrents = 0;
        uint64_t peers = 0;
        uint64_t expired = 0;  // load: peers whose deadline passed while the tracker was down
    };
    SnapshotCounts save_snapshot(const std::string& path, uint64_t now_ms) const;
    SnapshotCounts load_snapshot(const std::string& path, uint64_t now_ms,
                                 const std::function<void(uint64_t peers_read)>& progress);

    // Totals over every shard (tests, diagnostics; locks each shard in turn).
    size_t swarm_count() const noexcept;
    size_t peer_count() const noexcept;

    // The tracker clock stops here (68 years): a deadline, the clock plus peer_lifetime (at most
    // 7 days), always fits 32 bits.
    static constexpr uint32_t kClockEnd = 0x7fffffff;
    uint32_t seconds(uint64_t now_ms) const noexcept {
        if (now_ms <= epoch_ms_) return 0;
        uint64_t s = (now_ms - epoch_ms_) / 1000;
        return s > kClockEnd ? kClockEnd : uint32_t(s);
    }

private:
    // A swarm operation (find, update the peer, choose peers, count) runs entirely under its
    // shard's mutex: it is a few microseconds and must be atomic, and a mutex per swarm would
    // cost 40 bytes per torrent. With ~1024 shards two workers rarely want the same one.
    // alignas: neighbouring shards' mutexes never share a cache line.
    struct alignas(64) Shard {
        mutable std::mutex mutex;
        SwarmTable swarms;
        ShardTally tally;  // of `swarms`, for stats()
    };

    Shard& shard_for(const uint8_t* info_hash) noexcept { return shards_[shard_of(info_hash)]; }
    Shard& shard_of_seed(uint64_t seed) noexcept { return shards_[uint32_t(seed >> 40) & mask_]; }
    uint64_t seed_of(const uint8_t* info_hash) const noexcept {
        return keyed_hash(info_hash, hash_key_);
    }
    // A swarm's per-address counters: the cache's table, keyed by the swarm's seed.
    AddressTally tally_of(uint64_t seed) const noexcept {
        return AddressTally{address_counts_.get(), address_mask_, seed};
    }
    void sweep(Shard& shard, uint32_t now_s) noexcept;

    uint8_t hash_key_[16];
    std::unique_ptr<Shard[]> shards_;
    // The per-address counters in one calloc'd block: pages never touched cost no RAM.
    struct Free {
        void operator()(uint32_t* p) const noexcept { std::free(p); }
    };
    std::unique_ptr<uint32_t[], Free> address_counts_;
    uint32_t address_mask_ = 0;  // counters - 1
    StoreTotals totals_;  // alignas(64): a cache line of its own (see StoreTotals)
    uint32_t count_;
    uint32_t mask_;
    uint32_t per_tick_;
    std::atomic<uint32_t> tick_cursor_{0};
    uint64_t epoch_ms_;
};

}  // namespace chihaya::memory
