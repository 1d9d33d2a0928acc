// The memory driver's snapshot: round trip, expiry over downtime, and refusal of bad files.
#include "memory_cache.hpp"

#include <doctest/doctest.h>
#include <sodium.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace chihaya::memory;

namespace {

std::string temp_path(const char* name) {
    return (std::filesystem::temp_directory_path() / ("chihaya-snapshot-test-" + std::to_string(::getpid()) + "-" + name)).string();
}

chihaya_status announce(MemoryCache& cache, uint8_t torrent, uint16_t port, uint8_t family, uint64_t left,
                        uint32_t ttl_s, uint64_t now_ms, uint8_t event = CHIHAYA_EVENT_STARTED) {
    chihaya_announce_request r{};
    r.struct_size = sizeof r;
    std::memset(r.info_hash, torrent, 20);
    r.family = family;
    r.event = event;
    r.port = port;
    r.addr[0] = 10;
    r.addr[15] = 1;
    r.left = left;
    r.numwant = 0;
    r.peer_ttl_s = ttl_s;
    r.now_ms = now_ms;
    uint8_t peers[1];
    chihaya_announce_result res{};
    res.struct_size = sizeof res;
    res.peers = peers;
    return cache.announce(r, res);
}

std::vector<char> read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}
void write_all(const std::string& path, const std::vector<char>& data) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(data.data(), std::streamsize(data.size()));
}

struct SwarmCountsView {
    uint32_t complete, incomplete, downloaded;
};

SwarmCountsView counts(MemoryCache& cache, uint8_t torrent, uint64_t now_ms) {
    chihaya_scrape_entry e{};
    e.struct_size = sizeof e;
    std::memset(e.info_hash, torrent, 20);
    chihaya_scrape_request r{};
    r.struct_size = sizeof r;
    r.count = 1;
    r.entries = &e;
    r.now_ms = now_ms;
    REQUIRE(cache.scrape(r) == CHIHAYA_OK);
    return {e.complete, e.incomplete, e.downloaded};
}

void fill(MemoryCache& cache, uint64_t now) {
    for (uint16_t p = 1; p <= 100; ++p) REQUIRE(announce(cache, 1, p, CHIHAYA_IPV4, p % 4 ? 1 : 0, 1000, now) == CHIHAYA_OK);
    REQUIRE(announce(cache, 1, 500, CHIHAYA_IPV4, 0, 1000, now, CHIHAYA_EVENT_COMPLETED) == CHIHAYA_OK);
    REQUIRE(announce(cache, 2, 7, CHIHAYA_IPV6, 5, 1000, now) == CHIHAYA_OK);
    REQUIRE(announce(cache, 3, 8, CHIHAYA_IPV4, 5, 2, now) == CHIHAYA_OK);  // short-lived
}
}  // namespace

TEST_CASE("a snapshot restores every swarm: peers, roles, families and snatches") {
    const std::string path = temp_path("roundtrip");
    const uint64_t now = 1'000'000;
    {
        MemoryCache cache({16, 16}, 0);
        fill(cache, now);
        auto saved = cache.save_snapshot(path, now);
        CHECK(saved.torrents == 3);
        CHECK(saved.peers == 103);
        CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
    }
    MemoryCache fresh({64, 16}, 500);  // another clock origin and shard count
    auto loaded = fresh.load_snapshot(path, 2'000, [](uint64_t) {});
    CHECK(loaded.peers == 103);
    CHECK(loaded.expired == 0);
    CHECK(fresh.peer_count() == 103);
    // The stats (ABI 2.2) count what was loaded: torrents 1 and 3 in IPv4, 2 in IPv6.
    const CacheStats s = fresh.stats();
    CHECK(s.torrents == 3);
    CHECK(s.torrents_v4 == 2);
    CHECK(s.torrents_v6 == 1);
    CHECK(s.seeders_v4 == 26);
    CHECK(s.leechers_v4 == 76);
    CHECK(s.seeders_v6 == 0);
    CHECK(s.leechers_v6 == 1);
    auto a = counts(fresh, 1, 2'000);
    CHECK(a.complete == 26);    // p % 4 == 0 (25) + the completed one
    CHECK(a.incomplete == 75);
    CHECK(a.downloaded == 1);
    CHECK(counts(fresh, 2, 2'000).incomplete == 1);
    // The short-lived peer keeps its remaining time: gone 3 s later, the others stay.
    CHECK(counts(fresh, 3, 2'000 + 3'000).incomplete == 0);
    CHECK(counts(fresh, 1, 2'000 + 3'000).incomplete == 75);
    std::filesystem::remove(path);
}

TEST_CASE("peers whose lifetime ran out while the tracker was down are dropped") {
    const std::string path = temp_path("downtime");
    {
        MemoryCache cache({16, 16}, 0);
        fill(cache, 10'000);
        cache.save_snapshot(path, 10'000);
    }
    // Pretend the file was written 10 s earlier: written_unix_s at offset 24, then re-hash.
    std::vector<char> data = read_all(path);
    uint64_t written;
    std::memcpy(&written, data.data() + 24, 8);
    written -= 10;
    std::memcpy(data.data() + 24, &written, 8);
    REQUIRE(sodium_init() >= 0);
    crypto_generichash(reinterpret_cast<unsigned char*>(data.data() + data.size() - 32), 32,
                       reinterpret_cast<const unsigned char*>(data.data()), data.size() - 32, nullptr, 0);
    write_all(path, data);
    MemoryCache fresh({16, 16}, 0);
    auto loaded = fresh.load_snapshot(path, 1'000, [](uint64_t) {});
    CHECK(loaded.expired == 1);
    CHECK(loaded.peers == 102);
    CHECK(counts(fresh, 3, 1'000).incomplete == 0);
    std::filesystem::remove(path);
}

TEST_CASE("a truncated, corrupt, foreign or alien file is refused whole and leaves the cache empty") {
    const std::string path = temp_path("bad");
    {
        MemoryCache cache({16, 16}, 0);
        fill(cache, 10'000);
        cache.save_snapshot(path, 10'000);
    }
    const std::vector<char> good = read_all(path);
    auto refused = [&](std::vector<char> data, const char* why) {
        write_all(path, data);
        MemoryCache fresh({16, 16}, 0);
        std::string message;
        try {
            fresh.load_snapshot(path, 1'000, [](uint64_t) {});
        } catch (const std::exception& e) {
            message = e.what();
        }
        CHECK_MESSAGE(message.find(why) != std::string::npos, message);
        CHECK(fresh.peer_count() == 0);
        CHECK(fresh.swarm_count() == 0);
        // What was counted before the error went with the swarms.
        const CacheStats s = fresh.stats();
        CHECK(s.torrents + s.torrents_v4 + s.torrents_v6 == 0);
        CHECK(s.seeders_v4 + s.leechers_v4 + s.seeders_v6 + s.leechers_v6 == 0);
    };
    refused(std::vector<char>(good.begin(), good.begin() + long(good.size()) - 40), "truncated");
    refused(std::vector<char>(good.begin(), good.begin() + 200), "truncated");
    auto flipped = good;
    flipped[100] ^= 0x01;
    refused(flipped, "");  // a checksum mismatch or a structural error, depending on the byte
    auto endpoint = good;
    const char record[] = {10, 0, 0, 0, 0, 1};  // the IPv4 peer 10.0.0.0:1 of torrent 1
    auto at = std::search(endpoint.begin(), endpoint.end(), record, record + 6);
    REQUIRE(at != endpoint.end());
    at[5] = 2;  // now a peer on port 2: well-formed, only the checksum can tell
    refused(endpoint, "checksum");
    auto version = good;
    version[16] = 9;
    refused(version, "version 9");
    refused(std::vector<char>{'h', 'e', 'l', 'l', 'o'}, "not a chihaya swarm snapshot");
    refused(std::vector<char>(4096, 'x'), "not a chihaya swarm snapshot");
    auto trailing = good;
    trailing.push_back(0);
    refused(trailing, "after the end");
    std::filesystem::remove(path);
}
