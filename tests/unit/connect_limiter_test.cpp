// The connect limiter: a burst, then the sustained rate; addresses apart; 0 disables.
#include "frontend/udp/connect_limiter.hpp"

#include <doctest/doctest.h>

using namespace chihaya;

namespace {

Endpoint v4(uint8_t last) {
    Endpoint e;
    e.family = CHIHAYA_IPV4;
    e.addr[0] = 127;
    e.addr[3] = last;
    return e;
}

}  // namespace

TEST_CASE("one address gets its burst, then the sustained rate; another address is unaffected") {
    udp::ConnectLimiter limiter(10, 20);
    int admitted = 0;
    for (int i = 0; i < 100; ++i) admitted += limiter.admit(v4(2), 1000);
    CHECK(admitted == 20);
    CHECK(limiter.admit(v4(3), 1000));  // a second address has its own bucket
    // One second later: 10 more.
    admitted = 0;
    for (int i = 0; i < 100; ++i) admitted += limiter.admit(v4(2), 2000);
    CHECK(admitted == 10);
    // The bucket never holds more than the burst, however long the quiet.
    admitted = 0;
    for (int i = 0; i < 100; ++i) admitted += limiter.admit(v4(2), 1000000);
    CHECK(admitted == 20);
}

TEST_CASE("IPv6 addresses count per /64") {
    udp::ConnectLimiter limiter(1, 2);
    Endpoint a, b;
    a.family = b.family = CHIHAYA_IPV6;
    a.addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    b = a;
    b.addr[15] = 2;  // same /64, another host part
    CHECK(limiter.admit(a, 0));
    CHECK(limiter.admit(b, 0));
    CHECK_FALSE(limiter.admit(a, 0));
}

TEST_CASE("a rate of 0 disables the limit") {
    udp::ConnectLimiter limiter(0, 1);
    for (int i = 0; i < 1000; ++i) REQUIRE(limiter.admit(v4(2), 0));
}

TEST_CASE("configure (SIGHUP): a limit set later applies at once; a lower burst caps the bucket") {
    udp::ConnectLimiter limiter(0, 1);  // no limit: no table yet
    for (int i = 0; i < 100; ++i) REQUIRE(limiter.admit(v4(2), 0));
    limiter.configure(5, 10);
    int admitted = 0;
    for (int i = 0; i < 100; ++i) admitted += limiter.admit(v4(2), 0);
    CHECK(admitted == 10);
    // Emptied, then 9 quiet seconds at 5/s under a burst lowered to 3: 3 tokens, not 45 or 10.
    admitted = 0;
    for (int i = 0; i < 100; ++i) admitted += limiter.admit(v4(3), 1000);
    CHECK(admitted == 10);
    limiter.configure(5, 3);
    admitted = 0;
    for (int i = 0; i < 100; ++i) admitted += limiter.admit(v4(3), 10000);
    CHECK(admitted == 3);
    limiter.configure(0, 3);  // and off again
    for (int i = 0; i < 100; ++i) REQUIRE(limiter.admit(v4(3), 10000));
}
