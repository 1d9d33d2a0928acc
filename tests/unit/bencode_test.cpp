// Bencoded tracker responses: exact bytes of every response shape, and buffers that are too small.
#include "frontend/http/bencode.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

using namespace chihaya;
using namespace chihaya::http;

namespace {

std::string bytes(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

AnnounceResponse counts(uint32_t peer_count) {
    AnnounceResponse r;
    r.interval = 1800;
    r.min_interval = 900;
    r.complete = 5;
    r.incomplete = 3;
    r.downloaded = 7;
    r.peer_count = peer_count;
    return r;
}

const std::string kCounts = "d8:completei5e10:downloadedi7e10:incompletei3e8:intervali1800e12:min intervali900e";

// 10.0.0.1:6881 and 192.168.1.2:80
const std::vector<uint8_t> kPeers4 = {10, 0, 0, 1, 0x1a, 0xe1, 192, 168, 1, 2, 0x00, 0x50};
// [2001:db8::1]:6881
const std::vector<uint8_t> kPeers6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x1a, 0xe1};

template <class F>
std::string run(F&& write, size_t cap = 4096) {
    std::vector<char> buf(cap);
    const size_t n = write(std::span<char>(buf));
    return std::string(buf.data(), n);
}

}  // namespace

TEST_CASE("compact IPv4 announce") {
    const std::string got = run([&](std::span<char> out) {
        return write_announce(out, counts(2), CHIHAYA_IPV4, kPeers4.data(), true);
    });
    CHECK(got == kCounts + "5:peers12:" + bytes(kPeers4) + "e");
}

TEST_CASE("compact IPv4 announce with no peers") {
    const std::string got = run([&](std::span<char> out) {
        return write_announce(out, counts(0), CHIHAYA_IPV4, nullptr, true);
    });
    CHECK(got == kCounts + "5:peers0:e");
}

TEST_CASE("peers6 announce for an IPv6 requester") {
    const std::string got = run([&](std::span<char> out) {
        return write_announce(out, counts(1), CHIHAYA_IPV6, kPeers6.data(), true);
    });
    CHECK(got == kCounts + "6:peers618:" + bytes(kPeers6) + "e");
    CHECK(got.find("5:peers") == std::string::npos);  // never both families
}

TEST_CASE("dictionary model (compact=0) lists ip and port, no peer id") {
    const std::string v4 = run([&](std::span<char> out) {
        return write_announce(out, counts(2), CHIHAYA_IPV4, kPeers4.data(), false);
    });
    CHECK(v4 == kCounts + "5:peersl" "d2:ip8:10.0.0.14:porti6881ee" "d2:ip11:192.168.1.24:porti80ee" "ee");

    const std::string v6 = run([&](std::span<char> out) {
        return write_announce(out, counts(1), CHIHAYA_IPV6, kPeers6.data(), false);
    });
    CHECK(v6 == kCounts + "5:peersl" "d2:ip11:2001:db8::14:porti6881ee" "ee");

    const std::string none = run([&](std::span<char> out) {
        return write_announce(out, counts(0), CHIHAYA_IPV4, nullptr, false);
    });
    CHECK(none == kCounts + "5:peerslee");
}

TEST_CASE("failure") {
    const std::string got = run([](std::span<char> out) { return write_failure(out, "invalid info_hash"); });
    CHECK(got == "d14:failure reason17:invalid info_hashe");
    CHECK(run([](std::span<char> out) { return write_failure(out, ""); }) == "d14:failure reason0:e");
}

TEST_CASE("scrape with two hashes") {
    chihaya_scrape_entry e[2] = {};
    std::memset(e[0].info_hash, 0xaa, 20);
    std::memset(e[1].info_hash, 0xbb, 20);
    e[0].complete = 1;
    e[0].downloaded = 2;
    e[0].incomplete = 3;
    e[1].complete = 4000000000u;
    const std::string got = run([&](std::span<char> out) { return write_scrape(out, e); });
    const std::string expect = "d5:filesd"
                               "20:" + std::string(20, '\xaa') + "d8:completei1e10:downloadedi2e10:incompletei3ee"
                               "20:" + std::string(20, '\xbb') + "d8:completei4000000000e10:downloadedi0e10:incompletei0ee"
                               "ee";
    CHECK(got == expect);
    CHECK(run([](std::span<char> out) { return write_scrape(out, {}); }) == "d5:filesdee");
}

TEST_CASE("buffer too small: 0, for every writer and every cut") {
    const size_t full = run([&](std::span<char> out) {
        return write_announce(out, counts(2), CHIHAYA_IPV4, kPeers4.data(), true);
    }).size();
    for (size_t cap = 0; cap < full; ++cap) {
        std::vector<char> buf(cap);
        CHECK(write_announce(buf, counts(2), CHIHAYA_IPV4, kPeers4.data(), true) == 0);
    }
    std::vector<char> exact(full);
    CHECK(write_announce(exact, counts(2), CHIHAYA_IPV4, kPeers4.data(), true) == full);

    std::vector<char> small(10);
    CHECK(write_failure(small, "a reason longer than ten bytes") == 0);
    chihaya_scrape_entry e{};
    CHECK(write_scrape(small, std::span<const chihaya_scrape_entry>(&e, 1)) == 0);
    CHECK(write_announce(small, counts(2), CHIHAYA_IPV4, kPeers4.data(), false) == 0);
}

TEST_CASE("size bounds hold at the extremes") {
    AnnounceResponse r;
    r.interval = r.min_interval = r.complete = r.incomplete = r.downloaded = UINT32_MAX;
    constexpr uint32_t n = 50;
    r.peer_count = n;
    std::vector<uint8_t> peers(n * 18, 0xff);
    for (uint32_t i = 0; i < n; ++i) {
        peers[i * 18 + 0] = 0xfe;   // a non-mapped IPv6 with the longest text form
        peers[i * 18 + 16] = 0xff;  // port 65535
    }
    for (bool compact : {true, false}) {
        std::vector<char> buf(announce_bound(n));
        CHECK(write_announce(buf, r, CHIHAYA_IPV6, peers.data(), compact) != 0);
    }
    std::vector<chihaya_scrape_entry> entries(3);
    for (auto& e : entries) e.complete = e.incomplete = e.downloaded = UINT32_MAX;
    std::vector<char> buf(scrape_bound(entries.size()));
    CHECK(write_scrape(buf, entries) != 0);
    std::vector<char> fbuf(failure_bound(CHIHAYA_MESSAGE_CAP));
    CHECK(write_failure(fbuf, std::string(CHIHAYA_MESSAGE_CAP, 'x')) != 0);
}

TEST_CASE("a warning message follows the peers, keeping keys sorted") {
    AnnounceResponse r = counts(0);
    r.warning = "ip parameter ignored";
    const std::string got = run([&](std::span<char> out) {
        return write_announce(out, r, CHIHAYA_IPV4, nullptr, true);
    });
    CHECK(got == kCounts + "5:peers0:15:warning message20:ip parameter ignorede");
    const size_t exact = got.size();
    CHECK(exact <= announce_bound(0) + warning_bound(std::strlen(r.warning)));
    CHECK(run([&](std::span<char> out) { return write_announce(out, r, CHIHAYA_IPV4, nullptr, true); },
              exact - 1)
              .empty());
}
