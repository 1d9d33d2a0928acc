// Rate-limited driver failure, timeout and misuse lines; the reasons are in the header.
#include "tracker/driver_errors.hpp"

#include "log/log.hpp"
#include "tracker/tracker.hpp"

#include <cstring>

namespace chihaya {
namespace {

const char* status_name(chihaya_status status) {
    switch (status) {
        case CHIHAYA_OK: return "ok";
        case CHIHAYA_INVALID: return "invalid";
        case CHIHAYA_NOT_FOUND: return "not found";
        case CHIHAYA_UNAVAILABLE: return "unavailable";
        case CHIHAYA_INTERNAL: return "internal";
        case CHIHAYA_KEY_MISMATCH: return "key mismatch";
        case CHIHAYA_FULL: return "full";
        case CHIHAYA_ADDRESS_LIMIT: return "address limit";
    }
    return "unknown status";
}

// The driver's message as it may be logged: at most CHIHAYA_MESSAGE_CAP - 1 bytes, up to the
// first NUL, control characters replaced.
std::string printable(const char* message) {
    if (!message) return "(no message)";
    std::string out(message, ::strnlen(message, CHIHAYA_MESSAGE_CAP - 1));
    for (char& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return out.empty() ? "(no message)" : out;
}

std::string suppressed_note(uint64_t n) {
    return n ? " [" + std::to_string(n) + " more not logged]" : "";
}

}  // namespace

DriverErrorLog::DriverErrorLog(std::string driver, uint64_t window_ms)
    : driver_(std::move(driver)), window_ms_(window_ms) {}

bool DriverErrorLog::Limit::due(uint64_t now, uint64_t window, uint64_t& suppressed_before) {
    uint64_t next = next_ms.load(std::memory_order_relaxed);
    if (now >= next && next_ms.compare_exchange_strong(next, now + window, std::memory_order_relaxed)) {
        suppressed_before = suppressed.exchange(0, std::memory_order_relaxed);
        return true;
    }
    suppressed.fetch_add(1, std::memory_order_relaxed);
    return false;
}

std::optional<std::string> DriverErrorLog::failure_line(uint64_t now, const char* call,
                                                        chihaya_status status, const char* message) {
    uint64_t before = 0;
    if (!failures_.due(now, window_ms_, before)) return std::nullopt;
    return driver_ + ": " + call + " failed (" + status_name(status) + "): " + printable(message) +
           suppressed_note(before);
}

std::optional<std::string> DriverErrorLog::timeout_line(uint64_t now, const char* call, uint64_t waited_ms) {
    uint64_t before = 0;
    if (!failures_.due(now, window_ms_, before)) return std::nullopt;
    return driver_ + ": " + call + " had no done after " + std::to_string(waited_ms) +
           " ms; the client was answered \"" + failure_reason(CHIHAYA_UNAVAILABLE) +
           "\" and the call's memory is kept for the driver until its done comes" + suppressed_note(before);
}

std::optional<std::string> DriverErrorLog::misuse_line(uint64_t now, const std::string& what) {
    uint64_t before = 0;
    if (!misuse_.due(now, window_ms_, before)) return std::nullopt;
    return driver_ + ": " + what + suppressed_note(before);
}

std::optional<std::string> DriverErrorLog::late_line(uint64_t now, const std::string& what) {
    uint64_t before = 0;
    if (!late_.due(now, window_ms_, before)) return std::nullopt;
    return driver_ + ": " + what + suppressed_note(before);
}

void DriverErrorLog::failed(const char* call, chihaya_status status, const char* message) noexcept try {
    if (auto line = failure_line(now_ms(), call, status, message)) log::warning("driver", *line);
} catch (...) {  // called from a driver's completion: nothing may unwind into it
}

void DriverErrorLog::timed_out(const char* call, uint64_t waited_ms) noexcept try {
    if (auto line = timeout_line(now_ms(), call, waited_ms)) log::warning("driver", *line);
} catch (...) {
}

void DriverErrorLog::misused(const std::string& what) noexcept try {
    if (auto line = misuse_line(now_ms(), what)) log::error("driver", *line);
} catch (...) {
}

void DriverErrorLog::came_late(const std::string& what) noexcept try {
    if (auto line = late_line(now_ms(), what)) log::error("driver", *line);
} catch (...) {
}

}  // namespace chihaya
