// The driver-error log: one line per window with the count of the rest, a message that cannot
// forge or overrun a log line, timeouts counted with failures and late dones apart.
#include "tracker/driver_errors.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <string>

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

TEST_CASE("a timeout shares the failures' window; late dones and misuse have windows of their own") {
    DriverErrorLog log("cache driver \"slow\"", 10'000);
    auto timeout = log.timeout_line(1'000, "announce", 5003);
    REQUIRE(timeout);
    CHECK(*timeout == "cache driver \"slow\": announce had no done after 5003 ms; the client was answered "
                      "\"tracker storage unavailable\" and the call's memory is kept for the driver until "
                      "its done comes");
    // To the client a timeout is a failure: one line per window for both.
    CHECK_FALSE(log.failure_line(2'000, "announce", CHIHAYA_UNAVAILABLE, "down"));
    CHECK_FALSE(log.timeout_line(3'000, "scrape", 5000));
    // A slow store makes a late done per timeout; it must not hide a second done, nor the reverse.
    CHECK(log.late_line(3'001, "announce done came 7 ms after its deadline"));
    CHECK_FALSE(log.late_line(3'002, "announce done came 8 ms after its deadline"));
    CHECK(log.misuse_line(3'003, "done called twice"));
    auto next = log.timeout_line(11'000, "announce", 5001);
    REQUIRE(next);
    CHECK(next->ends_with("[2 more not logged]"));
}
