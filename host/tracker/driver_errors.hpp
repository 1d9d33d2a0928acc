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
// Misuse of a completion is caught, not silent: a second `done` for one call, or one that comes
// after the frontend's deadline answered the client, is logged and ignored (call_guard.hpp).
// A call whose `done` has not come by that deadline is logged here as a failure of its own.
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
    // Same for a call whose `done` had not come after `waited_ms` (the frontend's deadline),
    // counted with the failures: to the client it is one.
    std::optional<std::string> timeout_line(uint64_t now_ms, const char* call, uint64_t waited_ms);
    // Same for misuse of the ABI (a second `done`): its own window, so that failures cannot
    // hide it.
    std::optional<std::string> misuse_line(uint64_t now_ms, const std::string& what);
    // Same for a `done` that came after the deadline: a window of its own again, since a slow
    // store makes one per timeout and would otherwise hide a second `done`.
    std::optional<std::string> late_line(uint64_t now_ms, const std::string& what);

    // The lines above on the tracker's clock: failures and timeouts as warnings, misuse and
    // late `done`s (both break abi.h's rules) as errors.
    void failed(const char* call, chihaya_status status, const char* message) noexcept;
    void timed_out(const char* call, uint64_t waited_ms) noexcept;
    void misused(const std::string& what) noexcept;
    void came_late(const std::string& what) noexcept;

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
    Limit late_;
};

}  // namespace chihaya
