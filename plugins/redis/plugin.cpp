// plugin.cpp: the "redis" cache driver: its config keys and registration line.
#include "redis_cache.hpp"

#include <chihaya/driver.hpp>

#include <sstream>

namespace {

using chihaya::redis::RedisCache;
using chihaya::redis::RedisCacheOptions;

class RedisCacheDriver {
public:
#ifdef CHIHAYA_DRIVER_PROVIDES_LIMITS  // not in the frozen 2.0 headers (tests/abi)
    // Enforces [limits] (abi.h 2.3) whenever an announce carries them; README.md says how
    // precisely, and why the kit's --provides limits is not claimed.
    static constexpr uint32_t driver_flags = CHIHAYA_DRIVER_PROVIDES_LIMITS;
#endif
    // Names are shared with the bench and the integration tests: keep them.
    static constexpr chihaya_config_key config_keys[] = {
        chihaya::config_string("addresses", "\"127.0.0.1:6379\"",
            "comma-separated \"host:port\" or \"unix:/path\"; one node, or any cluster nodes as seeds"),
        chihaya::config_string("user", "\"\"",
            "ACL user for AUTH (\"\" = the default user)"),
        chihaya::config_secret("password", "\"\"",
            "password for AUTH (\"\" = no AUTH)"),
        chihaya::config_int("database", "0", 0, 65535,
            "database number (SELECT); must be 0 with cluster = true"),
        chihaya::config_string("key_prefix", "\"chihaya\"",
            "prefix of every key (\"<prefix>:{<info_hash hex>}:...\"); lets trackers share a Redis"),
        chihaya::config_int("connections", "2", 1, 64,
            "pipelined connections per Redis node"),
        chihaya::config_int("connect_timeout_ms", "1000", 10, 60000,
            "connect + handshake deadline (also bounds start-up waits)"),
        chihaya::config_int("command_timeout_ms", "500", 10, 60000,
            "a reply later than this fails the connection's pending requests (storage unavailable) "
            "and reconnects"),
        chihaya::config_bool("cluster", false,
            "addresses are Redis Cluster seed nodes: follow the slot map, MOVED and ASK"),
        chihaya::config_int("io_threads", "1", 1, 64,
            "driver threads running the Redis connections (each its own event loop)"),
        chihaya::config_int("max_in_flight", "4096", 1, 1000000,
            "requests queued or awaiting a reply per connection; beyond it announces fail at once"),
        chihaya::config_int("pipeline_depth", "1", 0, 1024,
            "announce calls a connection has written and not yet had answered before new requests "
            "wait for a reply and then go together, announces as one bigger call; 0 = write every "
            "batch at once"),
    };

    RedisCacheDriver(const chihaya::Host& host, const chihaya::Config& config)
        : cache_(host, options(config)) {}

    void announce(const chihaya_announce_request& request, chihaya_announce_result& result,
                  chihaya::Completion done) {
        cache_.announce(request, result, done);
    }

    void scrape(chihaya_scrape_request& request, chihaya::Completion done) {
        cache_.scrape(request, done);
    }
    // Expiry is server-side; the tick only sums a Cluster's per-slot budget ledgers (README.md).
    void tick(uint64_t now_ms) { cache_.tick(now_ms); }
    // No scrape_all (full scrape is opt-in and would SCAN every node): see README.md.

private:
    static RedisCacheOptions options(const chihaya::Config& config) {
        RedisCacheOptions o;
        std::string list(config.string("addresses"));
        std::stringstream in(list);
        for (std::string item; std::getline(in, item, ',');) {
            size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
            if (a == std::string::npos) continue;
            o.addresses.push_back(chihaya::redis::parse_endpoint(item.substr(a, b - a + 1)));
        }
        if (o.addresses.empty()) throw std::invalid_argument("redis: addresses is empty");
        o.connection.user = std::string(config.string("user"));
        o.connection.password = std::string(config.string("password"));
        o.connection.database = config.integer("database");
        o.key_prefix = std::string(config.string("key_prefix"));
        o.connections = static_cast<unsigned>(config.integer("connections"));
        o.connection.connect_timeout = std::chrono::milliseconds(config.integer("connect_timeout_ms"));
        o.connection.command_timeout = std::chrono::milliseconds(config.integer("command_timeout_ms"));
        o.cluster = config.boolean("cluster");
        o.io_threads = static_cast<unsigned>(config.integer("io_threads"));
        o.connection.max_in_flight = static_cast<uint32_t>(config.integer("max_in_flight"));
        o.connection.max_unanswered = static_cast<uint32_t>(config.integer("pipeline_depth"));
        return o;
    }

    RedisCache cache_;
};

}  // namespace

CHIHAYA_REGISTER_CACHE("redis", RedisCacheDriver)
