// The protocol-free tracker core: validation, limits and policy in front of the cache driver.
#pragma once

#include "config/config.hpp"
#include "tracker/driver_errors.hpp"
#include "tracker/types.hpp"

#include <chihaya/abi.h>

#include <memory>

namespace chihaya {

// A created cache driver: its function table (checked at start-up) and instance.
struct CacheHandle {
    const chihaya_cache_vtable* vtable = nullptr;
    chihaya_instance* instance = nullptr;
    const char* name = "cache";  // the driver's name, for its log lines
};

class Policy;
class Ledger;

// Private mode's collaborators; both null in open mode, which then costs one branch.
struct PrivateMode {
    const Policy* policy = nullptr;
    Ledger* ledger = nullptr;
};

class Tracker {
public:
    Tracker(const TrackerConfig& config, CacheHandle cache, PrivateMode private_mode = {});

    // Validates and normalises call.request (port 0 refused, numwant defaulted and capped to
    // max_numwant and to call.peers_capacity), in private mode admits it (passkey, torrent,
    // client, slots) and asks the cache for the peer's previous counters, then makes exactly one
    // driver call; a completed private announce is recorded in the ledger. call.complete runs
    // exactly once, possibly before this returns. Thread-safe; never blocks.
    void announce(AnnounceCall& call) const;

    // Counts for call.count torrents (1..max_scrape_torrents). Same completion rules.
    void scrape(ScrapeCall& call) const;

    // Full scrape: `visit` sees every torrent, then `done(ctx, failure)` runs once (failure null
    // on success). Refused with a failure when full scrape is disabled.
    void scrape_all(chihaya_scrape_visit visit, void* visit_ctx,
                    void (*done)(void* ctx, const char* failure, bool on_caller_thread),
                    void* done_ctx) const;

    // Housekeeping for the driver; call about once a second from one thread.
    void tick() const;

    const TrackerConfig& config() const { return config_; }

private:
    TrackerConfig config_;
    CacheHandle cache_;
    PrivateMode private_;
    decltype(chihaya_cache_vtable::scrape_all) scrape_all_ = nullptr;
    decltype(chihaya_cache_vtable::tick) tick_ = nullptr;
    std::unique_ptr<DriverErrorLog> errors_;  // the driver's messages, rate-limited (driver_errors.hpp)
};

// Client-visible reason for a driver status (the driver's own message stays in the log).
const char* failure_reason(chihaya_status status);

// Monotonic milliseconds, the clock handed to drivers.
uint64_t now_ms();

}  // namespace chihaya
