// plugin.cpp: the "memory" cache driver: config keys, the ABI adapter and its registration line.
#include "memory_cache.hpp"

#include <chihaya/driver.hpp>

namespace {

using chihaya::memory::MemoryCache;
using chihaya::memory::MemoryCacheOptions;

class MemoryCacheDriver {
public:
    static constexpr chihaya_config_key config_keys[] = {
        chihaya::config_int("shards", "1024", 1, 65536,
            "number of independently locked swarm shards (rounded up to a power of two); more "
            "shards, less contention between workers"),
        chihaya::config_int("shards_per_tick", "64", 1, 65536,
            "shards swept for expired peers per housekeeping tick; a full pass takes "
            "shards / shards_per_tick ticks (swarms are also expired when touched)"),
    };

    MemoryCacheDriver(const chihaya::Host& host, const chihaya::Config& config)
        : host_(host), cache_(options(config), host.now_ms()) {}

    // Inline completion, after the shard lock is released (MemoryCache returns unlocked).
    void announce(const chihaya_announce_request& request, chihaya_announce_result& result,
                  chihaya::Completion done) {
        done(cache_.announce(request, result));
    }

    void scrape(chihaya_scrape_request& request, chihaya::Completion done) {
        done(cache_.scrape(request));
    }

    void scrape_all(chihaya_scrape_visit visit, void* ctx, chihaya::Completion done) {
        done(cache_.scrape_all(host_.now_ms(), visit, ctx));
    }

    void tick(uint64_t now_ms) { cache_.tick(now_ms); }

private:
    static MemoryCacheOptions options(const chihaya::Config& config) {
        MemoryCacheOptions o;
        // Rounded up rather than refused, so that a value --check-config accepts also starts.
        uint32_t shards = 1;
        while (shards < static_cast<uint32_t>(config.integer("shards"))) shards <<= 1;
        o.shards = shards;
        o.shards_per_tick = static_cast<uint32_t>(config.integer("shards_per_tick"));
        return o;
    }

    chihaya::Host host_;
    MemoryCache cache_;
};

}  // namespace

CHIHAYA_REGISTER_CACHE("memory", MemoryCacheDriver)
