// The memory driver's [limits] budgets (abi.h 2.3): max_torrents, max_peers, max_peers_per_address
// and NO_NEW_SWARM, with the counts going back down as peers stop, expire and are reloaded.
#include "memory_cache.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <filesystem>
#include <string>
#include <vector>

using namespace chihaya::memory;

// Every allocation of this test binary is counted, so a test can see that a refusal allocates
// nothing (no map node made only to be erased).
namespace {
std::atomic<uint64_t> allocations{0};
}  // namespace

void* operator new(std::size_t n) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

// One announce: torrent `hash`, IPv4 address 10.0.0.<host> (or 2001:db8::<host>), `port`.
struct Announce {
    chihaya_announce_request r{};

    Announce(uint8_t hash, uint8_t host, uint16_t port, uint8_t family = CHIHAYA_IPV4) {
        r.struct_size = sizeof r;
        std::memset(r.info_hash, hash, 20);
        r.family = family;
        r.port = port;
        if (family == CHIHAYA_IPV4) {
            const uint8_t a[4] = {10, 0, 0, host};
            std::memcpy(r.addr, a, 4);
        } else {
            const uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, host};
            std::memcpy(r.addr, a, 16);
        }
        r.left = 1000;
        r.numwant = 50;
        r.peer_ttl_s = 600;
        r.now_ms = 1000;
    }
    Announce& torrents(uint64_t n) { r.max_torrents = n; return *this; }
    Announce& peers(uint64_t n) { r.max_peers = n; return *this; }
    Announce& per_address(uint32_t n) { r.max_peers_per_address = n; return *this; }
    Announce& no_new_swarm() { r.flags |= CHIHAYA_ANNOUNCE_NO_NEW_SWARM; return *this; }
    Announce& stopped() { r.event = CHIHAYA_EVENT_STOPPED; return *this; }
    Announce& ttl(uint32_t s) { r.peer_ttl_s = s; return *this; }
    Announce& at_ms(uint64_t ms) { r.now_ms = ms; return *this; }
};

struct Answer {
    uint8_t peers[200 * 18];
    chihaya_announce_result r{};
    chihaya_status status = CHIHAYA_INTERNAL;
};

Answer announce(MemoryCache& cache, const Announce& a) {
    Answer out;
    out.r.struct_size = sizeof out.r;
    out.r.peers = out.peers;
    out.r.peers_capacity = 200;
    out.status = cache.announce(a.r, out.r);
    return out;
}

chihaya_status status(MemoryCache& cache, const Announce& a) { return announce(cache, a).status; }

uint32_t leechers(MemoryCache& cache, uint8_t hash, uint64_t now_ms = 1000) {
    chihaya_scrape_entry e{};
    e.struct_size = sizeof e;
    std::memset(e.info_hash, hash, 20);
    chihaya_scrape_request q{};
    q.struct_size = sizeof q;
    q.count = 1;
    q.entries = &e;
    q.now_ms = now_ms;
    cache.scrape(q);
    return e.incomplete;
}

// Makes swarm `hash`'s family big enough for an index (64 peers or more): 80 long-lived peers of
// other addresses (IPv6: another /64). Its addresses are then counted in the cache's table, where
// a smaller family is scanned (address_counts.hpp), so a test run on both sees both ways.
void crowd(MemoryCache& cache, uint8_t hash, uint8_t family = CHIHAYA_IPV4, uint64_t at_ms = 1000) {
    for (uint16_t i = 0; i < 80; ++i) {
        Announce a(hash, uint8_t(200 + i % 40), uint16_t(30000 + i), family);
        if (family == CHIHAYA_IPV6) a.r.addr[7] = 9;
        a.r.numwant = 0;
        REQUIRE(status(cache, a.ttl(100'000).at_ms(at_ms)) == CHIHAYA_OK);
    }
}

// The totals the budgets read agree with a walk of every shard.
void check_totals(const MemoryCache& cache) {
    CHECK(cache.torrent_total() == cache.swarm_count());
    CHECK(cache.peer_total() == cache.peer_count());
}

}  // namespace

TEST_CASE("max_torrents: a new swarm at the budget is refused FULL; existing swarms keep serving") {
    MemoryCache cache({16, 16}, 0);
    for (uint8_t h = 1; h <= 3; ++h) {
        Answer a = announce(cache, Announce(h, 1, 6881).torrents(3));
        CHECK(a.status == CHIHAYA_OK);
        CHECK(a.r.created_swarm == 1);
    }
    Answer refused = announce(cache, Announce(4, 1, 6881).torrents(3));
    CHECK(refused.status == CHIHAYA_FULL);
    CHECK(refused.r.refused_by == CHIHAYA_BUDGET_MAX_TORRENTS);
    CHECK(refused.r.created_swarm == 0);
    CHECK(cache.swarm_count() == 3);
    check_totals(cache);
    // An existing swarm takes a new peer; the announce created nothing.
    Answer joined = announce(cache, Announce(1, 2, 6881).torrents(3));
    CHECK(joined.status == CHIHAYA_OK);
    CHECK(joined.r.created_swarm == 0);
    CHECK(joined.r.incomplete == 2);
    // A swarm that empties frees its place.
    CHECK(status(cache, Announce(2, 1, 6881).stopped().torrents(3)) == CHIHAYA_OK);
    CHECK(status(cache, Announce(4, 1, 6881).torrents(3)) == CHIHAYA_OK);
    CHECK(status(cache, Announce(5, 1, 6881).torrents(0)) == CHIHAYA_OK);  // 0: no limit
    check_totals(cache);
}

TEST_CASE("max_peers: a new peer at the budget is refused FULL, changing nothing; held peers are served") {
    MemoryCache cache({16, 16}, 0);
    CHECK(status(cache, Announce(1, 1, 6881).peers(3)) == CHIHAYA_OK);
    CHECK(status(cache, Announce(1, 2, 6881).peers(3)) == CHIHAYA_OK);
    CHECK(status(cache, Announce(2, 3, 6881).peers(3)) == CHIHAYA_OK);
    Answer refused = announce(cache, Announce(1, 4, 6881).peers(3));
    CHECK(refused.status == CHIHAYA_FULL);
    CHECK(refused.r.refused_by == CHIHAYA_BUDGET_MAX_PEERS);
    CHECK(refused.r.peer_count == 0);
    // A new swarm's first peer is refused too, and leaves no empty swarm behind.
    CHECK(status(cache, Announce(3, 4, 6881).peers(3)) == CHIHAYA_FULL);
    CHECK(cache.swarm_count() == 2);
    CHECK(leechers(cache, 1) == 2);
    Answer refresh = announce(cache, Announce(1, 1, 6881).peers(3));
    CHECK(refresh.status == CHIHAYA_OK);
    CHECK(refresh.r.peer_count == 1);
    CHECK(status(cache, Announce(1, 2, 6881).stopped().peers(3)) == CHIHAYA_OK);
    CHECK(status(cache, Announce(1, 4, 6881).peers(3)) == CHIHAYA_OK);  // a freed place
    check_totals(cache);
}

TEST_CASE("max_peers_per_address: one address's ports are capped per swarm; others are admitted") {
    MemoryCache cache({16, 16}, 0);
    for (uint16_t port = 1; port <= 3; ++port) CHECK(status(cache, Announce(1, 7, port).per_address(3)) == CHIHAYA_OK);
    Answer refused = announce(cache, Announce(1, 7, 4).per_address(3));
    CHECK(refused.status == CHIHAYA_ADDRESS_LIMIT);
    CHECK(refused.r.refused_by == CHIHAYA_BUDGET_PEERS_PER_ADDRESS);
    CHECK(leechers(cache, 1) == 3);
    CHECK(status(cache, Announce(1, 7, 2).per_address(3)) == CHIHAYA_OK);        // held: refreshed
    CHECK(status(cache, Announce(1, 8, 4).per_address(3)) == CHIHAYA_OK);        // a second address
    CHECK(status(cache, Announce(1, 7, 4, CHIHAYA_IPV6).per_address(3)) == CHIHAYA_OK);  // IPv6 is another
    CHECK(status(cache, Announce(2, 7, 4).per_address(3)) == CHIHAYA_OK);        // another swarm
    CHECK(status(cache, Announce(1, 7, 4).per_address(0)) == CHIHAYA_OK);        // 0: no limit
    CHECK(leechers(cache, 1) == 6);
}

TEST_CASE("max_peers_per_address: a stopped peer gives its address's place back") {
    for (bool big : {false, true}) {
        CAPTURE(big);
        MemoryCache cache({16, 16}, 0);
        if (big) crowd(cache, 1, CHIHAYA_IPV4, 0);
        for (uint16_t port = 1; port <= 3; ++port) status(cache, Announce(1, 7, port).per_address(3));
        CHECK(status(cache, Announce(1, 7, 4).per_address(3)) == CHIHAYA_ADDRESS_LIMIT);
        CHECK(status(cache, Announce(1, 7, 1).stopped()) == CHIHAYA_OK);
        CHECK(status(cache, Announce(1, 7, 4).per_address(3)) == CHIHAYA_OK);
        CHECK(status(cache, Announce(1, 7, 5).per_address(3)) == CHIHAYA_ADDRESS_LIMIT);
        // The address's peers all stop and come back: it starts from zero again.
        for (uint16_t port : {2, 3, 4}) status(cache, Announce(1, 7, port).stopped());
        CHECK(cache.swarm_count() == (big ? 1u : 0u));
        for (uint16_t port = 10; port < 13; ++port) CHECK(status(cache, Announce(1, 7, port).per_address(3)) == CHIHAYA_OK);
        CHECK(status(cache, Announce(1, 7, 13).per_address(3)) == CHIHAYA_ADDRESS_LIMIT);
    }
}

TEST_CASE("max_peers_per_address: expired peers give their places back, in small and in big swarms") {
    MemoryCache cache({16, 16}, 1000);
    // Small swarm (no index): expired when the swarm is touched.
    for (uint16_t port = 1; port <= 3; ++port) status(cache, Announce(1, 7, port).ttl(10).at_ms(1000).per_address(3));
    status(cache, Announce(1, 9, 1).ttl(1000).at_ms(1000));
    CHECK(status(cache, Announce(1, 7, 4).at_ms(5000).per_address(3)) == CHIHAYA_ADDRESS_LIMIT);
    for (uint16_t port = 4; port <= 6; ++port)
        CHECK(status(cache, Announce(1, 7, port).at_ms(20'000).per_address(3)) == CHIHAYA_OK);

    // Big swarm (indexed, expired a slice at a time): 100 long-lived peers of other addresses and
    // 3 short-lived ones of address 7, expired by housekeeping.
    for (uint8_t host = 100; host < 200; ++host) status(cache, Announce(2, host, 1).ttl(1000).at_ms(1000));
    for (uint16_t port = 1; port <= 3; ++port) status(cache, Announce(2, 7, port).ttl(10).at_ms(1000).per_address(3));
    CHECK(status(cache, Announce(2, 7, 4).at_ms(2000).per_address(3)) == CHIHAYA_ADDRESS_LIMIT);
    for (int i = 0; i < 2; ++i) cache.tick(1000 + 20'000);  // a full pass of 16 shards
    CHECK(leechers(cache, 2, 21'000) == 100);
    for (uint16_t port = 4; port <= 6; ++port)
        CHECK(status(cache, Announce(2, 7, port).at_ms(21'000).per_address(3)) == CHIHAYA_OK);
    CHECK(status(cache, Announce(2, 7, 7).at_ms(21'000).per_address(3)) == CHIHAYA_ADDRESS_LIMIT);
    check_totals(cache);
}

// A family's peers are counted in the cache's table only while it has an index (64 peers or
// more), and scanned below: the count stays exact as one address's family is indexed, drops
// below a quarter (index gone) and grows again, and when every peer has left nothing is left
// counted (a leaked count would refuse early, a missing one would wrap and refuse everything).
TEST_CASE("max_peers_per_address stays exact as a family gains and loses its index") {
    MemoryCache cache({16, 16}, 1000);
    const uint32_t limit = 100;
    auto fill = [&](uint16_t from, uint16_t to) {  // ports [from, to) of address 7
        for (uint16_t port = from; port < to; ++port)
            REQUIRE(status(cache, Announce(1, 7, port).per_address(limit)) == CHIHAYA_OK);
    };
    auto stop = [&](uint16_t from, uint16_t to) {
        for (uint16_t port = from; port < to; ++port)
            REQUIRE(status(cache, Announce(1, 7, port).stopped().per_address(limit)) == CHIHAYA_OK);
    };
    for (int round = 0; round < 3; ++round) {
        fill(1, 101);  // indexed from the 64th
        CHECK(status(cache, Announce(1, 7, 101).per_address(limit)) == CHIHAYA_ADDRESS_LIMIT);
        stop(1, 91);  // 10 left: below 16, the index goes
        CHECK(leechers(cache, 1) == 10);
        fill(1, 91);
        CHECK(status(cache, Announce(1, 7, 101).per_address(limit)) == CHIHAYA_ADDRESS_LIMIT);
        stop(1, 101);
        CHECK(cache.swarm_count() == 0);
    }
    // Three rounds leaked nothing: the address holds its full 100 again, and not one more.
    fill(1, 101);
    CHECK(status(cache, Announce(1, 7, 101).per_address(limit)) == CHIHAYA_ADDRESS_LIMIT);
    check_totals(cache);

    // Expiry takes the index away too (a slice at a time, then the rest scanned): 90 of the
    // 100 re-announce with a short lifetime and expire; the 10 left are counted by a scan, and
    // the address gets exactly its 90 places back.
    for (uint16_t port = 1; port < 91; ++port)
        REQUIRE(status(cache, Announce(1, 7, port).ttl(10).at_ms(1000).per_address(limit)) == CHIHAYA_OK);
    for (uint16_t port = 91; port < 101; ++port)
        REQUIRE(status(cache, Announce(1, 7, port).ttl(1000).at_ms(1000).per_address(limit)) == CHIHAYA_OK);
    for (int pass = 0; pass < 4; ++pass) cache.tick(30'000);  // whole passes of the 16 shards
    CHECK(leechers(cache, 1, 30'000) == 10);
    for (uint16_t port = 1; port < 91; ++port)
        REQUIRE(status(cache, Announce(1, 7, port).at_ms(30'000).per_address(limit)) == CHIHAYA_OK);
    CHECK(status(cache, Announce(1, 7, 101).at_ms(30'000).per_address(limit)) == CHIHAYA_ADDRESS_LIMIT);
    check_totals(cache);
}

TEST_CASE("NO_NEW_SWARM: a new swarm is refused ADDRESS_LIMIT; an existing swarm is joined") {
    MemoryCache cache({16, 16}, 0);
    status(cache, Announce(1, 1, 6881));
    Answer refused = announce(cache, Announce(2, 2, 6881).no_new_swarm());
    CHECK(refused.status == CHIHAYA_ADDRESS_LIMIT);
    CHECK(refused.r.refused_by == CHIHAYA_BUDGET_NEW_SWARM);
    CHECK(cache.swarm_count() == 1);
    Answer joined = announce(cache, Announce(1, 2, 6881).no_new_swarm());
    CHECK(joined.status == CHIHAYA_OK);
    CHECK(joined.r.incomplete == 2);
    // A stop of an unknown swarm is no creation: fine, and created_swarm stays 0.
    Answer stop = announce(cache, Announce(3, 2, 6881).stopped().no_new_swarm());
    CHECK(stop.status == CHIHAYA_OK);
    CHECK(stop.r.created_swarm == 0);
}

TEST_CASE("a host older than 2.3 sends a shorter request: no budget applies") {
    MemoryCache cache({16, 16}, 0);
    Announce a(1, 7, 1);
    a.per_address(1).torrents(1).peers(1).no_new_swarm();
    a.r.flags &= ~CHIHAYA_ANNOUNCE_NO_NEW_SWARM;  // a 2.2 host has no such flag either
    a.r.struct_size = offsetof(chihaya_announce_request, max_peers_per_address);
    for (uint16_t port = 1; port <= 5; ++port) {
        a.r.port = port;
        CHECK(status(cache, a) == CHIHAYA_OK);
    }
}

TEST_CASE("a snapshot reload counts every peer again, per address and in the totals") {
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("chihaya-limits-test-" + std::to_string(::getpid()))).string();
    {
        MemoryCache cache({16, 16}, 0);
        for (uint16_t port = 1; port <= 3; ++port) status(cache, Announce(1, 7, port).at_ms(1000));
        for (uint16_t port = 1; port <= 3; ++port) status(cache, Announce(4, 7, port).at_ms(1000));
        crowd(cache, 4);  // counted in the table once loaded, not by a scan
        status(cache, Announce(2, 8, 1).at_ms(1000));
        cache.save_snapshot(path, 1000);
    }
    MemoryCache loaded({16, 16}, 0);
    loaded.load_snapshot(path, 1000, [](uint64_t) {});
    std::filesystem::remove(path);
    check_totals(loaded);
    CHECK(loaded.torrent_total() == 3);
    CHECK(loaded.peer_total() == 87);
    CHECK(status(loaded, Announce(1, 7, 4).per_address(3)) == CHIHAYA_ADDRESS_LIMIT);
    CHECK(status(loaded, Announce(4, 7, 4).per_address(3)) == CHIHAYA_ADDRESS_LIMIT);
    CHECK(status(loaded, Announce(3, 7, 4).torrents(3)) == CHIHAYA_FULL);
    CHECK(status(loaded, Announce(1, 9, 4).peers(87)) == CHIHAYA_FULL);
}

TEST_CASE("the totals follow every way a swarm or a peer comes and goes") {
    MemoryCache cache({16, 4}, 1000);
    for (uint8_t h = 0; h < 50; ++h)
        for (uint8_t host = 1; host <= 3; ++host) status(cache, Announce(h, host, 1).ttl(h % 2 ? 10 : 1000).at_ms(1000));
    check_totals(cache);
    for (uint8_t h = 0; h < 10; ++h) status(cache, Announce(h, 1, 1).stopped().at_ms(2000));
    check_totals(cache);
    for (int i = 0; i < 4; ++i) cache.tick(1000 + 20'000);
    check_totals(cache);
    CHECK(cache.torrent_total() == 25);
}

TEST_CASE("max_peers: a new swarm refused at the budget allocates nothing and leaves no swarm") {
    MemoryCache cache({16, 16}, 0);
    for (uint8_t h = 1; h <= 16; ++h) CHECK(status(cache, Announce(h, 1, 6881).peers(16)) == CHIHAYA_OK);
    const CacheStats before = cache.stats();
    for (uint8_t h = 17; h <= 40; ++h) {
        const uint64_t allocated = allocations.load();
        Answer refused = announce(cache, Announce(h, 2, 6881).peers(16));
        CHECK(allocations.load() == allocated);
        CHECK(refused.status == CHIHAYA_FULL);
        CHECK(refused.r.refused_by == CHIHAYA_BUDGET_MAX_PEERS);
        CHECK(refused.r.created_swarm == 0);
    }
    CHECK(cache.swarm_count() == 16);
    const CacheStats after = cache.stats();
    CHECK(after.torrents == before.torrents);
    CHECK(after.leechers_v4 == before.leechers_v4);
    check_totals(cache);
}

TEST_CASE("max_peers_per_address: a peer expired by a scrape gives its address's place back") {
    for (bool big : {false, true}) {
        CAPTURE(big);
        MemoryCache cache({16, 16}, 1000);
        if (big) crowd(cache, 1);
        CHECK(status(cache, Announce(1, 7, 1).ttl(10).at_ms(1000).per_address(1)) == CHIHAYA_OK);
        CHECK(status(cache, Announce(1, 7, 2).at_ms(2000).per_address(1)) == CHIHAYA_ADDRESS_LIMIT);
        // Only scrapes touch the swarm after the deadline: they expire the peer (a big swarm a
        // slice per scrape) and drop a swarm left empty.
        const uint32_t others = big ? 80 : 0;
        for (int i = 0; i < 10 && leechers(cache, 1, 30'000) != others; ++i) {}
        CHECK(leechers(cache, 1, 30'000) == others);
        CHECK(cache.swarm_count() == (big ? 1u : 0u));
        CHECK(status(cache, Announce(1, 7, 2).at_ms(30'000).per_address(1)) == CHIHAYA_OK);
        CHECK(status(cache, Announce(1, 7, 3).at_ms(30'000).per_address(1)) == CHIHAYA_ADDRESS_LIMIT);
        check_totals(cache);
    }
}

TEST_CASE("max_peers_per_address: an IPv6 address is counted per /64") {
    for (bool big : {false, true}) {
        CAPTURE(big);
        MemoryCache cache({16, 16}, 0);
        if (big) crowd(cache, 1, CHIHAYA_IPV6, 0);
        for (uint8_t host = 1; host <= 4; ++host)  // 2001:db8::<host>: one /64
            CHECK(status(cache, Announce(1, host, 6881, CHIHAYA_IPV6).per_address(4)) == CHIHAYA_OK);
        CHECK(status(cache, Announce(1, 5, 6881, CHIHAYA_IPV6).per_address(4)) == CHIHAYA_ADDRESS_LIMIT);
        Announce other(1, 5, 6881, CHIHAYA_IPV6);
        other.r.addr[7] = 1;  // 2001:db8:0:1::5, another /64
        CHECK(status(cache, other.per_address(4)) == CHIHAYA_OK);
        CHECK(status(cache, Announce(1, 5, 6881).per_address(4)) == CHIHAYA_OK);  // IPv4 apart
    }
}

TEST_CASE("max_peers_per_address: a swarm of 300,000 addresses meets no false refusal at the default size") {
    // The default cache: 1,024 shards, 1,048,576 counters. A swarm lives in one shard; counters
    // sliced per shard would hold its 300,000 addresses in 1,024 (293 a counter).
    MemoryCache cache({}, 0);
    uint32_t refused = 0;
    for (uint32_t i = 0; i < 300'000; ++i) {
        Announce a(1, 0, 6881);
        a.r.numwant = 0;
        a.r.addr[1] = uint8_t(i >> 16);
        a.r.addr[2] = uint8_t(i >> 8);
        a.r.addr[3] = uint8_t(i);
        if (status(cache, a.per_address(64)) != CHIHAYA_OK) ++refused;
    }
    CHECK(refused == 0);
    CHECK(cache.peer_total() == 300'000);
    // A second swarm (whatever its shard) is not crowded out either. Below 64 peers its family is
    // counted by a scan, exactly; the 64th gives it an index and moves its peers into the table,
    // where its address's counter may also hold a pair of the big swarm (300,000 pairs in
    // 1,048,576 counters: 25 % of them). So it gets exactly its 64 ports, never more.
    uint32_t admitted = 0;
    for (uint32_t i = 0; i < 200; ++i)
        if (status(cache, Announce(2, 1, uint16_t(1 + i)).per_address(64)) == CHIHAYA_OK) ++admitted;
    CHECK(admitted == 64);
}

TEST_CASE("address counters never stick: 65,535 ports of one address join and leave, the place comes back") {
    MemoryCache cache({16, 16}, 0);
    for (uint32_t port = 1; port <= 65535; ++port) {
        Announce a(1, 7, uint16_t(port));
        a.r.numwant = 0;
        status(cache, a);  // no cap: joins are counted all the same
    }
    CHECK(cache.peer_total() == 65535);
    for (uint32_t port = 1; port <= 65535; ++port) status(cache, Announce(1, 7, uint16_t(port)).stopped());
    CHECK(cache.swarm_count() == 0);
    crowd(cache, 1, CHIHAYA_IPV4, 0);  // the place is looked up in the table again, not scanned
    CHECK(status(cache, Announce(1, 7, 1).per_address(1)) == CHIHAYA_OK);
    CHECK(status(cache, Announce(1, 7, 2).per_address(1)) == CHIHAYA_ADDRESS_LIMIT);
}
