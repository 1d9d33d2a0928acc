// BEP 15 connection ids: window validity, binding to the address, and unforgeability.
#include "frontend/udp/connection_id.hpp"

#include <doctest/doctest.h>

using namespace chihaya;

namespace {

Endpoint client(uint8_t last, uint16_t port = 6881, chihaya_family family = CHIHAYA_IPV4) {
    Endpoint e;
    e.family = family;
    e.addr[0] = 203, e.addr[1] = 0, e.addr[2] = 113, e.addr[3] = last;
    e.port = port;
    return e;
}

ConnectionIdKey fixed_key(uint8_t seed = 1) {
    std::array<uint8_t, 16> secret{};
    for (size_t i = 0; i < secret.size(); ++i) secret[i] = uint8_t(seed + i);
    return ConnectionIdKey(secret);
}

constexpr uint64_t W = ConnectionIdKey::window_s;

}  // namespace

TEST_CASE("valid in the issuing window and the next, not after") {
    auto key = fixed_key();
    const uint64_t t = 1000 * W + 17;
    uint64_t id = key.issue(client(1), t);
    CHECK(key.valid(id, client(1), t));
    CHECK(key.valid(id, client(1), 1000 * W));            // start of the same window
    CHECK(key.valid(id, client(1), 1001 * W - 1));        // end of the same window
    CHECK(key.valid(id, client(1), 1001 * W));            // next window
    CHECK(key.valid(id, client(1), 1002 * W - 1));
    CHECK_FALSE(key.valid(id, client(1), 1002 * W));      // the window after
    CHECK_FALSE(key.valid(id, client(1), 999 * W + 5));   // before it was issued
}

TEST_CASE("window 0 works and has no previous window") {
    auto key = fixed_key();
    uint64_t id = key.issue(client(1), 0);
    CHECK(key.valid(id, client(1), 5));
    CHECK(key.valid(id, client(1), W));
}

TEST_CASE("bound to address and family, not to the port") {
    auto key = fixed_key();
    const uint64_t t = 5000;
    uint64_t id = key.issue(client(1), t);
    CHECK_FALSE(key.valid(id, client(2), t));
    CHECK(key.valid(id, client(1, 6882), t));  // same host, another socket (libtorrent, NAT)
    CHECK_FALSE(key.valid(id, client(1, 6881, CHIHAYA_IPV6), t));
    CHECK(key.issue(client(1), t) == id);  // deterministic: no server state
}

TEST_CASE("flipping any bit of an id makes it invalid") {
    auto key = fixed_key();
    const uint64_t t = 77777;
    uint64_t id = key.issue(client(9), t);
    for (int bit = 0; bit < 64; ++bit) CHECK_FALSE(key.valid(id ^ (1ULL << bit), client(9), t));
}

TEST_CASE("different keys give different ids") {
    auto a = fixed_key(1), b = fixed_key(2);
    CHECK(a.issue(client(1), 100) != b.issue(client(1), 100));
    CHECK_FALSE(b.valid(a.issue(client(1), 100), client(1), 100));

    auto r1 = ConnectionIdKey::random(), r2 = ConnectionIdKey::random();
    CHECK(r1.issue(client(1), 100) != r2.issue(client(1), 100));
    CHECK(r1.valid(r1.issue(client(1), 100), client(1), 100));
}

TEST_CASE("hosts sharing a secret accept each other's ids") {
    auto a = ConnectionIdKey::from_hex("00112233445566778899aabbccddeeff");
    auto b = ConnectionIdKey::from_hex("00112233445566778899AABBCCDDEEFF");
    auto other = ConnectionIdKey::from_hex("ffeeddccbbaa99887766554433221100");
    uint64_t id = a.issue(client(3), 1000);
    CHECK(b.valid(id, client(3), 1000));
    CHECK_FALSE(other.valid(id, client(3), 1000));
    CHECK_THROWS(ConnectionIdKey::from_hex("0011"));
    CHECK_THROWS(ConnectionIdKey::from_hex("zz112233445566778899aabbccddeeff"));
}
