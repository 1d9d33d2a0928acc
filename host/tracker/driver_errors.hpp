// What a cache driver's failures and misuse leave in the log: its own words, rate-limited.
//
// Clients only ever see the generic reason of a status (failure_reason in tracker.hpp): a
// driver's message may name hosts, ports or keys that are nobody else's business. The operator
// needs exactly those words, so they go to the log, attributed to the driver:
//   cache driver "redis": announce failed (unavailable): connection refused [41 more not logged]
// A store that is down fails every announce on every worker, so the log is rate-limited per
// driver: at most one line per window (10 s), carrying the latest message and the count of the
// failures not logged since the previous line. The limiter is two atomics: no lock on a path that
// every worker may take at once. abi.h forbids secrets in messages; the host also cuts a message
// at CHIHAYA_MESSAGE_CAP (a driver that forgot the NUL does not leak memory into the log) and
// replaces control characters (no forged log lines).
//
// Misuse of a completion is caught, not silent: a second `done` for one call is logged and
// ignored instead of answering the client twice or touching a call the frontend has already
// reused (CallGuard below).
#pragma once

#include <chihaya/abi.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

namespace chihaya {

class DriverErrorLog {
public:
    // `driver` names the driver in every line, e.g. `cache driver "redis"`.
    explicit DriverErrorLog(std::string driver, uint64_t window_ms = 10'000);

    // Counts one failed call and returns the line to log when one is due at `now_ms`, else
    // nullopt (the failure is counted into the next line). `message` is the driver's buffer.
    std::optional<std::string> failure_line(uint64_t now_ms, const char* call, chihaya_status status,
                                            const char* message);
    // Same for misuse of the ABI (a second `done`): its own window, so that failures cannot
    // hide it.
    std::optional<std::string> misuse_line(uint64_t now_ms, const std::string& what);

    // failure_line / misuse_line on the tracker's clock, written as a warning / an error.
    void failed(const char* call, chihaya_status status, const char* message) noexcept;
    void misused(const std::string& what) noexcept;

private:
    struct Limit {
        std::atomic<uint64_t> next_ms{0};
        std::atomic<uint64_t> suppressed{0};
        // True when a line is due now (and claims the window); else counts a suppressed one.
        bool due(uint64_t now_ms, uint64_t window_ms, uint64_t& suppressed_before);
    };
    std::string driver_;
    uint64_t window_ms_;
    Limit failures_;
    Limit misuse_;
};

// Tracker-private state of one call in flight (a member of AnnounceCall and ScrapeCall): which
// driver's log its completion reports to, and whether its `done` is still due.
//
// It catches a second `done` whenever the call has not been handed to a new request yet: the
// usual slips (done, then an exception that the SDK trampoline turns into a second done; done on
// two code paths of one callback; done inline and again from a thread a moment later). A second
// `done` that arrives after the frontend reused the call for another request cannot be told apart
// from that request's own `done`: the ABI gives the host only `ctx`, and ctx names the reused
// call. Catching that case too needs a generation in the completion (an ABI change), or never
// reusing a call (an allocation per request); neither is worth it for a driver bug that the
// conformance kit (chihaya-conformance) already reports.
struct CallGuard {
    static constexpr uint32_t kIdle = 0, kDue = 1, kDone = 2;
    DriverErrorLog* log = nullptr;
    uint32_t state = kIdle;  // accessed through std::atomic_ref: a driver may complete from any thread

    // Before the driver call.
    void arm(DriverErrorLog* driver_log) noexcept;
    // First line of a completion. False when this call's `done` already came (logged; the caller
    // must then ignore the call). On a failure status, logs the driver's message.
    bool finish(const char* call, chihaya_status status, const char* message) noexcept;
};

}  // namespace chihaya
