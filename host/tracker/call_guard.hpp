// Tracker-private state of one cache call in flight: whose `done` is due, late or misplaced.
//
// A member of AnnounceCall and ScrapeCall. `word` packs the call's generation and its phase,
// generation << 2 | phase, accessed through std::atomic_ref: a driver may complete from any
// thread while the frontend's thread expires the call at its deadline.
//
// Phases: idle (never armed), due (the driver holds the call), done, expired (the frontend's
// deadline answered the client "unavailable"; the driver still holds the call's memory, and its
// `done`, when it comes, is late: logged and ignored). Exactly one of finish(due) and expire()
// wins the race between a driver thread and the deadline; the loser changes nothing.
//
// Which request a `done` belongs to. A frontend reuses a call's memory for its next request (a
// UDP slot, an HTTP connection's call), and the ABI hands the host back only `ctx`. So every
// arm() starts a new generation, and ctx carries the generation's low kTagBits bits in the low
// bits of the call's address, which are zero because calls are aligned to kCallAlign. A `done`
// therefore names its request, not only its memory:
//   - a second `done` before the call was reused (done twice on two code paths; done, then an
//     exception the SDK trampoline turns into a second done): phase done, caught;
//   - a stray `done` after the call was reused, for up to 2^kTagBits - 1 = 63 newer requests of
//     that memory: its generation differs, caught, and the newer request is untouched, however
//     quickly the frontend recycled the call (the UDP worker reuses the most recently freed slot
//     first, an HTTP connection its one call);
//   - a stray older than that is still caught unless its generation matches modulo 64 while a
//     newer request of that memory is in flight (1 chance in 64); then it is taken for that
//     request's done, as any stray after reuse was before generations.
// What cannot be caught:
//   - a driver that keeps the completion *pointer* past done and reads ctx through it later reads
//     whatever request the host wrote there since. The C++ layer's chihaya::Completion copies
//     `done` and `ctx` when it is made (sdk/CHANGELOG.md), so a C++ driver's stray done carries
//     its own generation; a plugin built with an older driver.hpp read them at call time.
//   - a `done` after the frontend freed the call (an HTTP session is freed once its connection
//     closed and its last call came back): a use after free that no check in that memory sees.
// Recycling calls oldest-first would also widen the window, but only for UDP (an HTTP connection
// has one call), and it would walk the memory driver's inline path through every slot of the
// worker (cache misses, ~2.4 MB more resident per worker); the tag costs an OR and a compare.
#pragma once

#include "tracker/driver_errors.hpp"

#include <chihaya/abi.h>

#include <cstddef>
#include <cstdint>

namespace chihaya {

struct CallGuard {
    static constexpr uint32_t kIdle = 0, kDue = 1, kDone = 2, kExpired = 3;
    static constexpr uint32_t kTagBits = 6;
    static constexpr size_t kCallAlign = size_t{1} << kTagBits;  // alignas of AnnounceCall, ScrapeCall
    static constexpr uintptr_t kTagMask = kCallAlign - 1;

    DriverErrorLog* log = nullptr;
    uint32_t word = kIdle;     // generation << 2 | phase, through std::atomic_ref
    uint64_t expired_ms = 0;   // when expire() won (now_ms clock); read by the late done

    enum class Finish : uint8_t {
        Answer,   // the first done of a due call: answer the client
        Late,     // the first done of an expired call: the client had its answer; only let go
        Ignored,  // not this call's done (twice, stray, none in flight): logged, touch nothing
    };

    // Before the driver call: a new generation, due. Returns the tag that goes into ctx.
    uintptr_t arm(DriverErrorLog* driver_log) noexcept;
    // The frontend's deadline, on its thread: due → expired. False when the done came first (its
    // completion is then on its way to the frontend).
    bool expire(uint64_t now_ms) noexcept;
    // First line of a completion; `tag` is the one ctx carried. Logs misuse, a late done, and on
    // an Answer the driver's message of a failure status.
    Finish finish(uintptr_t tag, const char* call, chihaya_status status, const char* message) noexcept;

    // What goes into chihaya_completion.ctx, and back.
    template <class Call>
    static void* ctx_of(Call& call, uintptr_t tag) noexcept {
        static_assert(alignof(Call) >= kCallAlign, "the tag lives in the call address's low bits");
        return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(&call) | tag);
    }
    template <class Call>
    static Call* call_of(void* ctx, uintptr_t& tag) noexcept {
        const uintptr_t raw = reinterpret_cast<uintptr_t>(ctx);
        tag = raw & kTagMask;
        return reinterpret_cast<Call*>(raw & ~kTagMask);
    }
};

}  // namespace chihaya
