// Collectors for /metrics that read state outside the workers: drivers, flusher, process.
#include "metrics/host_collectors.hpp"

#include "flush/flusher.hpp"
#include "log/access_log.hpp"
#include "metrics/worker_metrics.hpp"
#include "plugin/loader.hpp"

#include <chihaya/abi.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>

namespace chihaya::metrics {
namespace {

double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

uint64_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    uint64_t pages = 0, resident = 0;
    statm >> pages >> resident;
    return resident * uint64_t(::sysconf(_SC_PAGESIZE));
}

struct SwarmTotals {
    uint64_t torrents = 0, seeders = 0, leechers = 0;
};

// A full scrape through the driver, waited for (the admin thread may block).
struct SwarmWalk {
    SwarmTotals totals;
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    chihaya_status status = CHIHAYA_OK;
    chihaya_completion completion{};

    static int visit(void* ctx, const chihaya_scrape_entry* e) {
        auto* walk = static_cast<SwarmWalk*>(ctx);
        ++walk->totals.torrents;
        walk->totals.seeders += e->complete;
        walk->totals.leechers += e->incomplete;
        return 1;
    }
    static void complete(void* ctx, chihaya_status status) noexcept {
        auto* holder = static_cast<std::shared_ptr<SwarmWalk>*>(ctx);
        std::shared_ptr<SwarmWalk> walk = std::move(*holder);
        delete holder;
        std::lock_guard lock(walk->mutex);
        walk->status = status;
        walk->done = true;
        walk->cv.notify_all();
    }
};

}  // namespace

void add_process_collector(Registry& registry, uint64_t plugins_loaded, uint64_t plugins_probed,
                           const ReloadCounters& reloads) {
    const double started = unix_now();
    registry.add_collector([started, plugins_loaded, plugins_probed, &reloads](Exposition& out) {
        out.family("chihaya_build_info", "gauge", "Version of the tracker and of the driver ABI it speaks; always 1.");
        const std::string abi = std::to_string(CHIHAYA_ABI_MAJOR) + "." + std::to_string(CHIHAYA_ABI_MINOR);
        out.sample("chihaya_build_info", {{"version", CHIHAYA_VERSION}, {"abi", abi}}, 1);
        out.family("chihaya_plugins", "gauge", "Plugin files at start-up by load result.");
        out.sample("chihaya_plugins", {{"result", "loaded"}}, double(plugins_loaded));
        out.sample("chihaya_plugins", {{"result", "not_needed"}}, double(plugins_probed));
        out.sample("chihaya_plugins", {{"result", "refused"}}, double(plugin_warning_count()));
        out.family("chihaya_process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch.");
        out.sample("chihaya_process_start_time_seconds", {}, started);
        out.family("chihaya_process_resident_memory_bytes", "gauge", "Resident memory of the process.");
        out.sample("chihaya_process_resident_memory_bytes", {}, double(resident_bytes()));
        out.family("chihaya_config_reloads_total", "counter", "SIGHUP reloads by result (failed: the file did not parse; the old configuration stayed).");
        out.sample("chihaya_config_reloads_total", {{"result", "ok"}}, double(reloads.ok.load()));
        out.sample("chihaya_config_reloads_total", {{"result", "failed"}}, double(reloads.failed.load()));
        out.family("chihaya_config_last_reload_success_timestamp_seconds", "gauge", "When the configuration was last loaded successfully.");
        const uint64_t last = reloads.last_ok_unix_s.load();
        out.sample("chihaya_config_last_reload_success_timestamp_seconds", {}, last ? double(last) : started);
        out.family("chihaya_access_log_dropped_total", "counter", "Access-log lines not written because of access_log_rate.");
        out.sample("chihaya_access_log_dropped_total", {}, double(access_log::dropped()));
    });
}

void add_swarm_collector(Registry& registry, CacheHandle cache, uint32_t refresh_s) {
    const chihaya_cache_vtable* v = cache.vtable;
    // The host's copy of the table (plugin/handshake.cpp) has every member of this host's ABI:
    // a driver built for 2.0 or 2.1 reads as NULL here.
    const bool has_stats = v->stats != nullptr;
    const bool has_walk = v->scrape_all != nullptr;
    if (!has_stats && !has_walk) return;
    struct State {
        std::chrono::steady_clock::time_point at{};
        SwarmTotals totals;
        bool valid = false;
        std::atomic<uint64_t> stats_failures{0};
    };
    auto state = std::make_shared<State>();
    registry.add_collector([cache, refresh_s, state, has_stats, has_walk](Exposition& out) {
        if (has_stats) {
            const auto failures = [&out](uint64_t n) {
                out.family("chihaya_cache_stats_failures_total", "counter",
                           "Scrapes of /metrics at which the cache driver's stats could not answer.");
                out.sample("chihaya_cache_stats_failures_total", {}, double(n));
            };
            // The driver's own counters, per family, read at every scrape (abi.h: cheap).
            chihaya_cache_stats s{};
            s.struct_size = sizeof s;
            if (cache.vtable->stats(cache.instance, &s) == CHIHAYA_OK) {
                out.family("chihaya_torrents", "gauge", "Torrents with at least one live peer in the cache.");
                out.sample("chihaya_torrents", {}, double(s.torrents));
                out.family("chihaya_torrents_with_peers", "gauge",
                           "Torrents with at least one live peer of the address family.");
                out.sample("chihaya_torrents_with_peers", {{"family", "ipv4"}}, double(s.torrents_ipv4));
                out.sample("chihaya_torrents_with_peers", {{"family", "ipv6"}}, double(s.torrents_ipv6));
                out.family("chihaya_peers", "gauge", "Live peers in the cache by address family and role.");
                out.sample("chihaya_peers", {{"family", "ipv4"}, {"role", "seeder"}}, double(s.seeders_ipv4));
                out.sample("chihaya_peers", {{"family", "ipv4"}, {"role", "leecher"}}, double(s.leechers_ipv4));
                out.sample("chihaya_peers", {{"family", "ipv6"}, {"role", "seeder"}}, double(s.seeders_ipv6));
                out.sample("chihaya_peers", {{"family", "ipv6"}, {"role", "leecher"}}, double(s.leechers_ipv6));
                failures(state->stats_failures.load());
                return;
            }
            // Cannot answer now: this scrape has no swarm gauges rather than the walk's, whose
            // chihaya_peers has no family label; a series whose labels flip with the driver's
            // health breaks every query and alert written against it.
            failures(state->stats_failures.fetch_add(1) + 1);
            return;
        }
        if (!has_walk) return;
        const auto now = std::chrono::steady_clock::now();
        if (!state->valid || now - state->at >= std::chrono::seconds(refresh_s)) {
            auto walk = std::make_shared<SwarmWalk>();
            walk->completion = {sizeof(chihaya_completion), 0, &SwarmWalk::complete, new std::shared_ptr<SwarmWalk>(walk)};
            cache.vtable->scrape_all(cache.instance, &SwarmWalk::visit, walk.get(), &walk->completion);
            std::unique_lock lock(walk->mutex);
            if (walk->cv.wait_for(lock, std::chrono::seconds(5), [&] { return walk->done; }) &&
                walk->status == CHIHAYA_OK) {
                state->totals = walk->totals;
                state->valid = true;
                state->at = now;
            }
        }
        if (!state->valid) return;
        out.family("chihaya_torrents", "gauge", "Torrents with at least one live peer in the cache.");
        out.sample("chihaya_torrents", {}, double(state->totals.torrents));
        // No family label: the walk sees only the counts a scrape reports (both families).
        out.family("chihaya_peers", "gauge", "Live peers in the cache by role (both address families together).");
        out.sample("chihaya_peers", {{"role", "seeder"}}, double(state->totals.seeders));
        out.sample("chihaya_peers", {{"role", "leecher"}}, double(state->totals.leechers));
    });
}

void add_flush_collector(Registry& registry, const Flusher* flusher) {
    registry.add_collector([flusher](Exposition& out) {
        static const FlushStats kNone;  // open mode: the families exist, at zero (one dashboard for both modes)
        const FlushStats& s = flusher ? flusher->stats() : kNone;
        out.family("chihaya_storage_calls_total", "counter", "Storage driver apply calls by status.");
        for (size_t i = 0; i < s.applies.size(); ++i)
            out.sample("chihaya_storage_calls_total", {{"call", "apply"}, {"status", status_name(i)}},
                       double(s.applies[i].load(std::memory_order_relaxed)));
        out.family("chihaya_storage_call_duration_seconds_total", "counter", "Time spent in storage apply calls.");
        out.sample("chihaya_storage_call_duration_seconds_total", {{"call", "apply"}},
                   double(s.apply_ns_sum.load(std::memory_order_relaxed)) / 1e9);
        out.family("chihaya_flush_batch_deltas", "histogram", "Peer deltas per flushed batch.");
        uint64_t cumulative = 0;
        for (size_t b = 0; b < s.batch_deltas.size(); ++b) {
            cumulative += s.batch_deltas[b].load(std::memory_order_relaxed);
            const std::string le = b < FlushStats::kBatchBounds.size() ? std::to_string(FlushStats::kBatchBounds[b]) : "+Inf";
            out.sample("chihaya_flush_batch_deltas_bucket", {}, {"le", le}, double(cumulative));
        }
        out.sample("chihaya_flush_batch_deltas_sum", {}, double(s.batch_deltas_sum.load(std::memory_order_relaxed)));
        out.sample("chihaya_flush_batch_deltas_count", {}, double(cumulative));
        out.family("chihaya_spool_batches", "gauge", "Sealed batches in the spool, not yet applied by the storage.");
        out.sample("chihaya_spool_batches", {}, flusher ? double(flusher->spool_depth()) : 0.0);
        out.family("chihaya_spool_oldest_batch_age_seconds", "gauge", "Age of the oldest spooled batch (0 when none).");
        out.sample("chihaya_spool_oldest_batch_age_seconds", {}, flusher ? double(flusher->oldest_spooled_age_s()) : 0.0);
    });
}

}  // namespace chihaya::metrics
