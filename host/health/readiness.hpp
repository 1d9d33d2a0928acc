// /readyz: can the drivers serve right now? A live probe of the cache, the storage driver's own
// word on its connection (ABI 2.2 health) and the flusher's last word.
#pragma once

#include "tracker/tracker.hpp"

#include <chihaya/abi.h>

#include <chrono>
#include <mutex>
#include <string>

namespace chihaya {

class Flusher;
class Directory;

// The storage driver as readiness asks it: private mode only (open mode never uses the storage).
struct StorageHealth {
    const chihaya_storage_vtable* vtable = nullptr;  // null, or a vtable whose health may be null
    chihaya_instance* instance = nullptr;
    std::string name;
};

class Readiness {
public:
    // `flusher` and `directory` are null, and `storage` empty, in open mode.
    Readiness(CacheHandle cache, const Flusher* flusher, const Directory* directory,
              StorageHealth storage = {});

    // Scrapes one (absent) torrent through the cache driver and waits up to kProbeTimeout for
    // its answer: a Redis that is down answers CHIHAYA_UNAVAILABLE after its command timeout, and
    // the next probe after it is back succeeds (nothing latches). In private mode the registry
    // must be loaded, the storage driver must say its store is reachable (its health, when it
    // has one: a state query that does not wait, kept current by the driver also without
    // traffic) and the last storage apply must not have failed. Results are reused for kReuse,
    // so a load balancer polling every 100 ms does not become load. Thread-safe.
    bool check(std::string& why);

    static constexpr auto kProbeTimeout = std::chrono::seconds(2);
    static constexpr auto kReuse = std::chrono::milliseconds(500);

private:
    bool probe_cache(std::string& why) const;
    bool storage_healthy(std::string& why) const;

    CacheHandle cache_;
    StorageHealth storage_;
    const Flusher* flusher_;
    const Directory* directory_;
    std::mutex mutex_;
    std::chrono::steady_clock::time_point checked_{};
    bool ready_ = false;
    std::string why_;
};

}  // namespace chihaya
