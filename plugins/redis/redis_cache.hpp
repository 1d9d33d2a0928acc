// redis_cache.hpp: the "redis" cache driver: ABI calls become pipelined script calls on Redis.
#pragma once

#include "cluster.hpp"
#include "connection.hpp"
#include "io_pool.hpp"

#include <chihaya/driver.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace chihaya::redis {

struct RedisCacheOptions {
    std::vector<Endpoint> addresses;
    ConnectionOptions connection;
    std::string key_prefix = "chihaya";
    unsigned connections = 2;  // per node
    unsigned io_threads = 1;
    bool cluster = false;
};

// Thread-safe: announce/scrape run from every host worker and never block on Redis. Each call
// is handed to a connection's I/O thread, which puts the announces of one event-loop turn into
// EVALSHAs of scripts.hpp of up to kMaxBatch announces each (one script call per scraped hash),
// and completed from that thread when the reply arrives or the connection gives up on it
// (timeout, disconnect: CHIHAYA_UNAVAILABLE). The semantics are the memory driver's (swarm.hpp),
// BEP 7 keys included, with Redis' clock for expiry.
class RedisCache : private Coalescer {
public:
    RedisCache(const chihaya::Host& host, RedisCacheOptions options);
    ~RedisCache();
    RedisCache(const RedisCache&) = delete;
    RedisCache& operator=(const RedisCache&) = delete;

    void announce(const chihaya_announce_request& request, chihaya_announce_result& result,
                  chihaya::Completion done) noexcept;
    void scrape(chihaya_scrape_request& request, chihaya::Completion done) noexcept;
    // About once a second from the main thread. Cluster with budgets asked (ABI 2.3): refreshes
    // an eighth of the slots' ledger totals (scripts::kLedgerTotals), so every slot's announces
    // see the other slots' torrents and peers as of at most about 8 s ago.
    void tick(uint64_t now_ms) noexcept;

private:
    class ScriptCall;
    class AnnounceCall;
    class AnnounceBatch;
    class ScrapeBatch;
    class ScrapeItem;
    class LedgerTotals;

    // On a connection's thread: the announces drained in one event-loop turn become script
    // calls of up to kMaxBatch announces each (per slot in a Cluster).
    void coalesce(std::vector<Command*>& commands) noexcept override;

    // Appends the torrent's keys ("<prefix>:{<hex>}:<suffix>") to a command; returns the slot.
    uint16_t append_keys(std::string& wire, const uint8_t info_hash[20], const char* const* suffixes,
                         size_t count) const;
    // The ledger key of a slot (scripts.hpp): one for all on a single node.
    const std::string& ledger_key(uint16_t slot) const noexcept {
        return ledger_keys_.size() == 1 ? ledger_keys_[0] : ledger_keys_[slot];
    }
    // What every slot but `slot` holds, as of their last totals (Cluster; 0 on a single node).
    void other_slots(uint16_t slot, uint64_t& torrents, uint64_t& peers) const noexcept;
    // A warning at most every 10 s, from any thread.
    void warn_rarely(const std::string& message) noexcept;

    chihaya::Host host_;
    RedisCacheOptions options_;
    std::string key_head_;  // "<prefix>:{"
    std::string announce_sha_, scrape_sha_, totals_sha_;
    // Budgets (ABI 2.3). ledger_keys_: one key, or one per slot in a Cluster, each hashing to
    // its slot. The per-slot totals and their sums are written by LedgerTotals replies.
    std::vector<std::string> ledger_keys_;
    std::unique_ptr<std::atomic<uint64_t>[]> slot_torrents_, slot_peers_;
    std::atomic<uint64_t> sum_torrents_{0}, sum_peers_{0};
    std::atomic<bool> budgets_asked_{false};  // an announce carried max_torrents or max_peers
    uint32_t totals_cursor_ = 0;              // main thread (tick)
    IoPool io_;
    Topology topology_;
    std::atomic<uint64_t> last_warning_ms_{0};
};

}  // namespace chihaya::redis
