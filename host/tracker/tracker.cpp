// The protocol-free announce and scrape path: normalise, one driver call, map the completion.
#include "tracker/tracker.hpp"

#include "accounting/ledger.hpp"
#include "private/policy.hpp"
#include "tracker/new_swarm_rate.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <time.h>

namespace chihaya {
namespace {

// The call being made on this thread, so that a completion can tell whether it arrived inline
// (before the driver returned) or from the driver's own thread later.
thread_local const void* t_calling = nullptr;

struct CallScope {
    explicit CallScope(const void* call) : previous(t_calling) { t_calling = call; }
    ~CallScope() { t_calling = previous; }
    const void* previous;
};

// Private mode: what the peer reported and what the cache knew of it before, for the ledger.
void record(const AnnounceCall& call) {
    const chihaya_announce_request& q = call.abi_request;
    const chihaya_announce_result& r = call.abi_result;
    PeerReport report;
    report.grant = call.grant;
    std::memcpy(report.peer_id.data(), q.peer_id, 20);
    report.family = q.family;
    report.uploaded = q.uploaded;
    report.downloaded = q.downloaded;
    report.left = q.left;
    report.event = Event(q.event);
    report.had_previous = r.had_previous != 0;
    report.previous_uploaded = r.previous_uploaded;
    report.previous_downloaded = r.previous_downloaded;
    report.seeders = r.complete;
    report.leechers = r.incomplete;
    report.snatched = r.downloaded;
    // Coarse: the storage keeps it as the peer's last-seen time, and a plain memory read beats
    // the precise clock's TSC read on every private announce.
    timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    report.unix_ms = uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
    call.ledger->record(report);
}

// One cache call's outcome and latency: into the worker's own counters when it completed inline
// (on the worker's thread), else into the shared block with atomic adds (a driver's thread,
// after a network round trip).
void count_driver_call(size_t call, chihaya_status status, uint64_t started_ns, bool on_caller_thread) noexcept {
    const size_t s = size_t(status) < metrics::kStatuses ? size_t(status) : size_t(CHIHAYA_INTERNAL);
    const uint64_t ns = metrics::now_ns() - started_ns;
    if (on_caller_thread) {
        metrics::WorkerMetrics& m = metrics::current();
        metrics::bump(m.driver_calls[call][s]);
        m.driver_latency[call].observe(ns);
    } else {
        metrics::WorkerMetrics& m = metrics::shared();
        m.driver_calls[call][s].fetch_add(1, std::memory_order_relaxed);
        m.driver_latency[call].observe_shared(ns);
    }
}

// Which [limits] budget refused a call (abi.h 2.3): as the driver says in refused_by, or, from a
// driver that does not say, guessed from the status and the request.
metrics::Limit refused_budget(const AnnounceCall& call, chihaya_status status) noexcept {
    const chihaya_announce_result& r = call.abi_result;
    switch (r.refused_by) {
        case CHIHAYA_BUDGET_MAX_TORRENTS: return metrics::Limit::MaxTorrents;
        case CHIHAYA_BUDGET_MAX_PEERS: return metrics::Limit::MaxPeers;
        case CHIHAYA_BUDGET_PEERS_PER_ADDRESS: return metrics::Limit::MaxPeersPerAddress;
        case CHIHAYA_BUDGET_NEW_SWARM: return metrics::Limit::NewTorrentsPerAddress;
    }
    if (status == CHIHAYA_FULL)  // an empty answer: most likely no swarm yet
        return r.complete + r.incomplete == 0 && call.abi_request.max_torrents != 0 ? metrics::Limit::MaxTorrents
                                                                                    : metrics::Limit::MaxPeers;
    return (call.abi_request.flags & CHIHAYA_ANNOUNCE_NO_NEW_SWARM) ? metrics::Limit::NewTorrentsPerAddress
                                                                    : metrics::Limit::MaxPeersPerAddress;
}

const Endpoint& client_of(const AnnounceRequest& request) noexcept {
    return request.client.family != 0 ? request.client : request.peer;
}

// The three *_done functions are what drivers call through the C ABI: nothing may unwind out of
// them into a driver's frames. A frontend that cannot take the answer (out of memory while
// posting it back) loses that one call; there is no one left to tell.
void announce_done(void* ctx, chihaya_status status) noexcept try {
    uintptr_t tag = 0;
    auto* call = CallGuard::call_of<AnnounceCall>(ctx, tag);
    const CallGuard::Finish finish = call->guard.finish(tag, "announce", status, call->abi_result.message);
    if (finish == CallGuard::Finish::Ignored) return;
    const bool on_caller_thread = t_calling == call;
    count_driver_call(0, status, call->started_ns, on_caller_thread);
    // A swarm this client created costs it a token of its new-swarm rate, answered or late:
    // the store holds the swarm either way.
    if (status == CHIHAYA_OK && call->abi_result.created_swarm && call->new_swarms)
        call->new_swarms->charge(client_of(call->request), now_ms(), call->new_swarm_rate);
    if (finish == CallGuard::Finish::Late) {
        // The client was answered "unavailable" at the deadline and the response stays as it
        // was. The store has applied the announce all the same, so a private tracker's ledger
        // follows it: the cache now holds these counters as the peer's previous ones, and the
        // report would otherwise be lost (its retry then chains from them, counting nothing twice).
        if (status == CHIHAYA_OK && call->ledger) {
            try {
                record(*call);
            } catch (...) {  // out of memory: lost, as in the answered path below
            }
        }
        call->complete(call, on_caller_thread);
        return;
    }
    const chihaya_announce_result& r = call->abi_result;
    AnnounceResponse& out = call->response;
    if (status == CHIHAYA_OK) {
        out.complete = r.complete;
        out.incomplete = r.incomplete;
        out.downloaded = r.downloaded;
        out.peer_count = std::min(r.peer_count, call->peers_capacity);
        if (call->ledger) {
            try {
                record(*call);
            } catch (...) {
                // Out of memory in the ledger: the peer's next announce chains from the
                // previous counters the cache now holds, so this report's bytes are lost; tell
                // the client to try again rather than pretend.
                out.failure = failure_reason(CHIHAYA_UNAVAILABLE);
            }
        }
    } else if (status == CHIHAYA_FULL || status == CHIHAYA_ADDRESS_LIMIT) {
        const metrics::Limit budget = refused_budget(*call, status);
        out.failure = budget_failure(budget);
        if (on_caller_thread) metrics::current().limit(budget);
        else metrics::shared().limits[size_t(budget)].fetch_add(1, std::memory_order_relaxed);
    } else {
        out.failure = failure_reason(status);
    }
    call->complete(call, on_caller_thread);
} catch (...) {
}

void scrape_done(void* ctx, chihaya_status status) noexcept try {
    uintptr_t tag = 0;
    auto* call = CallGuard::call_of<ScrapeCall>(ctx, tag);
    const CallGuard::Finish finish = call->guard.finish(tag, "scrape", status, call->abi_request.message);
    if (finish == CallGuard::Finish::Ignored) return;
    const bool on_caller_thread = t_calling == call;
    count_driver_call(1, status, call->started_ns, on_caller_thread);
    // Late: answered at the deadline; the failure stays as expire set it.
    if (finish == CallGuard::Finish::Answer && status != CHIHAYA_OK) call->failure = failure_reason(status);
    call->complete(call, on_caller_thread);
} catch (...) {
}

// What expiring a call leaves behind besides its failure: a log line and a count, on the
// frontend's thread (so into its worker's own counters).
void note_expired(DriverErrorLog& errors, const char* call, uint64_t started_ns) noexcept {
    errors.timed_out(call, (metrics::now_ns() - started_ns) / 1'000'000);
    metrics::current().limit(metrics::Limit::DriverTimeout);
}

struct ScrapeAllContext {
    void (*done)(void*, const char*, bool);
    void* ctx;
    chihaya_completion completion;
};

void scrape_all_done(void* ctx, chihaya_status status) noexcept try {
    auto* c = static_cast<ScrapeAllContext*>(ctx);
    auto done = c->done;
    void* done_ctx = c->ctx;
    bool inline_ = t_calling == c;
    delete c;  // full scrape is rare and opt-in; one allocation per call is fine
    done(done_ctx, status == CHIHAYA_OK ? nullptr : failure_reason(status), inline_);
} catch (...) {
}

}  // namespace

// CLOCK_MONOTONIC_COARSE: a few milliseconds of resolution is plenty for expiry in seconds, and
// it is a plain memory read where the precise clock reads the TSC on every announce (2.5 % of an
// HTTP announce in a profile).
uint64_t now_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

const char* failure_reason(chihaya_status status) {
    switch (status) {
        case CHIHAYA_OK: return nullptr;
        case CHIHAYA_INVALID: return "invalid request";
        case CHIHAYA_NOT_FOUND: return "unregistered torrent";
        case CHIHAYA_UNAVAILABLE: return "tracker storage unavailable";
        case CHIHAYA_KEY_MISMATCH: return "peer key mismatch: this peer announced with another key";
        case CHIHAYA_FULL: return limit_failure::kFull;
        case CHIHAYA_ADDRESS_LIMIT: return limit_failure::kAddress;
        case CHIHAYA_INTERNAL: break;
    }
    return "internal tracker error";
}

const char* budget_failure(metrics::Limit budget) {
    switch (budget) {
        case metrics::Limit::MaxTorrents: return limit_failure::kMaxTorrents;
        case metrics::Limit::MaxPeers: return limit_failure::kMaxPeers;
        case metrics::Limit::MaxPeersPerAddress: return limit_failure::kPeersPerAddress;
        case metrics::Limit::NewTorrentsPerAddress: return limit_failure::kNewTorrents;
        default: return limit_failure::kFull;
    }
}

metrics::Result failure_class(std::string_view failure) {
    using metrics::Result;
    struct Class { const char* text; Result result; };
    static const Class kClasses[] = {
        {"invalid port", Result::InvalidPort},
        {"invalid request", Result::Malformed},
        {"unregistered torrent", Result::Unregistered},  // driver NOT_FOUND and private policy
        {"tracker storage unavailable", Result::Unavailable},
        {"internal tracker error", Result::Internal},
        {"full scrape disabled", Result::Disabled},
        {"full scrape not supported by the cache driver", Result::Disabled},
        {"too many info_hashes", Result::TooLarge},
        {"too many info_hash in one scrape", Result::TooLarge},
        {private_failure::kUnknownPasskey, Result::Refused},
        {private_failure::kUserDisabled, Result::Refused},
        {private_failure::kTorrentDisabled, Result::Refused},
        {private_failure::kClientNotAllowed, Result::Refused},
        {private_failure::kSlotsFull, Result::Refused},
        {private_failure::kNotLoaded, Result::Unavailable},
        {limit_failure::kFull, Result::Refused},
        {limit_failure::kAddress, Result::Refused},
        {limit_failure::kMaxTorrents, Result::Refused},
        {limit_failure::kMaxPeers, Result::Refused},
        {limit_failure::kPeersPerAddress, Result::Refused},
        {limit_failure::kNewTorrents, Result::Refused},
    };
    for (const Class& c : kClasses)
        if (failure == c.text) return c.result;
    if (failure.starts_with("passkey required")) return Result::Refused;
    return Result::Malformed;  // the frontends' own parse failures ("missing port", ...)
}

Tracker::Tracker(const TrackerConfig& config, CacheHandle cache, PrivateMode private_mode,
                 const LimitsConfig& limits)
    : settings_(nullptr), cache_(cache), private_(private_mode),
      errors_(std::make_unique<DriverErrorLog>(std::string("cache driver \"") + cache.name + "\"")),
      new_swarms_(std::make_unique<NewSwarmRate>()) {
    // Optional members are used only when the driver's table is new enough to have them.
    const chihaya_cache_vtable* v = cache.vtable;
    scrape_all_ = CHIHAYA_HAS_MEMBER(v, chihaya_cache_vtable, scrape_all) ? v->scrape_all : nullptr;
    tick_ = CHIHAYA_HAS_MEMBER(v, chihaya_cache_vtable, tick) ? v->tick : nullptr;
    published_.push_back(std::make_unique<Settings>(Settings{config, limits}));
    settings_.store(published_.back().get(), std::memory_order_release);
}

Tracker::~Tracker() = default;

void Tracker::reconfigure(const TrackerConfig& next, const LimitsConfig& limits) {
    auto published = std::make_unique<Settings>(Settings{next, limits});
    published->tracker.mode = config().mode;  // restart-only
    published_.push_back(std::move(published));
    settings_.store(published_.back().get(), std::memory_order_release);
}

void Tracker::announce(AnnounceCall& call) const {
    const Settings& published = *settings_.load(std::memory_order_acquire);  // one snapshot per request
    const TrackerConfig& settings = published.tracker;
    const LimitsConfig& limits = published.limits;
    const AnnounceRequest& in = call.request;
    AnnounceResponse& out = call.response;
    out = AnnounceResponse{};
    out.interval = settings.announce_interval;
    out.min_interval = settings.min_interval;
    if (in.peer.port == 0) {
        out.failure = "invalid port";
        call.complete(&call, true);
        return;
    }
    uint32_t numwant = in.numwant < 0 ? settings.default_numwant : uint32_t(in.numwant);
    numwant = std::min({numwant, settings.max_numwant, call.peers_capacity});

    call.ledger = nullptr;
    const uint64_t now = now_ms();
    if (private_.policy) {
        if (const char* refusal = private_.policy->admit_announce(in.passkey, in, uint32_t(now / 1000), call.grant)) {
            out.failure = refusal;
            call.complete(&call, true);
            return;
        }
        call.ledger = private_.ledger;
        call.ledger->prefetch(call.grant, in.peer_id.bytes.data());
    }

    chihaya_announce_request& r = call.abi_request;
    r.struct_size = sizeof r;
    r.flags = private_.policy ? CHIHAYA_ANNOUNCE_TRACK_COUNTERS : 0;
    std::memcpy(r.info_hash, in.info_hash.bytes.data(), 20);
    std::memcpy(r.peer_id, in.peer_id.bytes.data(), 20);
    r.family = uint8_t(in.peer.family);
    r.event = uint8_t(in.event);
    r.port = in.peer.port;
    std::memcpy(r.addr, in.peer.addr.data(), 16);
    r.uploaded = in.uploaded;
    r.downloaded = in.downloaded;
    r.left = in.left;
    r.numwant = numwant;
    r.peer_ttl_s = settings.peer_lifetime;
    r.now_ms = now;
    r.key = in.key;
    r.has_key = in.has_key ? 1 : 0;
    // [limits]: the store enforces the budgets; the new-swarm rate is ours (the client's own
    // address: behind a trusted proxy the forwarded one, never ip=), and only the store knows
    // whether this announce would create a swarm, so an address out of tokens is flagged.
    // Private mode has no new-swarm rate: only registered torrents get this far, so there is no
    // flood of invented info_hashes to slow, and a seedbox re-announcing its thousands of
    // torrents after a restart (no snapshot) must not be refused for minutes.
    r.max_peers_per_address = limits.max_peers_per_address;
    r.reserved_limits = 0;
    r.max_torrents = limits.max_torrents;
    r.max_peers = limits.max_peers;
    const bool rate_new_swarms = !private_.policy;
    if (rate_new_swarms && !new_swarms_->may_create(client_of(in), now, limits.new_torrents_per_address))
        r.flags |= CHIHAYA_ANNOUNCE_NO_NEW_SWARM;
    call.new_swarms = rate_new_swarms ? new_swarms_.get() : nullptr;
    call.new_swarm_rate = limits.new_torrents_per_address;

    chihaya_announce_result& res = call.abi_result;
    res.struct_size = sizeof res;
    res.peers = call.peers;
    res.peers_capacity = numwant;
    res.peer_count = res.complete = res.incomplete = res.downloaded = 0;
    res.had_previous = 0;
    res.created_swarm = 0;
    res.refused_by = 0;
    res.message[0] = '\0';

    const uintptr_t tag = call.guard.arm(errors_.get());
    call.completion = {sizeof(chihaya_completion), 0, &announce_done, CallGuard::ctx_of(call, tag)};
    call.started_ns = metrics::now_ns();
    CallScope scope(&call);
    cache_.vtable->announce(cache_.instance, &r, &res, &call.completion);
}

void Tracker::prefetch_passkey(std::string_view passkey) const noexcept {
    if (private_.policy && !passkey.empty()) private_.policy->directory().prefetch_user(passkey);
}

void Tracker::scrape(ScrapeCall& call) const {
    const TrackerConfig& settings = config();  // one snapshot per request (reconfigure)
    call.failure = nullptr;
    if (call.count == 0 || call.count > settings.max_scrape_torrents) {
        call.failure = call.count == 0 ? "no info_hash" : "too many info_hashes";
        call.complete(&call, true);
        return;
    }
    if (private_.policy) {
        if (const char* refusal = private_.policy->admit_scrape(call.passkey)) {
            call.failure = refusal;
            call.complete(&call, true);
            return;
        }
    }
    chihaya_scrape_request& r = call.abi_request;
    r.struct_size = sizeof r;
    r.count = call.count;
    r.entries = call.entries;
    for (uint32_t i = 0; i < call.count; ++i) call.entries[i].struct_size = sizeof(chihaya_scrape_entry);
    r.now_ms = now_ms();
    r.message[0] = '\0';
    const uintptr_t tag = call.guard.arm(errors_.get());
    call.completion = {sizeof(chihaya_completion), 0, &scrape_done, CallGuard::ctx_of(call, tag)};
    call.started_ns = metrics::now_ns();
    CallScope scope(&call);
    cache_.vtable->scrape(cache_.instance, &r, &call.completion);
}

bool Tracker::expire(AnnounceCall& call) const {
    if (!call.guard.expire(now_ms())) return false;
    call.response.failure = failure_reason(CHIHAYA_UNAVAILABLE);  // the late done leaves it be
    note_expired(*errors_, "announce", call.started_ns);
    return true;
}

bool Tracker::expire(ScrapeCall& call) const {
    if (!call.guard.expire(now_ms())) return false;
    call.failure = failure_reason(CHIHAYA_UNAVAILABLE);
    note_expired(*errors_, "scrape", call.started_ns);
    return true;
}

void Tracker::scrape_all(chihaya_scrape_visit visit, void* visit_ctx,
                         void (*done)(void*, const char*, bool), void* done_ctx) const {
    if (!config().allow_full_scrape || private_.policy) {
        done(done_ctx, "full scrape disabled", true);
        return;
    }
    if (!scrape_all_) {
        done(done_ctx, "full scrape not supported by the cache driver", true);
        return;
    }
    auto* ctx = new ScrapeAllContext{done, done_ctx, {}};
    ctx->completion = {sizeof(chihaya_completion), 0, &scrape_all_done, ctx};
    CallScope scope(ctx);
    scrape_all_(cache_.instance, visit, visit_ctx, &ctx->completion);
}

void Tracker::tick() const {
    if (tick_) tick_(cache_.instance, now_ms());
}

}  // namespace chihaya
