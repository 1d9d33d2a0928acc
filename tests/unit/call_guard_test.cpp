// The phases of one cache call: done once, expired once, late, and a stray done told from the
// newer request of the same memory by the generation its ctx carries.
#include "tracker/call_guard.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

using namespace chihaya;

using Finish = CallGuard::Finish;

TEST_CASE("a call's done is taken once; a second is refused") {
    DriverErrorLog log("cache driver \"x\"");
    CallGuard guard;
    uintptr_t tag = guard.arm(&log);
    CHECK(guard.finish(tag, "announce", CHIHAYA_OK, "") == Finish::Answer);
    CHECK(guard.finish(tag, "announce", CHIHAYA_OK, "") == Finish::Ignored);
    tag = guard.arm(&log);  // the frontend reuses the call for the next request
    CHECK(guard.finish(tag, "announce", CHIHAYA_UNAVAILABLE, "down") == Finish::Answer);
    CallGuard never_armed;
    CHECK(never_armed.finish(0, "scrape", CHIHAYA_OK, "") == Finish::Ignored);
}

TEST_CASE("a stray done of an earlier request leaves the newer request of that memory due") {
    DriverErrorLog log("cache driver \"x\"");
    CallGuard guard;
    const uintptr_t first = guard.arm(&log);
    CHECK(guard.finish(first, "announce", CHIHAYA_OK, "") == Finish::Answer);
    const uintptr_t second = guard.arm(&log);  // reused at once, and in flight
    CHECK(second != first);
    CHECK(guard.finish(first, "announce", CHIHAYA_OK, "") == Finish::Ignored);
    CHECK(guard.expire(1));  // still due: the stray changed nothing
    CHECK(guard.finish(second, "announce", CHIHAYA_OK, "") == Finish::Late);

    // The window: a stray is told apart for 2^kTagBits - 1 newer requests of the memory.
    CallGuard reused;
    const uintptr_t old = reused.arm(&log);
    CHECK(reused.finish(old, "scrape", CHIHAYA_OK, "") == Finish::Answer);
    for (uint32_t n = 1; n < (1u << CallGuard::kTagBits); ++n) {
        const uintptr_t tag = reused.arm(&log);
        CHECK(reused.finish(old, "scrape", CHIHAYA_OK, "") == Finish::Ignored);
        REQUIRE(reused.finish(tag, "scrape", CHIHAYA_OK, "") == Finish::Answer);
    }
    CHECK(reused.arm(&log) == old);  // generation 64 later the tag comes round again
}

TEST_CASE("ctx carries the call's address and its tag") {
    struct alignas(CallGuard::kCallAlign) Call { int x = 0; } call;
    for (uintptr_t tag : {uintptr_t(0), uintptr_t(1), CallGuard::kTagMask}) {
        uintptr_t back = 99;
        CHECK(CallGuard::call_of<Call>(CallGuard::ctx_of(call, tag), back) == &call);
        CHECK(back == tag);
    }
}

TEST_CASE("the deadline expires a due call once; its done is then late, a further one refused") {
    DriverErrorLog log("cache driver \"x\"");
    CallGuard guard;
    const uintptr_t tag = guard.arm(&log);
    CHECK(guard.expire(1000));
    CHECK_FALSE(guard.expire(1001));
    CHECK(guard.expired_ms == 1000);
    CHECK(guard.finish(tag, "announce", CHIHAYA_OK, "") == Finish::Late);
    CHECK(guard.finish(tag, "announce", CHIHAYA_OK, "") == Finish::Ignored);
    CHECK_FALSE(guard.expire(2000));  // done: nothing left to expire

    CallGuard answered;
    const uintptr_t t = answered.arm(&log);
    CHECK(answered.finish(t, "scrape", CHIHAYA_OK, "") == Finish::Answer);
    CHECK_FALSE(answered.expire(5));
    CallGuard idle;
    CHECK_FALSE(idle.expire(5));
}

TEST_CASE("two threads completing one call at once: exactly one wins") {
    DriverErrorLog log("cache driver \"x\"");
    for (int round = 0; round < 200; ++round) {
        CallGuard guard;
        const uintptr_t tag = guard.arm(&log);
        std::atomic<int> wins{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&] { wins += guard.finish(tag, "announce", CHIHAYA_OK, "") == Finish::Answer; });
        for (auto& t : threads) t.join();
        REQUIRE(wins == 1);
    }
}

TEST_CASE("the deadline racing a driver's done: exactly one of them wins") {
    DriverErrorLog log("cache driver \"x\"");
    int expired_first = 0, done_first = 0;
    for (int round = 0; round < 500; ++round) {
        CallGuard guard;
        const uintptr_t tag = guard.arm(&log);
        std::atomic<bool> go{false};
        bool expired = false;
        Finish finish = Finish::Ignored;
        std::thread deadline([&] {
            while (!go) {}
            expired = guard.expire(7);
        });
        std::thread driver([&] {
            while (!go) {}
            finish = guard.finish(tag, "announce", CHIHAYA_OK, "");
        });
        go = true;
        deadline.join();
        driver.join();
        // Either the client is answered by the deadline and the done is late, or by the done.
        REQUIRE(finish != Finish::Ignored);
        REQUIRE(expired == (finish == Finish::Late));
        (expired ? expired_first : done_first) += 1;
    }
    MESSAGE("deadline first " << expired_first << ", done first " << done_first);
}
