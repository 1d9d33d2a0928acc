// The phases of one cache call and the generation check of its `done`; reasons in the header.
#include "tracker/call_guard.hpp"

#include "tracker/tracker.hpp"

#include <atomic>
#include <string>

namespace chihaya {
namespace {

constexpr uint32_t kPhaseMask = 3;

uint32_t phase_of(uint32_t word) { return word & kPhaseMask; }
uintptr_t tag_of(uint32_t word) { return uintptr_t(word >> 2) & CallGuard::kTagMask; }

// Runs in a driver's completion: nothing may unwind into it, not even bad_alloc from the text.
template <class Text>
void misuse(DriverErrorLog* log, Text&& text, bool late = false) noexcept {
    if (!log) return;
    try {
        if (late) log->came_late(text());
        else log->misused(text());
    } catch (...) {
    }
}

}  // namespace

uintptr_t CallGuard::arm(DriverErrorLog* driver_log) noexcept {
    // Written only when it changes: a stray done of an earlier request may be reading it.
    if (log != driver_log) log = driver_log;
    std::atomic_ref<uint32_t> w(word);
    // Only the frontend's thread writes a new generation, and only once the previous request's
    // completion reached it, so a plain load is enough to build on.
    const uint32_t generation = (w.load(std::memory_order_relaxed) >> 2) + 1;
    w.store(generation << 2 | kDue, std::memory_order_release);
    return uintptr_t(generation) & kTagMask;
}

bool CallGuard::expire(uint64_t now_ms) noexcept {
    std::atomic_ref<uint32_t> w(word);
    uint32_t seen = w.load(std::memory_order_acquire);
    if (phase_of(seen) != kDue) return false;
    // Written before the exchange that publishes it; only a late done (after that) reads it.
    expired_ms = now_ms;
    return w.compare_exchange_strong(seen, (seen & ~kPhaseMask) | kExpired, std::memory_order_acq_rel,
                                     std::memory_order_acquire);
}

CallGuard::Finish CallGuard::finish(uintptr_t tag, const char* call, chihaya_status status,
                                    const char* message) noexcept {
    std::atomic_ref<uint32_t> w(word);
    uint32_t seen = w.load(std::memory_order_acquire);
    for (;;) {
        const uint32_t phase = phase_of(seen);
        if (tag_of(seen) != tag) {
            misuse(log, [&] {
                return std::string("done called for an earlier ") + call +
                       " whose memory now serves another request; ignored, the newer request "
                       "untouched (a driver calls each completion exactly once; run "
                       "chihaya-conformance against it)";
            });
            return Finish::Ignored;
        }
        if (phase == kDue || phase == kExpired) {
            if (!w.compare_exchange_weak(seen, (seen & ~kPhaseMask) | kDone, std::memory_order_acq_rel,
                                         std::memory_order_acquire))
                continue;  // the deadline moved it to expired meanwhile (or a spurious failure)
            if (phase == kExpired) {
                const uint64_t now = now_ms(), late = now > expired_ms ? now - expired_ms : 0;
                misuse(log, [&] {
                    return std::string(call) + " done came " + std::to_string(late) +
                           " ms after its deadline; ignored (the client had been answered \"" +
                           failure_reason(CHIHAYA_UNAVAILABLE) +
                           "\"; raise [tracker] driver_timeout_ms or make the driver time out first)";
                }, true);
                return Finish::Late;
            }
            // A refusal the client caused (a key mismatch, a [limits] budget) is an answer, not a
            // driver failure: never logged.
            if (status != CHIHAYA_OK && status != CHIHAYA_KEY_MISMATCH && status != CHIHAYA_FULL &&
                status != CHIHAYA_ADDRESS_LIMIT && log)
                log->failed(call, status, message);
            return Finish::Answer;
        }
        misuse(log, [&] {
            return std::string("done called ") + (phase == kDone ? "twice for one " : "for no ") + call +
                   " in flight; the extra call was ignored (a driver calls each completion exactly "
                   "once; run chihaya-conformance against it)";
        });
        return Finish::Ignored;
    }
}

}  // namespace chihaya
