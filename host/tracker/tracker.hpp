// The protocol-free tracker core: validation, limits and policy in front of the cache driver.
#pragma once

#include "config/config.hpp"
#include "metrics/worker_metrics.hpp"
#include "tracker/driver_errors.hpp"
#include "tracker/types.hpp"

#include <chihaya/abi.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

namespace chihaya {

// A created cache driver: its function table (checked at start-up) and instance.
struct CacheHandle {
    const chihaya_cache_vtable* vtable = nullptr;
    chihaya_instance* instance = nullptr;
    const char* name = "cache";  // the driver's name, for its log lines
};

class Policy;
class Ledger;
class NewSwarmRate;

// Private mode's collaborators; both null in open mode, which then costs one branch.
struct PrivateMode {
    const Policy* policy = nullptr;
    Ledger* ledger = nullptr;
};

class Tracker {
public:
    // `limits`: the [limits] budgets handed to the cache with every announce and the per-address
    // new-swarm rate kept here (new_swarm_rate.hpp).
    Tracker(const TrackerConfig& config, CacheHandle cache, PrivateMode private_mode = {},
            const LimitsConfig& limits = {});
    ~Tracker();

    // Validates and normalises call.request (port 0 refused, numwant defaulted and capped to
    // max_numwant and to call.peers_capacity), in private mode admits it (passkey, torrent,
    // client, slots) and asks the cache for the peer's previous counters, then makes exactly one
    // driver call; a completed private announce is recorded in the ledger. call.complete runs
    // exactly once, possibly before this returns. Thread-safe; never blocks.
    void announce(AnnounceCall& call) const;

    // Private mode: a hint that an announce with this passkey follows, so that its user's
    // directory slot loads while the frontend parses the rest of the request. No-op when open.
    void prefetch_passkey(std::string_view passkey) const noexcept;

    // Counts for call.count torrents (1..max_scrape_torrents). Same completion rules.
    void scrape(ScrapeCall& call) const;

    // The per-call deadline ([tracker] driver_timeout_ms), kept by the frontend on its own thread
    // for a call that did not complete inline: true when the driver's `done` had still not come.
    // The call is then expired: its failure is failure_reason(CHIHAYA_UNAVAILABLE) (response /
    // failure), for the frontend to send at once; the timeout is logged (rate-limited, with the
    // driver's name) and counted (limit "driver_timeout_ms"). The driver still owns the call's
    // memory: the frontend must keep it, and not reuse it, until `complete` runs for the late
    // `done` (which is logged and answers nothing). False when the `done` won the race: its
    // completion is on its way to the frontend as usual. Never blocks; no lock.
    bool expire(AnnounceCall& call) const;
    bool expire(ScrapeCall& call) const;

    // Full scrape: `visit` sees every torrent, then `done(ctx, failure)` runs once (failure null
    // on success). Refused with a failure when full scrape is disabled.
    void scrape_all(chihaya_scrape_visit visit, void* visit_ctx,
                    void (*done)(void* ctx, const char* failure, bool on_caller_thread),
                    void* done_ctx) const;

    // Housekeeping for the driver; call about once a second from one thread.
    void tick() const;

    // The settings in force. A reload (reconfigure) publishes a new one; a reference taken before
    // stays valid (every published config lives as long as the tracker), so a request in flight
    // finishes under the settings it started with.
    const TrackerConfig& config() const { return settings_.load(std::memory_order_acquire)->tracker; }
    const LimitsConfig& limits() const { return settings_.load(std::memory_order_acquire)->limits; }

    // Live reload: swaps in `next` and `limits` for every later request, without a lock on the
    // request path. `mode` is a restart setting and is kept. Call from one thread at a time (the
    // main thread). The new-swarm buckets keep their tokens under a new rate.
    void reconfigure(const TrackerConfig& next, const LimitsConfig& limits);

private:
    struct Settings {
        TrackerConfig tracker;
        LimitsConfig limits;
    };
    std::atomic<const Settings*> settings_;
    std::vector<std::unique_ptr<Settings>> published_;  // every one published; a few bytes per reload
    CacheHandle cache_;
    PrivateMode private_;
    decltype(chihaya_cache_vtable::scrape_all) scrape_all_ = nullptr;
    decltype(chihaya_cache_vtable::tick) tick_ = nullptr;
    std::unique_ptr<DriverErrorLog> errors_;  // the driver's messages, rate-limited (driver_errors.hpp)
    std::unique_ptr<NewSwarmRate> new_swarms_;  // [limits] new_torrents_per_address, all workers
};

// Client-visible reason for a driver status (the driver's own message stays in the log).
const char* failure_reason(chihaya_status status);

// What a client is told when a [limits] budget refused its announce: fixed texts, one per
// budget, so that a client (and an operator reading its log) knows which.
namespace limit_failure {
inline constexpr const char* kFull = "tracker full: no new torrents or peers accepted now";
inline constexpr const char* kAddress = "too many torrents or peers from your address";
inline constexpr const char* kMaxTorrents = "tracker full: no new torrents accepted now";
inline constexpr const char* kMaxPeers = "tracker full: no new peers accepted now";
inline constexpr const char* kPeersPerAddress = "too many peers from your address in this torrent";
inline constexpr const char* kNewTorrents = "too many new torrents from your address; try again in a minute";
}  // namespace limit_failure
const char* budget_failure(metrics::Limit budget);

// The metrics class of a client-visible failure reason (null: Ok). Only failures pay for it.
metrics::Result failure_class(std::string_view failure);

// Monotonic milliseconds, the clock handed to drivers.
uint64_t now_ms();

}  // namespace chihaya
