// memory_cache.cpp: shard selection, locking and housekeeping around Swarm.
#include "memory_cache.hpp"

#include <chihaya/driver.hpp>

#include <sodium.h>

#include <new>
#include <stdexcept>
#include <vector>

namespace chihaya::memory {

MemoryCache::MemoryCache(MemoryCacheOptions options, uint64_t epoch_ms)
    : count_(options.shards),
      mask_(options.shards - 1),
      per_tick_(options.shards_per_tick),
      epoch_ms_(epoch_ms) {
    if (options.shards == 0 || (options.shards & (options.shards - 1)) != 0)
        throw std::invalid_argument("shards must be a power of two");
    if (per_tick_ == 0 || per_tick_ > count_) per_tick_ = count_;
    if (sodium_init() < 0) throw std::runtime_error("memory: libsodium failed to initialise");
    randombytes_buf(hash_key_, sizeof hash_key_);
    shards_ = std::make_unique<Shard[]>(count_);
    uint32_t counters = 64;
    while (uint64_t(counters) * 2 <= options.address_counters) counters *= 2;
    address_counts_.reset(static_cast<uint32_t*>(std::calloc(counters, sizeof(uint32_t))));
    if (!address_counts_) throw std::bad_alloc();
    address_mask_ = counters - 1;
}

uint64_t keyed_hash(const uint8_t* info_hash, const uint8_t* key) noexcept {
    static_assert(crypto_shorthash_BYTES == 8 && crypto_shorthash_KEYBYTES == 16);
    uint64_t h;
    crypto_shorthash(reinterpret_cast<unsigned char*>(&h), info_hash, 20, key);
    return h;
}

namespace {

void add(std::atomic<uint64_t>& counter, int64_t delta) noexcept {
    // Most announces refresh a peer and change no count: no store at all then.
    if (delta != 0)
        counter.store(counter.load(std::memory_order_relaxed) + uint64_t(delta), std::memory_order_relaxed);
}

// Shared by every shard, so a read-modify-write; only when a swarm or a peer came or went.
void add_shared(std::atomic<uint64_t>& counter, int64_t delta) noexcept {
    if (delta != 0) counter.fetch_add(uint64_t(delta), std::memory_order_relaxed);
}

uint64_t peers_of(const FamilyCounts& c) noexcept {
    return uint64_t(c.seeders_v4) + c.leechers_v4 + c.seeders_v6 + c.leechers_v6;
}

// The budgets an announce carries (abi.h 2.3), zero (no limit) from a host that predates them
// and in the build against the frozen 2.0 headers (tests/abi), which have none.
struct Budgets {
    uint64_t max_torrents = 0;
    uint64_t max_peers = 0;
    uint32_t max_peers_per_address = 0;
    bool no_new_swarm = false;
};

Budgets budgets_of(const chihaya_announce_request& request) noexcept {
    Budgets b;
#ifdef CHIHAYA_ADDRESS_LIMIT
    if (CHIHAYA_HAS_MEMBER(&request, chihaya_announce_request, max_peers)) {
        b.max_torrents = request.max_torrents;
        b.max_peers = request.max_peers;
        b.max_peers_per_address = request.max_peers_per_address;
        b.no_new_swarm = (request.flags & CHIHAYA_ANNOUNCE_NO_NEW_SWARM) != 0;
    }
#else
    (void)request;
#endif
    return b;
}

// A new swarm refused: by the store's budgets (FULL) or the address's new-swarm rate.
enum class NewSwarmRefusal { MaxTorrents, MaxPeers, NewSwarmRate };

chihaya_status refuse(chihaya_announce_result& result, const char* why, NewSwarmRefusal by) noexcept {
    result.peer_count = 0;
    result.had_previous = 0;
    result.complete = result.incomplete = result.downloaded = 0;
    write_message(result.message, CHIHAYA_MESSAGE_CAP, why);
#ifdef CHIHAYA_ADDRESS_LIMIT
    switch (by) {
        case NewSwarmRefusal::MaxTorrents: result.refused_by = CHIHAYA_BUDGET_MAX_TORRENTS; return CHIHAYA_FULL;
        case NewSwarmRefusal::MaxPeers: result.refused_by = CHIHAYA_BUDGET_MAX_PEERS; return CHIHAYA_FULL;
        case NewSwarmRefusal::NewSwarmRate: break;
    }
    result.refused_by = CHIHAYA_BUDGET_NEW_SWARM;
    return CHIHAYA_ADDRESS_LIMIT;
#else
    (void)by;
    return CHIHAYA_INVALID;  // never: a 2.0 request carries no budget
#endif
}

}  // namespace

void ShardTally::move(const FamilyCounts& before, const FamilyCounts& after, StoreTotals& totals) noexcept {
    const bool had_v4 = before.seeders_v4 + before.leechers_v4 > 0;
    const bool had_v6 = before.seeders_v6 + before.leechers_v6 > 0;
    const bool has_v4 = after.seeders_v4 + after.leechers_v4 > 0;
    const bool has_v6 = after.seeders_v6 + after.leechers_v6 > 0;
    add(torrents, int64_t(has_v4 || has_v6) - int64_t(had_v4 || had_v6));
    add_shared(totals.torrents, int64_t(has_v4 || has_v6) - int64_t(had_v4 || had_v6));
    add_shared(totals.peers, int64_t(peers_of(after)) - int64_t(peers_of(before)));
    add(torrents_v4, int64_t(has_v4) - int64_t(had_v4));
    add(torrents_v6, int64_t(has_v6) - int64_t(had_v6));
    add(seeders_v4, int64_t(after.seeders_v4) - int64_t(before.seeders_v4));
    add(leechers_v4, int64_t(after.leechers_v4) - int64_t(before.leechers_v4));
    add(seeders_v6, int64_t(after.seeders_v6) - int64_t(before.seeders_v6));
    add(leechers_v6, int64_t(after.leechers_v6) - int64_t(before.leechers_v6));
}

void ShardTally::clear() noexcept {
    for (auto* c : {&torrents, &torrents_v4, &torrents_v6, &seeders_v4, &leechers_v4, &seeders_v6, &leechers_v6})
        c->store(0, std::memory_order_relaxed);
}

chihaya_status MemoryCache::announce(const chihaya_announce_request& request,
                                     chihaya_announce_result& result) noexcept {
    const uint64_t seed = seed_of(request.info_hash);
    const Budgets budgets = budgets_of(request);
    Shard& shard = shard_of_seed(seed);
    std::lock_guard lock(shard.mutex);
    Swarm* swarm = shard.swarms.find(seed, request.info_hash);
    FamilyCounts before;
    bool created = false;
    if (swarm) {
        before = swarm->family_counts();
    } else {
        if (request.event == CHIHAYA_EVENT_STOPPED) {
            // Nothing to remove; do not create a swarm only to drop it.
            result.peer_count = 0;
            result.had_previous = 0;
            result.complete = result.incomplete = result.downloaded = 0;
            return CHIHAYA_OK;
        }
        if (budgets.no_new_swarm)
            return refuse(result, "memory: this address may create no swarm now", NewSwarmRefusal::NewSwarmRate);
        if (budgets.max_torrents != 0 && torrent_total() >= budgets.max_torrents)
            return refuse(result, "memory: max_torrents reached", NewSwarmRefusal::MaxTorrents);
        // A new swarm comes with a new peer: refused before a swarm is made only to be erased.
        if (budgets.max_peers != 0 && peer_total() >= budgets.max_peers)
            return refuse(result, "memory: max_peers reached", NewSwarmRefusal::MaxPeers);
        swarm = shard.swarms.emplace(seed, request.info_hash);
        if (!swarm) {
            write_message(result.message, CHIHAYA_MESSAGE_CAP, "memory: out of memory for a swarm");
            return CHIHAYA_INTERNAL;
        }
        created = true;
    }
    PeerAdmission admission;
    admission.tally = tally_of(seed);
    admission.max_peers = budgets.max_peers;
    admission.peer_total = &totals_.peers;
    admission.max_per_address = budgets.max_peers_per_address;
    chihaya_status status =
        swarm->announce(request, seconds(request.now_ms), result, Rng::for_this_thread(), admission);
    shard.tally.move(before, swarm->family_counts(), totals_);
    if (swarm->empty()) {
        shard.swarms.erase(swarm);  // also a new swarm whose first peer was refused
    } else if (created) {
#ifdef CHIHAYA_ADDRESS_LIMIT
        result.created_swarm = 1;
#endif
    }
    return status;
}

chihaya_status MemoryCache::scrape(chihaya_scrape_request& request) noexcept {
    uint32_t now_s = seconds(request.now_ms);
    for (uint32_t n = 0; n < request.count; ++n) {
        chihaya_scrape_entry& entry = *CHIHAYA_AT(chihaya_scrape_entry, request.entries, n);
        const uint64_t seed = seed_of(entry.info_hash);
        SwarmCounts counts;
        Shard& shard = shard_of_seed(seed);
        {
            std::lock_guard lock(shard.mutex);
            if (Swarm* swarm = shard.swarms.find(seed, entry.info_hash)) {
                if (swarm->may_expire(now_s)) {
                    const FamilyCounts before = swarm->family_counts();
                    swarm->expire(now_s, kExpireSlice, tally_of(seed));
                    shard.tally.move(before, swarm->family_counts(), totals_);
                }
                counts = swarm->counts();
                if (swarm->empty()) shard.swarms.erase(swarm);
            }
        }
        entry.complete = counts.complete;
        entry.incomplete = counts.incomplete;
        entry.downloaded = counts.downloaded;
    }
    return CHIHAYA_OK;
}

chihaya_status MemoryCache::scrape_all(uint64_t now_ms, chihaya_scrape_visit visit,
                                       void* ctx) noexcept {
    uint32_t now_s = seconds(now_ms);
    try {
        std::vector<chihaya_scrape_entry> batch;
        for (uint32_t s = 0; s < count_; ++s) {
            Shard& shard = shards_[s];
            batch.clear();
            {
                std::lock_guard lock(shard.mutex);
                sweep(shard, now_s);
                batch.reserve(shard.swarms.size());
                shard.swarms.for_each([&batch](const Swarm& swarm) {
                    chihaya_scrape_entry e{};
                    e.struct_size = sizeof e;
                    std::memcpy(e.info_hash, swarm.info_hash(), 20);
                    SwarmCounts c = swarm.counts();
                    e.complete = c.complete;
                    e.incomplete = c.incomplete;
                    e.downloaded = c.downloaded;
                    batch.push_back(e);  // reserved above: does not throw
                });
            }
            for (const auto& e : batch)
                if (visit(ctx, &e) == 0) return CHIHAYA_OK;
        }
    } catch (const std::bad_alloc&) {
        return CHIHAYA_INTERNAL;
    }
    return CHIHAYA_OK;
}

void MemoryCache::sweep(Shard& shard, uint32_t now_s) noexcept {
    // Housekeeping takes bigger slices of big swarms than an announce does: a million-peer swarm
    // is examined whole every few minutes by ticks alone.
    constexpr uint32_t kTickSlice = 4096;
    shard.swarms.sweep([&](Swarm& swarm) {
        // Most swarms have nothing due: their peer records are not even looked at.
        if (swarm.may_expire(now_s)) {
            const FamilyCounts before = swarm.family_counts();
            swarm.expire(now_s, kTickSlice, tally_of(seed_of(swarm.info_hash())));
            shard.tally.move(before, swarm.family_counts(), totals_);
        }
        return !swarm.empty();
    });
}

void MemoryCache::tick(uint64_t now_ms) noexcept {
    uint32_t now_s = seconds(now_ms);
    uint32_t first = tick_cursor_.fetch_add(per_tick_, std::memory_order_relaxed);
    for (uint32_t n = 0; n < per_tick_; ++n) {
        Shard& shard = shards_[(first + n) & mask_];
        std::lock_guard lock(shard.mutex);
        sweep(shard, now_s);
    }
}

CacheStats MemoryCache::stats() const noexcept {
    CacheStats s;
    for (uint32_t i = 0; i < count_; ++i) {
        const ShardTally& t = shards_[i].tally;
        s.torrents += t.torrents.load(std::memory_order_relaxed);
        s.torrents_v4 += t.torrents_v4.load(std::memory_order_relaxed);
        s.torrents_v6 += t.torrents_v6.load(std::memory_order_relaxed);
        s.seeders_v4 += t.seeders_v4.load(std::memory_order_relaxed);
        s.leechers_v4 += t.leechers_v4.load(std::memory_order_relaxed);
        s.seeders_v6 += t.seeders_v6.load(std::memory_order_relaxed);
        s.leechers_v6 += t.leechers_v6.load(std::memory_order_relaxed);
    }
    return s;
}

size_t MemoryCache::swarm_count() const noexcept {
    size_t total = 0;
    for (uint32_t s = 0; s < count_; ++s) {
        std::lock_guard lock(shards_[s].mutex);
        total += shards_[s].swarms.size();
    }
    return total;
}

size_t MemoryCache::peer_count() const noexcept {
    size_t total = 0;
    for (uint32_t s = 0; s < count_; ++s) {
        std::lock_guard lock(shards_[s].mutex);
        shards_[s].swarms.for_each([&total](const Swarm& swarm) { total += swarm.peer_count(); });
    }
    return total;
}

}  // namespace chihaya::memory
