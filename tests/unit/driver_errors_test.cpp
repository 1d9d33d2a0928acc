// The driver-error log: one line per window with the count of the rest, a message that cannot
// forge or overrun a log line, and the double-`done` guard.
#include "tracker/driver_errors.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

using namespace chihaya;

TEST_CASE("one failure line per window, then the latest with the count of the rest") {
    DriverErrorLog log("cache driver \"redis\"", 10'000);
    auto first = log.failure_line(1'000, "announce", CHIHAYA_UNAVAILABLE, "connection refused");
    REQUIRE(first);
    CHECK(*first == "cache driver \"redis\": announce failed (unavailable): connection refused");
    CHECK_FALSE(log.failure_line(2'000, "announce", CHIHAYA_UNAVAILABLE, "connection refused"));
    CHECK_FALSE(log.failure_line(10'999, "scrape", CHIHAYA_INTERNAL, "boom"));
    auto next = log.failure_line(11'000, "announce", CHIHAYA_INVALID, "bad key");
    REQUIRE(next);
    CHECK(*next == "cache driver \"redis\": announce failed (invalid): bad key [2 more not logged]");
    // Misuse has its own window: a storm of failures does not hide it.
    CHECK(log.misuse_line(11'001, "done called twice"));
    CHECK_FALSE(log.misuse_line(11'002, "done called twice"));
}

TEST_CASE("a message is cut at CHIHAYA_MESSAGE_CAP and cannot forge log lines") {
    DriverErrorLog log("cache driver \"x\"", 0);
    char unterminated[CHIHAYA_MESSAGE_CAP + 8];
    std::memset(unterminated, 'a', sizeof unterminated);
    auto line = log.failure_line(1, "announce", CHIHAYA_INTERNAL, unterminated);
    REQUIRE(line);
    CHECK(line->find(std::string(CHIHAYA_MESSAGE_CAP - 1, 'a')) != std::string::npos);
    CHECK(line->find(std::string(CHIHAYA_MESSAGE_CAP, 'a')) == std::string::npos);
    line = log.failure_line(2, "announce", CHIHAYA_INTERNAL, "one\nFAKE line\r\x1b[2J");
    REQUIRE(line);
    CHECK(line->find("one?FAKE line??[2J") != std::string::npos);
    line = log.failure_line(3, "announce", CHIHAYA_UNAVAILABLE, "");
    CHECK(line->find("(no message)") != std::string::npos);
}

TEST_CASE("a call's done is taken once; a second is refused") {
    DriverErrorLog log("cache driver \"x\"");
    CallGuard guard;
    guard.arm(&log);
    CHECK(guard.finish("announce", CHIHAYA_OK, ""));
    CHECK_FALSE(guard.finish("announce", CHIHAYA_OK, ""));
    guard.arm(&log);  // the frontend reuses the call for the next request
    CHECK(guard.finish("announce", CHIHAYA_UNAVAILABLE, "down"));
    CallGuard never_armed;
    CHECK_FALSE(never_armed.finish("scrape", CHIHAYA_OK, ""));
}

TEST_CASE("two threads completing one call at once: exactly one wins") {
    DriverErrorLog log("cache driver \"x\"");
    for (int round = 0; round < 200; ++round) {
        CallGuard guard;
        guard.arm(&log);
        std::atomic<int> wins{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&] { wins += guard.finish("announce", CHIHAYA_OK, "") ? 1 : 0; });
        for (auto& t : threads) t.join();
        REQUIRE(wins == 1);
    }
}
