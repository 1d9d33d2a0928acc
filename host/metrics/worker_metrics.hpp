// Per-worker request counters and latency histograms: written by one thread, summed on scrape.
//
// Hot-path contract: every field is a std::atomic<uint64_t> that only its owning worker thread
// writes, with a relaxed load + store (a plain `inc` on x86, no lock prefix, no shared cache
// line: each WorkerMetrics is aligned to and padded by whole cache lines). The admin thread reads
// them relaxed while they change; a scrape may see one worker's counters a few increments apart,
// which is what Prometheus counters allow. Threads that are not workers (a driver's own thread)
// write into `shared()` with fetch_add: those paths already paid a network round trip.
#pragma once

#include <chihaya/abi.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <ctime>

namespace chihaya::metrics {

enum class Protocol : uint8_t { Udp, Http, Count };
enum class Action : uint8_t { Connect, Announce, Scrape, Other, Count };

// What a request ended as; every failure class apart, as clients and operators tell them apart.
enum class Result : uint8_t {
    Ok,
    Malformed,          // unparseable packet or head, missing parameters, bad protocol id
    BadConnectionId,    // BEP 15 id expired or forged
    InvalidPort,        // port 0
    NotFound,           // HTTP path other than announce/scrape
    TooLarge,           // request head over max_request_head, too many info_hashes
    Refused,            // private-mode policy: passkey, account, client, slots, disabled torrent
    Unregistered,       // private mode: torrent not registered
    Unavailable,        // the driver's store is unreachable (CHIHAYA_UNAVAILABLE)
    Internal,           // driver or tracker bug (CHIHAYA_INTERNAL)
    Disabled,           // full scrape refused by configuration
    Dropped,            // not answered: every UDP call slot of the worker busy
    Count
};

// Limits that shed work (each hit is also a request's result or a dropped connection).
// DriverTimeout: a cache call answered "unavailable" at [tracker] driver_timeout_ms.
// MaxTorrents .. NewTorrentsPerAddress: an announce refused by a [limits] budget (the cache's
// CHIHAYA_FULL / CHIHAYA_ADDRESS_LIMIT).
enum class Limit : uint8_t {
    HttpConnections,
    UdpSlots,
    RequestHead,
    ScrapeTorrents,
    UdpConnects,
    DriverTimeout,
    MaxTorrents,
    MaxPeers,
    MaxPeersPerAddress,
    NewTorrentsPerAddress,
    Count
};

// Latency buckets (seconds, upper bounds), Prometheus-style cumulative on exposition.
inline constexpr std::array<double, 14> kLatencyBounds = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1.0};
inline constexpr size_t kBuckets = kLatencyBounds.size() + 1;  // + Inf

const char* name(Protocol p);
const char* name(Action a);
const char* name(Result r);
const char* name(Limit l);

// The bucket of a duration in nanoseconds (bounds above, then +Inf).
inline size_t bucket_of(uint64_t ns) noexcept {
    // Unrolled comparisons against integer nanoseconds: no floating point on the hot path.
    constexpr std::array<uint64_t, kLatencyBounds.size()> kNs = {
        50'000, 100'000, 250'000, 500'000, 1'000'000, 2'500'000, 5'000'000,
        10'000'000, 25'000'000, 50'000'000, 100'000'000, 250'000'000, 500'000'000, 1'000'000'000};
    size_t i = 0;
    while (i < kNs.size() && ns > kNs[i]) ++i;
    return i;
}

// Monotonic nanoseconds (vDSO, ~20 ns): taken once per UDP batch and twice per HTTP request.
// CHIHAYA_NO_METRICS (cmake -DCHIHAYA_METRICS=OFF) compiles counting and these clock reads out:
// a build for measuring what metrics cost (bench/README.md), never for production or the tests.
inline uint64_t now_ns() noexcept {
#ifdef CHIHAYA_NO_METRICS
    return 0;
#endif
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

using Counter = std::atomic<uint64_t>;

// Single-writer increment: no read-modify-write instruction, see the top of the file.
inline void bump(Counter& c, uint64_t n = 1) noexcept {
#ifdef CHIHAYA_NO_METRICS
    (void)c, (void)n;
    return;
#endif
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

struct Histogram {
    std::array<Counter, kBuckets> buckets{};
    Counter sum_ns{0};
    void observe(uint64_t ns, uint64_t n = 1) noexcept {
        bump(buckets[bucket_of(ns)], n);
        bump(sum_ns, ns * n);
    }
    void observe_shared(uint64_t ns) noexcept {
        buckets[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
        sum_ns.fetch_add(ns, std::memory_order_relaxed);
    }
};

constexpr size_t P = size_t(Protocol::Count), A = size_t(Action::Count), R = size_t(Result::Count);

// Driver call outcome, by chihaya_status (0..7; a later status counts as internal).
inline constexpr size_t kStatuses = 8;
// The `status` label of a driver call outcome.
inline const char* status_name(size_t status) noexcept {
    switch (status) {
        case CHIHAYA_OK: return "ok";
        case CHIHAYA_INVALID: return "invalid";
        case CHIHAYA_NOT_FOUND: return "not_found";
        case CHIHAYA_UNAVAILABLE: return "unavailable";
        case CHIHAYA_KEY_MISMATCH: return "key_mismatch";
        case CHIHAYA_FULL: return "full";
        case CHIHAYA_ADDRESS_LIMIT: return "address_limit";
        default: return "internal";
    }
}

struct alignas(64) WorkerMetrics {
    std::array<std::array<std::array<Counter, R>, A>, P> requests{};
    std::array<std::array<Histogram, A>, P> latency{};
    std::array<Counter, size_t(Limit::Count)> limits{};
    // Cache-driver calls made from this worker and completed inline (the memory driver).
    std::array<std::array<Counter, kStatuses>, 2> driver_calls{};  // [announce|scrape][status]
    std::array<Histogram, 2> driver_latency{};

    void request(Protocol p, Action a, Result r) noexcept { bump(requests[size_t(p)][size_t(a)][size_t(r)]); }
    void limit(Limit l) noexcept { bump(limits[size_t(l)]); }
};

// The calling thread's counters: its worker's after bind(), else shared() (fetch_add only
// through the *_shared paths; the plain bump paths are only taken on bound worker threads or
// in tests, where a lost increment is harmless and still free of undefined behaviour).
WorkerMetrics& shared() noexcept;
// Constant-initialised (no TLS wrapper call on access).
extern constinit thread_local WorkerMetrics* t_worker;
inline bool bound() noexcept { return t_worker != nullptr; }
inline WorkerMetrics& current() noexcept { return t_worker ? *t_worker : shared(); }
inline void bind(WorkerMetrics& worker) noexcept { t_worker = &worker; }

}  // namespace chihaya::metrics
