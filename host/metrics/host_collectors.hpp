// The families that are not per-worker counters: read from the drivers, the flusher, the
// plugin loader and the process at scrape time (on the admin thread).
#pragma once

#include "metrics/registry.hpp"
#include "tracker/tracker.hpp"

#include <atomic>
#include <cstdint>

namespace chihaya {

class Flusher;

namespace metrics {

// Config reloads, counted by reload/ and shown here.
struct ReloadCounters {
    std::atomic<uint64_t> ok{0};
    std::atomic<uint64_t> failed{0};
    std::atomic<uint64_t> last_ok_unix_s{0};
};

// chihaya_build_info, chihaya_plugins, process start time and memory, access-log drops.
// plugins_loaded: plugin files loaded into the tracker; plugins_probed: those that work but register
// no selected driver, left out (plugin/loader.hpp).
void add_process_collector(Registry& registry, uint64_t plugins_loaded, uint64_t plugins_probed,
                           const ReloadCounters& reloads);

// chihaya_torrents, chihaya_torrents_with_peers{family} and chihaya_peers{family, role} from the
// cache driver's stats (ABI 2.2) at every scrape. A driver without stats, or whose stats fail,
// is counted through its scrape_all instead, at most every `refresh_s` seconds so that a big
// tracker is not walked by every scrape: chihaya_torrents and chihaya_peers{role} only, as a
// scrape's counts have no family. Nothing when the driver has neither.
void add_swarm_collector(Registry& registry, CacheHandle cache, uint32_t refresh_s = 5);

// Storage applies, flush batch sizes, spool depth and oldest spooled batch (private mode; with
// a null flusher, open mode, the same families at zero).
void add_flush_collector(Registry& registry, const Flusher* flusher);

}  // namespace metrics
}  // namespace chihaya
