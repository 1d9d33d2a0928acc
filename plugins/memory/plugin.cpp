// plugin.cpp: the "memory" cache driver: config keys, the ABI adapter and its registration line.
#include "memory_cache.hpp"

#include <chihaya/driver.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace {

using chihaya::memory::MemoryCache;
using chihaya::memory::MemoryCacheOptions;

class MemoryCacheDriver {
public:
#ifdef CHIHAYA_DRIVER_PROVIDES_LIMITS  // not in the frozen 2.0 headers (tests/abi)
    // Enforces [limits] (abi.h 2.3): budgets, per-address caps, created_swarm.
    static constexpr uint32_t driver_flags = CHIHAYA_DRIVER_PROVIDES_LIMITS;
#endif
    static constexpr chihaya_config_key config_keys[] = {
        chihaya::config_int("shards", "1024", 1, 65536,
            "number of independently locked swarm shards (rounded up to a power of two); more "
            "shards, less contention between workers"),
        chihaya::config_int("shards_per_tick", "64", 1, 65536,
            "shards swept for expired peers per housekeeping tick; a full pass takes "
            "shards / shards_per_tick ticks (swarms are also expired when touched)"),
        chihaya::config_int("address_counters", "1048576", 65536, 1 << 30,
            "counters of peers per (torrent, address; IPv6 per /64) for [limits] "
            "max_peers_per_address in swarms of 64 peers or more (smaller ones are scanned), one "
            "table for all swarms, 4 bytes each (rounded down to a power of two; RAM only as they "
            "are used); pairs that hash alike share one, which "
            "can only refuse early: keep it above a fifth of [limits] max_peers"),
        chihaya::config_string("snapshot_path", "\"\"",
            "file the swarms are written to when the tracker stops and read from when it starts "
            "(peers that expired meanwhile are dropped); \"\" = none. Use an absolute path"),
    };

    MemoryCacheDriver(const chihaya::Host& host, const chihaya::Config& config)
        : host_(host), cache_(options(config), host.now_ms()),
          snapshot_path_(config.string("snapshot_path")) {
        if (!snapshot_path_.empty()) load();
    }

    // destroy: after the frontends drained, so the snapshot holds every peer the tracker answered.
    ~MemoryCacheDriver() {
        if (snapshot_path_.empty()) return;
        const auto started = std::chrono::steady_clock::now();
        try {
            auto counts = cache_.save_snapshot(snapshot_path_, host_.now_ms());
            host_.info("snapshot: wrote " + std::to_string(counts.peers) + " peers in " +
                       std::to_string(counts.torrents) + " torrents to " + snapshot_path_ + " in " +
                       seconds_since(started) + " s");
        } catch (const std::exception& e) {
            host_.error(std::string("snapshot: not written: ") + e.what());
        }
    }

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

    // ABI 2.2: per-shard tallies summed, no lock taken. Left out of the build against the frozen
    // 2.0 headers (tests/abi), which have no chihaya_cache_stats: that plugin has no stats.
#if CHIHAYA_ABI_MINOR >= 2
    chihaya_status stats(chihaya_cache_stats& out) {
        const chihaya::memory::CacheStats s = cache_.stats();
        out.torrents = s.torrents;
        out.torrents_ipv4 = s.torrents_v4;
        out.torrents_ipv6 = s.torrents_v6;
        out.seeders_ipv4 = s.seeders_v4;
        out.leechers_ipv4 = s.leechers_v4;
        out.seeders_ipv6 = s.seeders_v6;
        out.leechers_ipv6 = s.leechers_v6;
        return CHIHAYA_OK;
    }
#endif

private:
    void load() {
        const auto started = std::chrono::steady_clock::now();
        if (::access(snapshot_path_.c_str(), F_OK) != 0) {
            host_.info("snapshot: " + snapshot_path_ + " does not exist yet; starting with no swarms");
            return;
        }
        host_.info("snapshot: loading " + snapshot_path_);
        try {
            auto counts = cache_.load_snapshot(snapshot_path_, host_.now_ms(), [&](uint64_t read) {
                host_.info("snapshot: " + std::to_string(read / 1000000) + " million peers read, " +
                           seconds_since(started) + " s");
            });
            host_.info("snapshot: loaded " + std::to_string(counts.peers) + " peers in " +
                       std::to_string(counts.torrents) + " torrents in " + seconds_since(started) + " s (" +
                       std::to_string(counts.expired) + " expired while the tracker was down, dropped)");
        } catch (const std::exception& e) {
            // Never a reason not to start: the swarms refill within one announce interval.
            host_.error("snapshot: " + snapshot_path_ + " skipped, starting with no swarms: " + e.what());
        }
    }

    static std::string seconds_since(std::chrono::steady_clock::time_point t) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.2f",
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count());
        return buf;
    }

    static MemoryCacheOptions options(const chihaya::Config& config) {
        MemoryCacheOptions o;
        // Rounded up rather than refused, so that a value --check-config accepts also starts.
        uint32_t shards = 1;
        while (shards < static_cast<uint32_t>(config.integer("shards"))) shards <<= 1;
        o.shards = shards;
        o.shards_per_tick = static_cast<uint32_t>(config.integer("shards_per_tick"));
        o.address_counters = static_cast<uint32_t>(config.integer("address_counters"));
        return o;
    }

    chihaya::Host host_;
    MemoryCache cache_;
    std::string snapshot_path_;
};

}  // namespace

CHIHAYA_REGISTER_CACHE("memory", MemoryCacheDriver)
