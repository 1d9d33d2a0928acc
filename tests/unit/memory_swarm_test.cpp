// memory_swarm_test.cpp: the memory driver's swarm rules, peer arrays and shards, tested directly.
#include <doctest/doctest.h>

#include "memory_cache.hpp"
#include "peer_list.hpp"
#include "swarm.hpp"
#include "swarm_table.hpp"

#include <array>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace chihaya::memory;

namespace {

// The info_hash of swarms built directly (not through MemoryCache): any will do.
const uint8_t kTestHash[20] = {0x5a};

// A peer numbered n: IPv4 10.0.n>>8.n&255, IPv6 2001:db8::n, port 6881 + n % 7.
struct Announce {
    chihaya_announce_request r{};

    explicit Announce(uint32_t peer, bool seeder = false, uint8_t family = CHIHAYA_IPV4) {
        r.struct_size = sizeof r;
        r.family = family;
        r.port = static_cast<uint16_t>(6881 + peer % 7);
        if (family == CHIHAYA_IPV4) {
            uint8_t a[4] = {10, 0, uint8_t(peer >> 8), uint8_t(peer)};
            std::memcpy(r.addr, a, 4);
        } else {
            uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8};
            a[14] = uint8_t(peer >> 8);
            a[15] = uint8_t(peer);
            std::memcpy(r.addr, a, 16);
        }
        r.left = seeder ? 0 : 1000;
        r.numwant = 50;
        r.peer_ttl_s = 60;
    }
    Announce& event(chihaya_event e) { r.event = e; return *this; }
    Announce& numwant(uint32_t n) { r.numwant = n; return *this; }
    Announce& ttl(uint32_t s) { r.peer_ttl_s = s; return *this; }
    Announce& track(uint64_t up, uint64_t down) {
        r.flags |= CHIHAYA_ANNOUNCE_TRACK_COUNTERS;
        r.uploaded = up;
        r.downloaded = down;
        return *this;
    }
    Announce& hash(uint8_t b) { std::memset(r.info_hash, b, 20); r.info_hash[0] = b; return *this; }
    Announce& at_ms(uint64_t ms) { r.now_ms = ms; return *this; }
    Announce& key(uint32_t k) { r.key = k; r.has_key = 1; return *this; }
    Announce& no_key() { r.key = 0; r.has_key = 0; return *this; }
};

std::string endpoint_of(const chihaya_announce_request& r) {
    size_t a = r.family == CHIHAYA_IPV4 ? 4 : 16;
    std::string s(reinterpret_cast<const char*>(r.addr), a);
    s.push_back(char(r.port >> 8));
    s.push_back(char(r.port & 0xff));
    return s;
}
std::string endpoint_of(uint32_t peer, uint8_t family = CHIHAYA_IPV4) {
    return endpoint_of(Announce(peer, false, family).r);
}

struct Answer {
    std::vector<uint8_t> buffer;
    chihaya_announce_result r{};
    chihaya_status status = CHIHAYA_INTERNAL;

    explicit Answer(uint32_t capacity = 200) : buffer(capacity * 18 + 1) {
        r.struct_size = sizeof r;
        r.peers = buffer.data();
        r.peers_capacity = capacity;
    }
    std::vector<std::string> peers(uint8_t family = CHIHAYA_IPV4) const {
        size_t size = family == CHIHAYA_IPV4 ? 6 : 18;
        std::vector<std::string> out;
        for (uint32_t i = 0; i < r.peer_count; ++i)
            out.emplace_back(reinterpret_cast<const char*>(buffer.data() + i * size), size);
        return out;
    }
};

Answer announce(Swarm& swarm, const Announce& a, uint32_t now_s = 0, uint32_t capacity = 200) {
    Answer answer(capacity);
    answer.status = swarm.announce(a.r, now_s, answer.r, Rng::for_this_thread());
    return answer;
}

}  // namespace

TEST_CASE("a peer is counted by its left: leecher, seeder, and moved both ways") {
    Swarm s(kTestHash);
    Answer a = announce(s, Announce(1));
    CHECK(a.status == CHIHAYA_OK);
    CHECK(a.r.complete == 0);
    CHECK(a.r.incomplete == 1);
    a = announce(s, Announce(2, true));
    CHECK(a.r.complete == 1);
    CHECK(a.r.incomplete == 1);
    a = announce(s, Announce(1, true));  // leecher 1 finished without an event
    CHECK(a.r.complete == 2);
    CHECK(a.r.incomplete == 0);
    CHECK(a.r.downloaded == 0);
    a = announce(s, Announce(2, false));  // a seeder that lost data leeches again
    CHECK(a.r.complete == 1);
    CHECK(a.r.incomplete == 1);
    CHECK(s.peer_count() == 2);
}

TEST_CASE("a peer is (family, addr, port): another port is another peer") {
    Swarm s(kTestHash);
    Announce a(1);
    announce(s, a);
    a.r.port = 9999;
    Answer b = announce(s, a);
    CHECK(b.r.incomplete == 2);
    CHECK(b.peers().size() == 1);
}

TEST_CASE("completed counts once per peer, also when first seen with it") {
    Swarm s(kTestHash);
    announce(s, Announce(1));
    CHECK(announce(s, Announce(1, true).event(CHIHAYA_EVENT_COMPLETED)).r.downloaded == 1);
    CHECK(announce(s, Announce(1, true).event(CHIHAYA_EVENT_COMPLETED)).r.downloaded == 1);
    Answer a = announce(s, Announce(2, true).event(CHIHAYA_EVENT_COMPLETED));
    CHECK(a.r.downloaded == 2);
    CHECK(a.r.complete == 2);
    // The flag survives the peer moving between leechers and seeders.
    announce(s, Announce(1, false));
    announce(s, Announce(1, true));
    CHECK(announce(s, Announce(1, true).event(CHIHAYA_EVENT_COMPLETED)).r.downloaded == 2);
}

TEST_CASE("stopped removes the peer and answers with no peers") {
    Swarm s(kTestHash);
    for (uint32_t p = 1; p <= 4; ++p) announce(s, Announce(p, p % 2 == 0));
    Answer a = announce(s, Announce(3).event(CHIHAYA_EVENT_STOPPED));
    CHECK(a.r.peer_count == 0);
    CHECK(a.r.complete == 2);
    CHECK(a.r.incomplete == 1);
    CHECK(a.r.had_previous == 1);
    a = announce(s, Announce(2, true).event(CHIHAYA_EVENT_STOPPED));
    CHECK(a.r.complete == 1);
    // Stopping an unknown peer changes nothing.
    a = announce(s, Announce(77).event(CHIHAYA_EVENT_STOPPED));
    CHECK(a.r.had_previous == 0);
    CHECK(s.peer_count() == 2);
    announce(s, Announce(1).event(CHIHAYA_EVENT_STOPPED));
    announce(s, Announce(4, true).event(CHIHAYA_EVENT_STOPPED));
    CHECK(s.empty());
}

TEST_CASE("a peer never receives itself") {
    Swarm s(kTestHash);
    for (uint32_t p = 0; p < 10; ++p) announce(s, Announce(p, p < 3));
    for (uint32_t p = 0; p < 10; ++p) {
        for (int round = 0; round < 20; ++round) {
            // numwant below the swarm size exercises the random walk, above it the full copy.
            for (uint32_t want : {3u, 50u}) {
                Answer a = announce(s, Announce(p, p < 3).numwant(want));
                for (const auto& e : a.peers()) CHECK(e != endpoint_of(p));
            }
        }
    }
}

TEST_CASE("seeders receive only leechers; leechers receive both") {
    Swarm s(kTestHash);
    std::set<std::string> seeders, leechers;
    for (uint32_t p = 0; p < 10; ++p) {
        announce(s, Announce(p, p < 5));
        (p < 5 ? seeders : leechers).insert(endpoint_of(p));
    }
    Answer a = announce(s, Announce(0, true));
    CHECK(a.r.peer_count == 5);
    for (const auto& e : a.peers()) CHECK(leechers.count(e) == 1);
    // Fewer leechers than wanted: still only leechers.
    a = announce(s, Announce(0, true).numwant(3));
    CHECK(a.r.peer_count == 3);
    for (const auto& e : a.peers()) CHECK(leechers.count(e) == 1);

    a = announce(s, Announce(7));
    CHECK(a.r.peer_count == 9);
    size_t got_seeders = 0;
    for (const auto& e : a.peers()) got_seeders += seeders.count(e);
    CHECK(got_seeders == 5);
}

TEST_CASE("numwant and peers_capacity bound the answer") {
    Swarm s(kTestHash);
    for (uint32_t p = 0; p < 30; ++p) announce(s, Announce(p));
    CHECK(announce(s, Announce(0).numwant(0)).r.peer_count == 0);
    CHECK(announce(s, Announce(0).numwant(7)).r.peer_count == 7);
    CHECK(announce(s, Announce(0).numwant(50), 0, 4).r.peer_count == 4);
    CHECK(announce(s, Announce(0).numwant(50)).r.peer_count == 29);
    Answer a = announce(s, Announce(0).numwant(20));
    auto peers = a.peers();
    CHECK(std::set<std::string>(peers.begin(), peers.end()).size() == 20);  // no duplicates
}

TEST_CASE("selection is random: repeated announces see more than numwant distinct peers") {
    Swarm s(kTestHash);
    for (uint32_t p = 0; p < 100; ++p) announce(s, Announce(p, p % 3 == 0));
    std::set<std::string> seen;
    for (int i = 0; i < 50; ++i)
        for (const auto& e : announce(s, Announce(1).numwant(10)).peers()) seen.insert(e);
    CHECK(seen.size() > 50);
    // A seeder's leechers-only range is random too.
    std::set<std::string> seen_by_seeder;
    for (int i = 0; i < 50; ++i)
        for (const auto& e : announce(s, Announce(0, true).numwant(10)).peers())
            seen_by_seeder.insert(e);
    CHECK(seen_by_seeder.size() > 30);
}

TEST_CASE("selection is uniform: every peer of a big swarm is handed out equally often") {
    // 300 leechers (an indexed family), one of them asks for 20 peers 30,000 times: each of the
    // other 299 is expected 30,000 * 20 / 299 ~ 2007 times. Pearson's chi-square with 298
    // degrees of freedom stays under 370 with probability 0.997 for a uniform choice; a choice
    // that favours part of the list (a fixed start, or the front) is far above it.
    Swarm s(kTestHash);
    for (uint32_t p = 0; p < 300; ++p) announce(s, Announce(p));
    std::map<std::string, uint32_t> seen;
    const int rounds = 30000;
    for (int i = 0; i < rounds; ++i)
        for (const auto& e : announce(s, Announce(7).numwant(20)).peers()) ++seen[e];
    REQUIRE(seen.size() == 299);
    const double expected = double(rounds) * 20 / 299;
    double chi2 = 0;
    for (const auto& [endpoint, n] : seen) chi2 += (n - expected) * (n - expected) / expected;
    CHECK(chi2 < 370);
}

TEST_CASE("a big swarm finds its peers through the index, through churn and expiry") {
    Swarm s(kTestHash);
    const uint32_t n = 5000;
    for (uint32_t p = 0; p < n; ++p) announce(s, Announce(p, p % 2 == 0).ttl(p < n / 2 ? 10 : 1000), 0);
    CHECK(s.peer_count() == n);
    // A known peer is found, not added again; a stopped one goes.
    announce(s, Announce(n - 1, true), 1);
    CHECK(s.peer_count() == n);
    announce(s, Announce(n - 1).event(CHIHAYA_EVENT_STOPPED), 1);
    CHECK(s.peer_count() == n - 1);
    // Half the peers expire after 10 s: announces and housekeeping remove them a slice at a time.
    uint32_t touches = 0;
    while (s.peer_count() > n / 2 - 1 && touches < 10000) {
        announce(s, Announce(n - 2), 20 + touches);
        ++touches;
    }
    CHECK(s.peer_count() == n / 2 - 1);
    CHECK(touches > 10);  // incremental: no single announce swept the whole swarm
    auto counts = s.counts();
    CHECK(counts.complete + counts.incomplete == n / 2 - 1);
}

TEST_CASE("peers expire after peer_ttl_s without an announce") {
    Swarm s(kTestHash);
    announce(s, Announce(1).ttl(60), 100);
    announce(s, Announce(2, true).ttl(60), 130);
    Answer a = announce(s, Announce(3).ttl(60), 160);  // peer 1 is exactly at its deadline
    CHECK(a.r.incomplete == 2);
    CHECK(a.r.complete == 1);
    a = announce(s, Announce(3).ttl(60), 161);
    CHECK(a.r.incomplete == 1);
    CHECK(a.r.peer_count == 1);
    // Re-announcing keeps a peer alive.
    announce(s, Announce(2, true).ttl(60), 180);
    s.expire(235);
    CHECK(s.peer_count() == 1);
    s.expire(241);
    CHECK(s.empty());
    // A peer that comes back after expiring is new: its completed counts again.
}

TEST_CASE("an expired peer that returns is a new peer") {
    Swarm s(kTestHash);
    announce(s, Announce(1, true).event(CHIHAYA_EVENT_COMPLETED).ttl(10), 0);
    announce(s, Announce(2).ttl(100), 0);
    Answer a = announce(s, Announce(1, true).event(CHIHAYA_EVENT_COMPLETED).ttl(10), 50);
    CHECK(a.r.had_previous == 0);
    CHECK(a.r.downloaded == 2);
}

TEST_CASE("families are kept apart; counts cover both; entries are compact network order") {
    Swarm s(kTestHash);
    for (uint32_t p = 0; p < 3; ++p) announce(s, Announce(p, false, CHIHAYA_IPV4));
    for (uint32_t p = 0; p < 4; ++p) announce(s, Announce(p, true, CHIHAYA_IPV6));
    Answer a = announce(s, Announce(9, false, CHIHAYA_IPV6));
    CHECK(a.r.peer_count == 4);
    CHECK(a.r.complete == 4);
    CHECK(a.r.incomplete == 4);
    std::set<std::string> v6;
    for (uint32_t p = 0; p < 4; ++p) v6.insert(endpoint_of(p, CHIHAYA_IPV6));
    for (const auto& e : a.peers(CHIHAYA_IPV6)) CHECK(v6.count(e) == 1);

    a = announce(s, Announce(0, true, CHIHAYA_IPV4));
    CHECK(a.r.peer_count == 2);
    Swarm one(kTestHash);
    announce(one, Announce(0x0102));
    a = announce(one, Announce(5));
    REQUIRE(a.r.peer_count == 1);
    const uint8_t expected[6] = {10, 0, 0x01, 0x02, uint8_t((6881 + 0x0102 % 7) >> 8),
                                 uint8_t((6881 + 0x0102 % 7) & 0xff)};
    CHECK(std::memcmp(a.buffer.data(), expected, 6) == 0);
}

TEST_CASE("TRACK_COUNTERS hands back the previous totals, following the peer as it moves") {
    Swarm s(kTestHash);
    Answer a = announce(s, Announce(1).track(10, 20));
    CHECK(a.r.had_previous == 0);
    for (uint32_t p = 2; p < 8; ++p) announce(s, Announce(p, p % 2 == 0).track(p * 100, p * 1000));
    a = announce(s, Announce(1).track(15, 25));
    CHECK(a.r.had_previous == 1);
    CHECK(a.r.previous_uploaded == 10);
    CHECK(a.r.previous_downloaded == 20);
    // Moves across the seeder boundary and removals of others shuffle indexes.
    announce(s, Announce(1, true).track(16, 26));
    announce(s, Announce(3).event(CHIHAYA_EVENT_STOPPED).track(0, 0));
    announce(s, Announce(2, false).track(201, 2001));
    for (uint32_t p : {4u, 5u, 6u, 7u}) {
        a = announce(s, Announce(p, p % 2 == 0).track(p * 100 + 1, p * 1000 + 1));
        CHECK(a.r.had_previous == 1);
        CHECK(a.r.previous_uploaded == p * 100);
        CHECK(a.r.previous_downloaded == p * 1000);
    }
    a = announce(s, Announce(1, true).event(CHIHAYA_EVENT_STOPPED).track(17, 27));
    CHECK(a.r.previous_uploaded == 16);
    CHECK(a.r.previous_downloaded == 26);
    a = announce(s, Announce(2).track(0, 0));
    CHECK(a.r.previous_uploaded == 201);
}

TEST_CASE("without TRACK_COUNTERS the previous totals are not written") {
    Swarm s(kTestHash);
    announce(s, Announce(1));
    Answer a(10);
    a.r.previous_uploaded = 0xdead;
    CHECK(s.announce(Announce(1).r, 0, a.r, Rng::for_this_thread()) == CHIHAYA_OK);
    CHECK(a.r.had_previous == 1);
    CHECK(a.r.previous_uploaded == 0xdead);
}

// Both families share one block (peer_list.hpp): IPv4 records grow up from the header, IPv6
// records down from the chunk's end. Random joins, leaves, moves between leechers and seeders,
// keys and counters enabled at random moments, in both families at once and across kIndexFrom
// (the index, and the Extension whose pointer moves the IPv4 records): every peer keeps its part,
// key and counters, and the prefix is never touched.
template <class Peer, class Family>
struct FamilyModel {
    struct Entry { bool seeder; uint32_t key; uint64_t up; };
    Family list;
    std::map<uint32_t, Entry> model;

    static Peer make(uint32_t id) {
        Peer p{};
        std::memcpy(p.endpoint, &id, 4);
        p.endpoint[Peer::endpoint_bytes - 1] = 0x99;
        return p;
    }
    void step(Rng& rng, uint32_t ids, int n) {
        const uint32_t id = rng.below(ids);
        const Peer p = make(id);
        uint32_t i = list.find(p.endpoint);
        REQUIRE((i == list.npos) == (model.count(id) == 0));
        switch (rng.below(6)) {
        case 0:
            if (i != list.npos) { list.remove(i); model.erase(id); }
            break;
        case 1:
            if (i != list.npos && !list.is_seeder(i)) { list.make_seeder(i); model[id].seeder = true; }
            else if (i != list.npos) { list.make_leecher(i); model[id].seeder = false; }
            break;
        case 2:  // widening keeps every record's fields
            if (rng.below(20) == 0) REQUIRE((rng.below(2) ? list.enable_keys() : list.enable_counters()));
            break;
        default:
            if (i == list.npos) {
                const bool seeder = rng.below(2) == 0;
                i = list.insert(p, seeder);
                REQUIRE(i != list.npos);
                CHECK(list.key(i) == 0);
                CHECK(list.counters(i).uploaded == 0);
                model[id] = {seeder, 0, 0};
            }
            if (list.has_keys()) { list.set_key(i, 7 + uint32_t(n)); model[id].key = 7 + uint32_t(n); }
            if (list.has_counters()) { list.set_counters(i, Counters{uint64_t(n), 0}); model[id].up = uint64_t(n); }
        }
        if (model.empty()) {  // an emptied family starts narrow again
            CHECK_FALSE(list.has_keys());
            CHECK_FALSE(list.has_counters());
        }
    }
    void check() const {
        REQUIRE(list.size() == model.size());
        uint32_t seeders = 0;
        for (const auto& [id, m] : model) {
            const uint32_t j = list.find(make(id).endpoint);
            REQUIRE(j != list.npos);
            CHECK(std::memcmp(list[j].endpoint, make(id).endpoint, Peer::endpoint_bytes) == 0);
            CHECK(list.is_seeder(j) == m.seeder);
            CHECK(list.key(j) == (list.has_keys() ? m.key : 0));
            CHECK(list.counters(j).uploaded == (list.has_counters() ? m.up : 0));
            seeders += m.seeder;
        }
        CHECK(list.seeders() == seeders);
    }
};

template <size_t Prefix>
void families_share_a_block(uint32_t ids) {
    PeerBlock<Prefix> block;
    REQUIRE(block.create());
    std::memset(block.prefix(), 0x77, Prefix);
    FamilyModel<PeerV4, Family<PeerV4, Prefix>> v4{Family<PeerV4, Prefix>(block), {}};
    FamilyModel<PeerV6, Family<PeerV6, Prefix>> v6{Family<PeerV6, Prefix>(block), {}};
    Rng rng(42 + ids);
    bool was_indexed[2] = {false, false};
    for (int n = 0; n < 30000; ++n) {
        // Phases: both grow, then IPv4 shrinks while IPv6 grows, then both shrink.
        const uint32_t phase = uint32_t(n / 10000);
        const uint32_t v4_ids = phase == 0 ? ids : phase == 1 ? ids / 8 : 8;
        const uint32_t v6_ids = phase == 2 ? 8 : ids;
        if (rng.below(2)) v4.step(rng, v4_ids, n);
        else v6.step(rng, v6_ids, n);
        was_indexed[0] |= v4.list.indexed();
        was_indexed[1] |= v6.list.indexed();
        if (n % 101 == 0 || n > 29900) {
            v4.check();
            v6.check();
            for (size_t b = 0; b < Prefix; ++b) REQUIRE(uint8_t(block.prefix()[b]) == 0x77);
        }
    }
    if (ids > kIndexFrom * 2) CHECK((was_indexed[0] && was_indexed[1]));
    // Drained, both families forget their widths and the block gives its room back.
    REQUIRE(v4.list.enable_keys());
    REQUIRE(v6.list.enable_counters());
    for (const auto& [id, e] : v4.model) v4.list.remove(v4.list.find(v4.make(id).endpoint));
    for (const auto& [id, e] : v6.model) v6.list.remove(v6.list.find(v6.make(id).endpoint));
    CHECK(v4.list.size() + v6.list.size() == 0);
    CHECK_FALSE((v4.list.has_keys() || v6.list.has_counters()));
    CHECK(block.bytes() < 256);
}

TEST_CASE("PeerBlock: both families in one block through random changes") {
    families_share_a_block<0>(40);                  // small families: scans, no index
    families_share_a_block<0>(600);                 // the index comes and goes in both
    families_share_a_block<sizeof(SwarmHead)>(600);  // behind a swarm's head
}

// Most swarms of a public tracker hold one peer: with its key it must fit a 64-byte malloc chunk
// (56 usable bytes; a byte more took an 80-byte one, swarm.hpp).
TEST_CASE("a one-peer IPv4 swarm with its key fits 56 bytes") {
    Swarm s(kTestHash);
    announce(s, Announce(1).key(7), 0);
    REQUIRE(s.peer_count() == 1);
    CHECK(s.block_bytes() <= 56);
}

// Most swarms are small, so a small block grows to what its next record needs: malloc's rounding
// (glibc: 16 bytes, ASan's allocator: none) is all the slack it has, less than one IPv6 record.
TEST_CASE("PeerBlock: a small block holds no spare record") {
    PeerBlock<sizeof(SwarmHead)> block;
    REQUIRE(block.create());
    Family<PeerV4, sizeof(SwarmHead)> v4(block);
    Family<PeerV6, sizeof(SwarmHead)> v6(block);
    const size_t v4_stride = sizeof(PeerV4) + 4, v6_stride = sizeof(PeerV6) + 4;
    for (uint32_t id = 0; id < 14; ++id) {
        const bool six = id % 3 == 2;
        uint32_t i;
        if (six) {
            PeerV6 p{};
            std::memcpy(p.endpoint, &id, 4);
            REQUIRE(v6.enable_keys());
            i = v6.insert(p, false);
        } else {
            PeerV4 p{};
            std::memcpy(p.endpoint, &id, 4);
            REQUIRE(v4.enable_keys());
            i = v4.insert(p, false);
        }
        REQUIRE(i != UINT32_MAX);
        const size_t used = sizeof(SwarmHead) + 16 + v4.size() * v4_stride + v6.size() * v6_stride;
        INFO("peers: " << id + 1 << ", used: " << used << ", chunk: " << block.bytes());
        CHECK(block.bytes() >= used);
        if (used < 256) CHECK(block.bytes() < used + 16);
        else CHECK(block.bytes() >= 256 + 64);  // from 256 bytes on it grows by a quarter
    }
}

// Widening records (keys, counters) and growing and shrinking the block keep every field, for
// records of both sizes and either order of enabling; an emptied family forgets both.
template <class Peer>
void records_survive_resizes(bool counters_first) {
    constexpr size_t P = sizeof(SwarmHead);
    PeerBlock<P> block;
    REQUIRE(block.create());
    std::memset(block.prefix(), 0x77, P);
    Family<Peer, P> list(block);
    auto prefix_intact = [&] {
        for (size_t b = 0; b < P; ++b) REQUIRE(uint8_t(block.prefix()[b]) == 0x77);
    };
    auto make = [](uint32_t id) {
        Peer p{};
        std::memcpy(p.endpoint, &id, 4);
        p.set(1000 + id, id % 2 == 1);
        return p;
    };
    auto set = [&](uint32_t j, uint32_t id) {
        if (list.has_counters()) list.set_counters(j, Counters{1000 + id, 7 * uint64_t(id)});
        if (list.has_keys()) list.set_key(j, 50000 + id);
    };
    auto check_all = [&](uint32_t from, uint32_t to) {
        REQUIRE(list.size() == to - from);
        for (uint32_t id = from; id < to; ++id) {
            uint32_t j = list.find(make(id).endpoint);
            REQUIRE(j != list.npos);
            CHECK(list[j].deadline(1000) == 1000 + id);
            CHECK(list[j].completed() == (id % 2 == 1));
            CHECK(list.counters(j).uploaded == 1000 + id);
            CHECK(list.counters(j).downloaded == 7 * uint64_t(id));
            CHECK(list.key(j) == 50000 + id);
        }
    };
    auto enable = [&](bool counters) {  // on a block that already holds records
        REQUIRE((counters ? list.enable_counters() : list.enable_keys()));
        for (uint32_t id = 0; id < list.size(); ++id) {
            uint32_t j = list.find(make(id).endpoint);
            REQUIRE(j != list.npos);
            CHECK(list[j].deadline(1000) == 1000 + id);
            if (counters) {
                CHECK(list.counters(j).uploaded == 0);
                list.set_counters(j, Counters{1000 + id, 7 * uint64_t(id)});
                if (list.has_keys()) CHECK(list.key(j) == 50000 + id);  // kept, before the counters
            } else {
                CHECK(list.key(j) == 0);
                list.set_key(j, 50000 + id);
                if (list.has_counters()) CHECK(list.counters(j).uploaded == 1000 + id);  // moved along
            }
        }
    };
    for (uint32_t id = 0; id < 5; ++id) REQUIRE(list.insert(make(id), id % 2 == 0) != list.npos);
    REQUIRE_FALSE(list.has_counters());
    REQUIRE_FALSE(list.has_keys());
    enable(counters_first);
    for (uint32_t id = 5; id < 9; ++id) set(list.insert(make(id), id % 3 == 0), id);
    enable(!counters_first);
    for (uint32_t id = 9; id < 1000; ++id) {  // many growths, and the index from kIndexFrom on
        uint32_t j = list.insert(make(id), id % 3 == 0);
        REQUIRE(j != list.npos);
        CHECK(list.counters(j).uploaded == 0);
        CHECK(list.key(j) == 0);
        set(j, id);
    }
    check_all(0, 1000);
    prefix_intact();
    const size_t big = block.bytes();
    for (uint32_t id = 0; id < 990; ++id) list.remove(list.find(make(id).endpoint));
    CHECK(block.bytes() < big / 4);  // it shrank
    CHECK_FALSE(list.indexed());
    check_all(990, 1000);
    prefix_intact();
    for (uint32_t id = 990; id < 1000; ++id) list.remove(list.find(make(id).endpoint));
    CHECK(list.size() == 0);
    CHECK_FALSE(list.has_keys());
    CHECK_FALSE(list.has_counters());
    prefix_intact();
}

TEST_CASE("PeerBlock keeps keys and counters in the records through widening, growth and shrinking") {
    for (bool counters_first : {true, false}) {
        records_survive_resizes<PeerV4>(counters_first);
        records_survive_resizes<PeerV6>(counters_first);
    }
}

// A peer keeps the low 23 bits of its deadline (peer_list.hpp): the whole deadline is the one
// nearest to now, so the tracker clock may pass any multiple of 2^23 seconds (97 days of uptime).
TEST_CASE("PackedPeer: deadlines across the 23-bit wrap of the clock") {
    const uint32_t wrap = PeerV4::deadline_mask + 1;
    for (uint32_t base : {0u, wrap - 30, wrap, 3 * wrap - 1, 0x7fffffffu - 7 * 86400}) {
        PeerV4 p{};
        const uint32_t deadline = base + 60;
        p.set(deadline, true);
        CHECK(p.completed());
        for (uint32_t now : {base, base + 59, base + 60}) {
            CHECK(p.deadline(now) == deadline);
            CHECK_FALSE(p.expired(now));
        }
        for (uint32_t now : {base + 61, base + 60 + 86400, base + 60 + 40 * 86400}) {
            CHECK(p.deadline(now) == deadline);
            CHECK(p.expired(now));
        }
        p.set(base + 7 * 86400, false);  // peer_lifetime's most
        CHECK(p.deadline(base) == base + 7 * 86400);
        CHECK_FALSE(p.expired(base));
        CHECK_FALSE(p.completed());
    }
    // A swarm whose clock passes the wrap keeps its peers for their lifetime, then drops them.
    Swarm s(kTestHash);
    announce(s, Announce(1).ttl(60), wrap - 30);
    announce(s, Announce(2, false, CHIHAYA_IPV6).ttl(60), wrap - 30);
    s.expire(wrap + 29);
    CHECK(s.peer_count() == 2);
    s.expire(wrap + 31);
    CHECK(s.peer_count() == 0);
    // The swarm's sweep bound is kept in 23 bits as well: nothing is due before the earliest
    // deadline, something is after it, on either side of the wrap; no peer, nothing is ever due.
    Swarm u(kTestHash);
    CHECK_FALSE(u.may_expire(wrap + 5));
    announce(u, Announce(1).ttl(60), wrap - 30);
    announce(u, Announce(2).ttl(100), wrap - 30);
    for (uint32_t now : {wrap - 30, wrap, wrap + 30}) CHECK_FALSE(u.may_expire(now));
    CHECK(u.may_expire(wrap + 31));
    u.expire(wrap + 31);
    CHECK(u.peer_count() == 1);
    CHECK_FALSE(u.may_expire(wrap + 70));  // the bound moved to the survivor's deadline
    CHECK(u.may_expire(wrap + 71));
    // A lifetime past what 23 bits can tell apart (the host allows 7 days; the driver does not
    // rely on it) is cut to the most they can: the peer stays, and goes in time.
    Swarm t(kTestHash);
    announce(t, Announce(1).ttl(UINT32_MAX), 100);
    t.expire(101);
    CHECK(t.peer_count() == 1);
    t.expire(100 + PeerV4::reach);
    CHECK(t.peer_count() == 0);
}

// SwarmTable under collisions: the caller picks the hashes, so every swarm's home slot is one of a
// few, some at the end of the table so that probe runs wrap around to its start. After every
// insert and erase each swarm the model holds is found, each it does not is not, and a sweep
// visits every swarm and erases exactly those it is told to.
TEST_CASE("SwarmTable keeps colliding and wrapped probe runs findable through erases and sweeps") {
    for (uint32_t seed = 1; seed <= 40; ++seed) {
        Rng rng(seed);
        SwarmTable table;
        std::map<uint32_t, uint64_t> model;  // id -> hash
        auto info_hash = [](uint32_t id) {
            std::array<uint8_t, 20> h{};
            std::memcpy(h.data(), &id, 4);
            return h;
        };
        // The home slot scales the hash's low 32 bits to the table, and those are all the table
        // keeps: these sit in its last 1/16th (3 in 4 ids) or its first, so the run of homes near
        // the end wraps around to the start whatever the table's size; and ids 32 apart share
        // them, so equal hashes must be told apart by the info_hash itself.
        auto hash_of = [](uint32_t id) {
            const uint32_t k = id % 32;
            const uint32_t low = k % 4 == 0 ? 1 + k : 0xf0000000u + k * 0x00400000u;
            return (uint64_t(id) << 32) | low;
        };
        auto check_all = [&] {
            REQUIRE(table.size() == model.size());
            for (uint32_t id = 0; id < 64; ++id) {
                const auto h = info_hash(id);
                Swarm* s = table.find(hash_of(id), h.data());
                REQUIRE((s != nullptr) == (model.count(id) == 1));
                if (s) CHECK(std::memcmp(s->info_hash(), h.data(), 20) == 0);
            }
        };
        for (int step = 0; step < 400; ++step) {
            const uint32_t id = rng.below(64);
            const uint64_t hash = hash_of(id);
            const auto h = info_hash(id);
            if (model.count(id)) {
                Swarm* s = table.find(model[id], h.data());
                REQUIRE(s != nullptr);
                table.erase(s);
                model.erase(id);
                CHECK(table.find(hash, h.data()) == nullptr);
            } else if (model.size() < 24) {
                REQUIRE(table.find(hash, h.data()) == nullptr);
                REQUIRE(table.emplace(hash, h.data()) != nullptr);
                model[id] = hash;
            }
            check_all();
        }
        std::set<uint32_t> seen;
        table.sweep([&](Swarm& s) {
            uint32_t id;
            std::memcpy(&id, s.info_hash(), 4);
            seen.insert(id);
            return id % 3 != 0;  // erase every third
        });
        CHECK(seen.size() == model.size());
        for (auto it = model.begin(); it != model.end();) it = it->first % 3 == 0 ? model.erase(it) : std::next(it);
        check_all();
    }
}

TEST_CASE("MemoryCache: swarms are per info_hash and dropped when their last peer leaves") {
    MemoryCache cache({16, 4}, 0);
    Answer a;
    CHECK(cache.announce(Announce(1).hash(1).r, a.r) == CHIHAYA_OK);
    CHECK(cache.announce(Announce(2).hash(2).r, a.r) == CHIHAYA_OK);
    CHECK(a.r.incomplete == 1);
    CHECK(cache.swarm_count() == 2);
    cache.announce(Announce(1).hash(1).event(CHIHAYA_EVENT_STOPPED).r, a.r);
    CHECK(cache.swarm_count() == 1);
    // A stopped announce to an unknown torrent creates nothing.
    cache.announce(Announce(1).hash(9).event(CHIHAYA_EVENT_STOPPED).r, a.r);
    CHECK(a.r.complete + a.r.incomplete + a.r.downloaded == 0);
    CHECK(cache.swarm_count() == 1);
}

TEST_CASE("MemoryCache: scrape counts known torrents, zeros for unknown ones") {
    MemoryCache cache({16, 4}, 0);
    Answer a;
    cache.announce(Announce(1, true).hash(1).event(CHIHAYA_EVENT_COMPLETED).r, a.r);
    cache.announce(Announce(2).hash(1).r, a.r);
    chihaya_scrape_entry entries[2]{};
    entries[0].struct_size = entries[1].struct_size = sizeof entries[0];
    std::memset(entries[0].info_hash, 1, 20);
    std::memset(entries[1].info_hash, 5, 20);
    entries[1].complete = 99;
    chihaya_scrape_request req{sizeof req, 2, entries, 0, {}};
    CHECK(cache.scrape(req) == CHIHAYA_OK);
    CHECK(entries[0].complete == 1);
    CHECK(entries[0].incomplete == 1);
    CHECK(entries[0].downloaded == 1);
    CHECK(entries[1].complete == 0);
    CHECK(entries[1].incomplete == 0);
    CHECK(entries[1].downloaded == 0);
}

TEST_CASE("MemoryCache: scrape_all visits every swarm once and stops when asked") {
    MemoryCache cache({16, 4}, 0);
    Answer a;
    for (uint8_t h = 1; h <= 40; ++h) cache.announce(Announce(h).hash(h).r, a.r);
    std::set<uint8_t> seen;
    auto visit = [](void* ctx, const chihaya_scrape_entry* e) {
        auto& s = *static_cast<std::set<uint8_t>*>(ctx);
        CHECK(e->incomplete == 1);
        s.insert(e->info_hash[0]);
        return 1;
    };
    CHECK(cache.scrape_all(0, visit, &seen) == CHIHAYA_OK);
    CHECK(seen.size() == 40);
    int calls = 0;
    auto stop = [](void* ctx, const chihaya_scrape_entry*) { return ++*static_cast<int*>(ctx) < 3 ? 1 : 0; };
    cache.scrape_all(0, stop, &calls);
    CHECK(calls == 3);
}

TEST_CASE("MemoryCache: tick sweeps a slice of shards and drops expired swarms") {
    MemoryCache cache({16, 4}, 1000);
    Answer a;
    for (uint8_t h = 0; h < 64; ++h) cache.announce(Announce(h).hash(h).ttl(10).at_ms(1000).r, a.r);
    cache.announce(Announce(1).hash(200).ttl(1000).at_ms(1000).r, a.r);
    CHECK(cache.swarm_count() == 65);
    for (int i = 0; i < 4; ++i) cache.tick(1000 + 5'000);  // a full pass, nobody expired yet
    CHECK(cache.swarm_count() == 65);
    cache.tick(1000 + 20'000);  // one slice: 4 of 16 shards
    size_t after_one = cache.swarm_count();
    CHECK(after_one < 65);
    CHECK(after_one > 1);
    for (int i = 0; i < 3; ++i) cache.tick(1000 + 20'000);
    CHECK(cache.swarm_count() == 1);
    CHECK(cache.peer_count() == 1);
}

namespace {

// The stats as one comparable tuple: torrents (all, v4, v6), seeders/leechers v4, v6.
std::vector<uint64_t> stats_of(const MemoryCache& cache) {
    const CacheStats s = cache.stats();
    return {s.torrents, s.torrents_v4, s.torrents_v6, s.seeders_v4, s.leechers_v4, s.seeders_v6, s.leechers_v6};
}
using Stats = std::vector<uint64_t>;

}  // namespace

TEST_CASE("MemoryCache: stats count torrents, seeders and leechers per family as peers come, move and go") {
    MemoryCache cache({16, 4}, 0);
    Answer a;
    CHECK(stats_of(cache) == Stats{0, 0, 0, 0, 0, 0, 0});
    cache.announce(Announce(1).hash(1).r, a.r);
    cache.announce(Announce(2, true).hash(1).r, a.r);
    cache.announce(Announce(3, false, CHIHAYA_IPV6).hash(1).r, a.r);
    cache.announce(Announce(1, true, CHIHAYA_IPV6).hash(2).r, a.r);
    CHECK(stats_of(cache) == Stats{2, 1, 2, 1, 1, 1, 1});
    cache.announce(Announce(1, true).hash(1).r, a.r);  // leecher -> seeder
    CHECK(stats_of(cache) == Stats{2, 1, 2, 2, 0, 1, 1});
    cache.announce(Announce(1, true).hash(1).r, a.r);  // a refresh changes nothing
    CHECK(stats_of(cache) == Stats{2, 1, 2, 2, 0, 1, 1});
    cache.announce(Announce(1, true, CHIHAYA_IPV6).hash(2).event(CHIHAYA_EVENT_STOPPED).r, a.r);
    CHECK(stats_of(cache) == Stats{1, 1, 1, 2, 0, 0, 1});
    cache.announce(Announce(1, true).hash(1).event(CHIHAYA_EVENT_STOPPED).r, a.r);
    cache.announce(Announce(2, true).hash(1).event(CHIHAYA_EVENT_STOPPED).r, a.r);
    CHECK(stats_of(cache) == Stats{1, 0, 1, 0, 0, 0, 1});  // the torrent lives on in IPv6
    // A refused announce (BEP 7 key) changes nothing.
    cache.announce(Announce(7).hash(3).key(5).r, a.r);
    CHECK(cache.announce(Announce(7, true).hash(3).key(6).r, a.r) == CHIHAYA_KEY_MISMATCH);
    CHECK(stats_of(cache) == Stats{2, 1, 1, 0, 1, 0, 1});
}

TEST_CASE("MemoryCache: stats follow expiry by scrape and by tick; untouched swarms lag until swept") {
    MemoryCache cache({16, 4}, 0);
    Answer a;
    cache.announce(Announce(1).hash(1).ttl(10).r, a.r);
    cache.announce(Announce(2, true).hash(1).ttl(1000).r, a.r);
    cache.announce(Announce(3, false, CHIHAYA_IPV6).hash(2).ttl(10).r, a.r);
    CHECK(stats_of(cache) == Stats{2, 1, 1, 1, 1, 0, 1});
    chihaya_scrape_entry entry{};
    entry.struct_size = sizeof entry;
    std::memset(entry.info_hash, 1, 20);
    chihaya_scrape_request req{sizeof req, 1, &entry, 20'000, {}};
    REQUIRE(cache.scrape(req) == CHIHAYA_OK);
    CHECK(stats_of(cache) == Stats{2, 1, 1, 1, 0, 0, 1});  // torrent 2 not touched yet
    for (int i = 0; i < 4; ++i) cache.tick(20'000);         // a full pass: 4 x 4 of 16 shards
    CHECK(stats_of(cache) == Stats{1, 1, 0, 1, 0, 0, 0});
}

TEST_CASE("MemoryCache: stats agree with a model through random announces, then drop to zero on expiry") {
    MemoryCache cache({16, 4}, 0);
    Answer a;
    // (hash, family, peer) -> seeder
    std::map<std::tuple<uint8_t, uint8_t, uint32_t>, bool> model;
    uint64_t rng = 88172645463325252ull;
    auto next = [&] { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; };
    for (int n = 0; n < 20000; ++n) {
        const uint8_t hash = uint8_t(1 + next() % 12);
        const uint8_t family = next() % 3 ? CHIHAYA_IPV4 : CHIHAYA_IPV6;
        const uint32_t peer = uint32_t(next() % 90);  // past kIndexFrom: small and indexed swarms
        const bool seeder = next() % 2;
        const bool stop = next() % 5 == 0;
        Announce req = Announce(peer, seeder, family).hash(hash).ttl(100);
        if (stop) req.event(CHIHAYA_EVENT_STOPPED);
        REQUIRE(cache.announce(req.r, a.r) == CHIHAYA_OK);
        if (stop) model.erase({hash, family, peer});
        else model[{hash, family, peer}] = seeder;
        if (n % 997 == 0) cache.tick(0);
    }
    Stats want(7, 0);
    std::set<uint8_t> any, v4, v6;
    for (const auto& [key, seeder] : model) {
        const auto& [hash, family, peer] = key;
        any.insert(hash);
        (family == CHIHAYA_IPV4 ? v4 : v6).insert(hash);
        ++want[family == CHIHAYA_IPV4 ? (seeder ? 3 : 4) : (seeder ? 5 : 6)];
    }
    want[0] = any.size();
    want[1] = v4.size();
    want[2] = v6.size();
    CHECK(stats_of(cache) == want);
    for (int i = 0; i < 4; ++i) cache.tick(200'000);
    CHECK(stats_of(cache) == Stats{0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("MemoryCache: times are seconds since the epoch; shards must be a power of two") {
    MemoryCache cache({16, 4}, 5000);
    CHECK(cache.seconds(0) == 0);
    CHECK(cache.seconds(5999) == 0);
    CHECK(cache.seconds(6000) == 1);
    CHECK_THROWS(MemoryCache({12, 4}, 0));
}

TEST_CASE("MemoryCache: info_hashes an attacker makes alike still spread over the shards") {
    // 1,000 hashes equal in their first 16 bytes: without a keyed hash of all 20 bytes they
    // would share one shard and one bucket chain.
    MemoryCache a({1024, 64}, 0), b({1024, 64}, 0);
    std::set<uint32_t> shards;
    int same_in_both = 0;
    for (uint32_t i = 0; i < 1000; ++i) {
        uint8_t h[20] = {0};
        std::memcpy(h + 16, &i, 4);
        shards.insert(a.shard_of(h));
        same_in_both += a.shard_of(h) == b.shard_of(h);
    }
    CHECK(shards.size() > 500);
    // Each instance draws its own key, so the layout cannot be precomputed.
    CHECK(same_in_both < 50);

    for (uint32_t i = 0; i < 2000; ++i) {
        chihaya_announce_request r{};
        std::memcpy(r.info_hash + 16, &i, 4);
        r.family = CHIHAYA_IPV4;
        r.port = 6881;
        r.left = 1;
        r.numwant = 5;
        r.peer_ttl_s = 60;
        uint8_t out[5 * 6];
        chihaya_announce_result res{};
        res.peers = out;
        res.peers_capacity = 5;
        REQUIRE(a.announce(r, res) == CHIHAYA_OK);
    }
    CHECK(a.swarm_count() == 2000);
}

TEST_CASE("BEP 7 key: a peer that announced with a key cannot be stopped or moved without it") {
    Swarm swarm(kTestHash);
    CHECK(announce(swarm, Announce(1).key(0xabcd)).status == CHIHAYA_OK);
    CHECK(announce(swarm, Announce(2)).status == CHIHAYA_OK);  // another peer, no key
    // Same (addr, port), no key or another key: refused, and nothing changes.
    CHECK(announce(swarm, Announce(1).no_key().event(CHIHAYA_EVENT_STOPPED)).status == CHIHAYA_KEY_MISMATCH);
    CHECK(announce(swarm, Announce(1).key(0xabce).event(CHIHAYA_EVENT_STOPPED)).status == CHIHAYA_KEY_MISMATCH);
    CHECK(announce(swarm, Announce(1, /*seeder=*/true).key(1)).status == CHIHAYA_KEY_MISMATCH);
    CHECK(announce(swarm, Announce(1).key(0xabcd).event(CHIHAYA_EVENT_COMPLETED).numwant(0)).status == CHIHAYA_OK);
    CHECK(swarm.counts().incomplete == 2);
    CHECK(swarm.counts().complete == 0);
    CHECK(swarm.counts().downloaded == 1);
    // A peer that gave no key takes the first key it sends, then keeps it.
    CHECK(announce(swarm, Announce(2).key(7)).status == CHIHAYA_OK);
    CHECK(announce(swarm, Announce(2).key(8)).status == CHIHAYA_KEY_MISMATCH);
    // A request from a host without the key members (a 2.0-sized struct) carries no key.
    Announce old(1);
    old.r.struct_size = offsetof(chihaya_announce_request, key);
    old.r.has_key = 1;
    old.r.key = 0xabcd;
    CHECK(announce(swarm, old).status == CHIHAYA_KEY_MISMATCH);
    // The owner stops it; then the (addr, port) is free for anyone.
    CHECK(announce(swarm, Announce(1).key(0xabcd).event(CHIHAYA_EVENT_STOPPED)).status == CHIHAYA_OK);
    CHECK(swarm.peer_count() == 1);
    CHECK(announce(swarm, Announce(1).key(99)).status == CHIHAYA_OK);
}

TEST_CASE("BEP 7 key: keys follow their peers through moves, removals and the index") {
    Swarm swarm(kTestHash);
    constexpr uint32_t n = 300;  // past kIndexFrom: the indexed path, and several resizes
    for (uint32_t p = 0; p < n; ++p) REQUIRE(announce(swarm, Announce(p, p % 3 == 0).key(1000 + p)).status == CHIHAYA_OK);
    for (uint32_t p = 0; p < n; p += 4)  // remove a quarter, move some across the partition
        REQUIRE(announce(swarm, Announce(p).key(1000 + p).event(CHIHAYA_EVENT_STOPPED)).status == CHIHAYA_OK);
    for (uint32_t p = 1; p < n; p += 5)
        REQUIRE(announce(swarm, Announce(p, p % 2 == 0).key(1000 + p)).status == CHIHAYA_OK);
    for (uint32_t p = 0; p < n; ++p) {
        if (p % 4 == 0) continue;
        CHECK(announce(swarm, Announce(p).key(2000 + p).numwant(0)).status == CHIHAYA_KEY_MISMATCH);
        CHECK(announce(swarm, Announce(p).key(1000 + p).numwant(0)).status == CHIHAYA_OK);
    }
}

