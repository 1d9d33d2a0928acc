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

private:
    class ScriptCall;
    class AnnounceCall;
    class AnnounceBatch;
    class ScrapeBatch;
    class ScrapeItem;

    // On a connection's thread: the announces drained in one event-loop turn become script
    // calls of up to kMaxBatch announces each (per slot in a Cluster).
    void coalesce(std::vector<Command*>& commands) noexcept override;

    // Appends the torrent's keys ("<prefix>:{<hex>}:<suffix>") to a command; returns the slot.
    uint16_t append_keys(std::string& wire, const uint8_t info_hash[20], const char* const* suffixes,
                         size_t count) const;
    // A warning at most every 10 s, from any thread.
    void warn_rarely(const std::string& message) noexcept;

    chihaya::Host host_;
    RedisCacheOptions options_;
    std::string key_head_;  // "<prefix>:{"
    std::string announce_sha_, scrape_sha_;
    IoPool io_;
    Topology topology_;
    std::atomic<uint64_t> last_warning_ms_{0};
};

}  // namespace chihaya::redis
