// cache_conformance.cpp: the swarm contract of abi.h, run against any cache driver through its vtable.
//
// Part of chihaya-conformance (main.cpp has the command line and the report). Every check below
// states a rule written in abi.h; a driver that passes them all behaves as the host relies on.
// Only the ABI is used: no driver header, no driver symbol but the entry. Completions may come
// from another thread, later: every call waits on a condition variable with a timeout, and every
// call must complete exactly once (checked as it completes and again after destroy). Each test
// uses fresh random info_hashes, so a persistent store (Redis) shared between runs does not leak
// state into the next run.
#include <doctest/doctest.h>

#include "driver_under_test.hpp"
#include "kit.hpp"

#include <chihaya/abi.h>

#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define CHIHAYA_KIT_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHIHAYA_KIT_LSAN 1
#endif
#endif
#ifdef CHIHAYA_KIT_LSAN
#include <sanitizer/lsan_interface.h>
#endif

namespace {

constexpr auto kCompletionTimeout = std::chrono::seconds(5);

// Memory left to a driver that never completed (ASan builds: not reported at exit).
void lsan_ignore([[maybe_unused]] const void* p) {
#ifdef CHIHAYA_KIT_LSAN
    __lsan_ignore_object(p);
#endif
}

// ---- the host side: services, plugin loading, config (driver_under_test.hpp) --------------

using chihaya_test::host_api;
using chihaya_test::host_now_ms;
using Driver = chihaya_test::Driver<chihaya_cache_vtable>;

Driver load() {
    std::map<std::string, std::string> overrides;
    for (const auto& [key, value] : chihaya::conformance::options().config) overrides[key] = value;
    return chihaya_test::load<chihaya_cache_vtable>(chihaya::conformance::options().plugin,
                                                    chihaya::conformance::options().driver,
                                                    CHIHAYA_KIND_CACHE, "cache", overrides);
}

Driver& driver() {
    static Driver d = load();
    return d;
}

// ---- one instance and synchronous wrappers around its completion-based calls ---------------

// Heap-held and shared with the callback: after a timeout the driver may still complete later,
// and must then find live memory.
struct Waiter {
    std::mutex mutex;
    std::condition_variable cv;
    int calls = 0;
    chihaya_status status = CHIHAYA_INTERNAL;
    chihaya_completion completion{sizeof(chihaya_completion), 0, &Waiter::done, this};

    static void done(void* ctx, chihaya_status status) {
        auto* w = static_cast<Waiter*>(ctx);
        std::lock_guard lock(w->mutex);
        ++w->calls;
        w->status = status;
        w->cv.notify_all();
    }
    // True when done was called within the timeout (exactly once is checked by the caller).
    bool wait() {
        std::unique_lock lock(mutex);
        return cv.wait_for(lock, kCompletionTimeout, [&] { return calls > 0; });
    }
    int count() {
        std::lock_guard lock(mutex);
        return calls;
    }
};

using Hash = std::array<uint8_t, 20>;

Hash random_hash() {
    static std::mutex m;
    static std::mt19937_64 rng{std::random_device{}()};
    std::lock_guard lock(m);
    Hash h;
    for (auto& b : h) b = static_cast<uint8_t>(rng());
    return h;
}

// A peer in a test: number n maps to 10.n>>16.n>>8.n (v4) or 2001:db8::n (v6), port 6881 + n % 13.
struct Peer {
    uint32_t n = 0;
    uint8_t family = CHIHAYA_IPV4;

    uint16_t port() const { return static_cast<uint16_t>(6881 + n % 13); }
    void addr(uint8_t out[16]) const {
        std::memset(out, 0, 16);
        if (family == CHIHAYA_IPV4) {
            uint8_t a[4] = {10, uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n)};
            std::memcpy(out, a, 4);
        } else {
            uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0,
                             uint8_t(n >> 24), uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n)};
            std::memcpy(out, a, 16);
        }
    }
    // The compact entry a client would receive for this peer.
    std::string compact() const {
        uint8_t a[16];
        addr(a);
        std::string s(reinterpret_cast<const char*>(a), family == CHIHAYA_IPV4 ? 4 : 16);
        s.push_back(char(port() >> 8));
        s.push_back(char(port() & 0xff));
        return s;
    }
};
Peer v4(uint32_t n) { return {n, CHIHAYA_IPV4}; }
Peer v6(uint32_t n) { return {n, CHIHAYA_IPV6}; }

struct AnnounceArgs {
    bool seeder = false;
    chihaya_event event = CHIHAYA_EVENT_NONE;
    uint32_t numwant = 50;
    uint32_t capacity = 200;
    uint32_t ttl_s = 300;
    bool track = false;
    uint64_t uploaded = 0;
    uint64_t downloaded = 0;
    // ABI 2.3 budgets (0 = no limit) and the peer's port instead of its own (0 = its own).
    uint64_t max_torrents = 0;
    uint64_t max_peers = 0;
    uint32_t max_peers_per_address = 0;
    bool no_new_swarm = false;
    uint16_t port = 0;
};

struct Answer {
    chihaya_status status = CHIHAYA_INTERNAL;
    bool completed = false;  // done came within the timeout
    int calls = 0;           // times done had fired when the answer was taken
    chihaya_announce_result result{};
    std::vector<std::string> peers;
    std::string message;
    bool in_bounds = true;  // peer_count <= peers_capacity and nothing written past the capacity
    uint32_t total() const { return result.complete + result.incomplete; }
};

class Instance {
public:
    Instance() {
        Driver& d = driver();
        REQUIRE_MESSAGE(d.error.empty(), d.error);
        chihaya_config config{sizeof(chihaya_config), static_cast<uint32_t>(d.values.size()), d.values.data()};
        char error[256] = {};
        handle_ = d.vtable->create(&host_api, &config, error, sizeof error);
        REQUIRE_MESSAGE(handle_ != nullptr, "create failed: " << error);
    }
    // abi.h: destroy runs after every call has completed, and `done` fires exactly once per
    // call: no call may complete again, late, after its answer was taken.
    ~Instance() {
        if (handle_) driver().vtable->destroy(handle_);
        std::lock_guard lock(waiters_mutex_);
        for (const auto& w : waiters_)
            CHECK_MESSAGE(w->count() == 1, "a call's done fired " << w->count()
                                               << " times by the time destroy returned; want exactly once");
    }
    Instance(const Instance&) = delete;
    Instance& operator=(const Instance&) = delete;

    // An announce that must succeed: completion within the timeout, exactly once, status OK.
    // Every check on its result relies on this; a driver that never completes leaves the result
    // zeroed, which must not pass for "0 peers".
    Answer announce(const Hash& hash, const Peer& peer, const AnnounceArgs& a = {}) {
        Answer answer = announce_raw(hash, peer, a);
        REQUIRE_MESSAGE(answer.completed, "announce: done was not called within "
                                              << kCompletionTimeout.count() << " s (abi.h: exactly once per call)");
        CHECK_MESSAGE(answer.calls == 1, "announce: done fired " << answer.calls << " times; want exactly once");
        REQUIRE_MESSAGE(answer.status == CHIHAYA_OK,
                        "announce: status " << answer.status << " (want CHIHAYA_OK): " << answer.message);
        CHECK_MESSAGE(answer.in_bounds,
                      "announce: peer_count exceeds peers_capacity or bytes were written past it");
        return answer;
    }

    // The call alone, for threads other than the test's (no doctest assertion may run there) and
    // for outcomes other than OK. Answer::completed says whether done came, exactly once.
    Answer announce_raw(const Hash& hash, const Peer& peer, const AnnounceArgs& a = {}) {
        chihaya_announce_request req{};
        req.struct_size = sizeof req;
        req.flags = a.track ? CHIHAYA_ANNOUNCE_TRACK_COUNTERS : 0;
        std::memcpy(req.info_hash, hash.data(), 20);
        std::memset(req.peer_id, 'p', 20);
        req.family = peer.family;
        req.event = static_cast<uint8_t>(a.event);
        req.port = a.port ? a.port : peer.port();
        peer.addr(req.addr);
        req.max_torrents = a.max_torrents;
        req.max_peers = a.max_peers;
        req.max_peers_per_address = a.max_peers_per_address;
        if (a.no_new_swarm) req.flags |= CHIHAYA_ANNOUNCE_NO_NEW_SWARM;
        req.uploaded = a.uploaded;
        req.downloaded = a.downloaded;
        req.left = a.seeder ? 0 : 1000;
        req.numwant = a.numwant;
        req.peer_ttl_s = a.ttl_s;
        req.now_ms = host_now_ms();

        const size_t entry = peer.family == CHIHAYA_IPV4 ? 6 : 18;
        // One spare entry filled with a canary: a driver writing past capacity is caught.
        std::vector<uint8_t> buffer((a.capacity + 1) * entry, 0xAB);
        Answer answer;
        answer.result.struct_size = sizeof answer.result;
        answer.result.peers = buffer.data();
        answer.result.peers_capacity = a.capacity;
        auto waiter = track(std::make_shared<Waiter>());
        driver().vtable->announce(handle_, &req, &answer.result, &waiter->completion);
        answer.completed = waiter->wait();
        answer.calls = waiter->count();
        if (!answer.completed) {
            // Keep the memory the driver may still write to, for good: a leak on purpose, which
            // LeakSanitizer is told of so that the kit's own report is what fails the run.
            lsan_ignore(new std::shared_ptr<Waiter>(waiter));
            lsan_ignore(new std::vector<uint8_t>(std::move(buffer)));
            return answer;
        }
        answer.status = waiter->status;
        answer.message.assign(answer.result.message, strnlen(answer.result.message, CHIHAYA_MESSAGE_CAP));
        answer.in_bounds = answer.result.peer_count <= a.capacity;
        for (size_t i = a.capacity * entry; i < buffer.size(); ++i)
            answer.in_bounds = answer.in_bounds && buffer[i] == 0xAB;
        for (uint32_t i = 0; i < answer.result.peer_count && i < a.capacity; ++i)
            answer.peers.emplace_back(reinterpret_cast<const char*>(buffer.data() + i * entry), entry);
        return answer;
    }

    // Counts per hash; the status is checked here.
    std::vector<chihaya_scrape_entry> scrape(const std::vector<Hash>& hashes) {
        std::vector<chihaya_scrape_entry> entries(hashes.size());
        for (size_t i = 0; i < hashes.size(); ++i) {
            entries[i].struct_size = sizeof(chihaya_scrape_entry);
            std::memcpy(entries[i].info_hash, hashes[i].data(), 20);
            entries[i].complete = entries[i].incomplete = entries[i].downloaded = 0xdead;
        }
        chihaya_scrape_request req{};
        req.struct_size = sizeof req;
        req.count = static_cast<uint32_t>(entries.size());
        req.entries = entries.data();
        req.now_ms = host_now_ms();
        auto waiter = track(std::make_shared<Waiter>());
        driver().vtable->scrape(handle_, &req, &waiter->completion);
        REQUIRE_MESSAGE(waiter->wait(), "scrape: done was not called within "
                                            << kCompletionTimeout.count() << " s (abi.h: exactly once per call)");
        REQUIRE_MESSAGE(waiter->count() == 1, "scrape: done fired " << waiter->count() << " times; want exactly once");
        REQUIRE_MESSAGE(waiter->status == CHIHAYA_OK,
                        "scrape: status " << waiter->status << " (want CHIHAYA_OK): " << req.message);
        return entries;
    }
    chihaya_scrape_entry scrape(const Hash& hash) { return scrape(std::vector<Hash>{hash})[0]; }

    chihaya_instance* handle() const { return handle_; }

    // Keeps every completion of this instance for the exactly-once check in the destructor.
    std::shared_ptr<Waiter> track(std::shared_ptr<Waiter> waiter) {
        std::lock_guard lock(waiters_mutex_);
        waiters_.push_back(waiter);
        return waiter;
    }

private:
    chihaya_instance* handle_ = nullptr;
    std::mutex waiters_mutex_;
    std::vector<std::shared_ptr<Waiter>> waiters_;
};

// ---- stats (ABI 2.2, optional) --------------------------------------------------------------

// Read through the plugin's own table: a driver built for 2.0 or 2.1 has no such member at all.
bool has_stats() {
    const chihaya_cache_vtable* v = driver().vtable;
    return v->struct_size >= offsetof(chihaya_cache_vtable, stats) + sizeof(void*) && v->stats != nullptr;
}

// torrents, torrents_ipv4, torrents_ipv6, seeders_ipv4, leechers_ipv4, seeders_ipv6, leechers_ipv6
using Stats = std::array<int64_t, 7>;

Stats stats_of(Instance& c) {
    chihaya_cache_stats s{};
    s.struct_size = sizeof s;
    const chihaya_status status = driver().vtable->stats(c.handle(), &s);
    REQUIRE_MESSAGE(status == CHIHAYA_OK, "stats: status " << status << ": " << s.message);
    CHECK_MESSAGE(s.struct_size == sizeof s, "stats: the driver wrote struct_size (abi.h: never)");
    return {int64_t(s.torrents),     int64_t(s.torrents_ipv4), int64_t(s.torrents_ipv6), int64_t(s.seeders_ipv4),
            int64_t(s.leechers_ipv4), int64_t(s.seeders_ipv6),  int64_t(s.leechers_ipv6)};
}

// What changed since `base` (a shared store may hold other torrents: only deltas are checked).
Stats since(const Stats& base, const Stats& now) {
    Stats d{};
    for (size_t i = 0; i < d.size(); ++i) d[i] = now[i] - base[i];
    return d;
}

void check_ok(const Answer& a) {
    REQUIRE(a.completed);
    REQUIRE_MESSAGE(a.status == CHIHAYA_OK, a.message);
    CHECK_MESSAGE(a.in_bounds, "peer_count exceeds peers_capacity or bytes were written past it");
}

std::set<std::string> set_of(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

}  // namespace

TEST_CASE("the plugin declares a usable cache driver") {
    Driver& d = driver();
    REQUIRE_MESSAGE(d.error.empty(), d.error);
    CHECK(d.plugin->struct_size >= sizeof(chihaya_plugin_descriptor));
    CHECK(d.descriptor->struct_size >= sizeof(chihaya_driver_descriptor));
    REQUIRE(d.vtable->struct_size >= offsetof(chihaya_cache_vtable, scrape) + sizeof(void*));
    CHECK(reinterpret_cast<const void*>(d.vtable->create) != nullptr);
    CHECK(reinterpret_cast<const void*>(d.vtable->destroy) != nullptr);
    CHECK(reinterpret_cast<const void*>(d.vtable->announce) != nullptr);
    CHECK(reinterpret_cast<const void*>(d.vtable->scrape) != nullptr);
    for (uint32_t i = 0; i < d.descriptor->config_key_count; ++i) {
        const chihaya_config_key& k = *CHIHAYA_AT(const chihaya_config_key, d.descriptor->config_keys, i);
        CHECK(k.key != nullptr);
        CHECK(k.doc != nullptr);
        CHECK(k.default_value != nullptr);
        if (k.type == CHIHAYA_CONFIG_INT) CHECK(d.values[i].integer >= k.min);
        if (k.type == CHIHAYA_CONFIG_INT) CHECK(d.values[i].integer <= k.max);
    }
    Instance instance;  // creates and destroys with the declared defaults (and overrides)
}

TEST_CASE("left decides seeder or leecher, and a peer moves between them") {
    Instance c;
    Hash h = random_hash();
    Answer a = c.announce(h, v4(1));
    check_ok(a);
    CHECK(a.result.complete == 0);
    CHECK(a.result.incomplete == 1);
    CHECK(a.result.downloaded == 0);
    CHECK(a.result.peer_count == 0);  // never itself
    a = c.announce(h, v4(2), {.seeder = true});
    CHECK(a.result.complete == 1);
    CHECK(a.result.incomplete == 1);
    a = c.announce(h, v4(1), {.seeder = true});
    CHECK(a.result.complete == 2);
    CHECK(a.result.incomplete == 0);
    a = c.announce(h, v4(2));
    CHECK(a.result.complete == 1);
    CHECK(a.result.incomplete == 1);
    CHECK(a.result.downloaded == 0);
}

TEST_CASE("completed counts once per peer, also for a peer first seen completing") {
    Instance c;
    Hash h = random_hash();
    c.announce(h, v4(1), {.event = CHIHAYA_EVENT_STARTED});
    Answer a = c.announce(h, v4(1), {.seeder = true, .event = CHIHAYA_EVENT_COMPLETED});
    check_ok(a);
    CHECK(a.result.downloaded == 1);
    a = c.announce(h, v4(1), {.seeder = true, .event = CHIHAYA_EVENT_COMPLETED});
    CHECK(a.result.downloaded == 1);
    a = c.announce(h, v4(2), {.seeder = true, .event = CHIHAYA_EVENT_COMPLETED});
    CHECK(a.result.downloaded == 2);
    CHECK(a.result.complete == 2);
    CHECK(c.scrape(h).downloaded == 2);
}

TEST_CASE("stopped removes the peer") {
    Instance c;
    Hash h = random_hash();
    c.announce(h, v4(1));
    c.announce(h, v4(2), {.seeder = true});
    c.announce(h, v4(3));
    Answer a = c.announce(h, v4(1), {.event = CHIHAYA_EVENT_STOPPED});
    check_ok(a);
    CHECK(a.result.complete == 1);
    CHECK(a.result.incomplete == 1);
    a = c.announce(h, v4(3));
    CHECK(set_of(a.peers) == std::set<std::string>{v4(2).compact()});
    c.announce(h, v4(2), {.seeder = true, .event = CHIHAYA_EVENT_STOPPED});
    c.announce(h, v4(3), {.event = CHIHAYA_EVENT_STOPPED});
    auto s = c.scrape(h);
    CHECK(s.complete == 0);
    CHECK(s.incomplete == 0);
}

TEST_CASE("a peer never receives itself; seeders get leechers only; leechers get both") {
    Instance c;
    Hash h = random_hash();
    std::set<std::string> seeders, leechers;
    for (uint32_t n = 0; n < 12; ++n) {
        bool seeder = n < 6;
        c.announce(h, v4(n), {.seeder = seeder});
        (seeder ? seeders : leechers).insert(v4(n).compact());
    }
    for (uint32_t n = 0; n < 12; ++n) {
        bool seeder = n < 6;
        for (uint32_t want : {4u, 50u}) {
            Answer a = c.announce(h, v4(n), {.seeder = seeder, .numwant = want});
            check_ok(a);
            CHECK(a.result.complete == 6);
            CHECK(a.result.incomplete == 6);
            CHECK(set_of(a.peers).size() == a.peers.size());  // no duplicates
            CHECK(set_of(a.peers).count(v4(n).compact()) == 0);
            for (const auto& p : a.peers) {
                if (seeder) CHECK(leechers.count(p) == 1);
                else CHECK(seeders.count(p) + leechers.count(p) == 1);
            }
            uint32_t expected = seeder ? std::min(want, 6u) : std::min(want, 11u);
            CHECK(a.result.peer_count == expected);
        }
    }
}

TEST_CASE("numwant and peers_capacity bound the answer") {
    Instance c;
    Hash h = random_hash();
    for (uint32_t n = 0; n < 30; ++n) c.announce(h, v4(n));
    CHECK(c.announce(h, v4(0), {.numwant = 0}).result.peer_count == 0);
    CHECK(c.announce(h, v4(0), {.numwant = 5}).result.peer_count == 5);
    CHECK(c.announce(h, v4(0), {.numwant = 50, .capacity = 3}).result.peer_count == 3);
    CHECK(c.announce(h, v4(0), {.numwant = 50, .capacity = 0}).result.peer_count == 0);
    CHECK(c.announce(h, v4(0), {.numwant = 100}).result.peer_count == 29);
}

TEST_CASE("peer selection is random across announces") {
    Instance c;
    Hash h = random_hash();
    for (uint32_t n = 0; n < 60; ++n) c.announce(h, v4(n), {.seeder = n % 2 == 0});
    std::set<std::string> seen;
    for (int i = 0; i < 40; ++i)
        for (const auto& p : c.announce(h, v4(1), {.numwant = 10}).peers) seen.insert(p);
    CHECK(seen.size() > 20);
}

TEST_CASE("IPv4 and IPv6 peers are kept apart; counts cover both") {
    Instance c;
    Hash h = random_hash();
    for (uint32_t n = 0; n < 3; ++n) c.announce(h, v4(n));
    for (uint32_t n = 0; n < 4; ++n) c.announce(h, v6(n), {.seeder = true});
    Answer a = c.announce(h, v6(100));
    check_ok(a);
    CHECK(a.result.complete == 4);
    CHECK(a.result.incomplete == 4);
    std::set<std::string> want6;
    for (uint32_t n = 0; n < 4; ++n) want6.insert(v6(n).compact());
    CHECK(set_of(a.peers) == want6);
    a = c.announce(h, v4(100), {.seeder = true});
    std::set<std::string> want4;
    for (uint32_t n = 0; n < 3; ++n) want4.insert(v4(n).compact());
    CHECK(set_of(a.peers) == want4);
    CHECK(a.result.complete == 5);
    // Same number, other family: another peer.
    a = c.announce(h, v6(0), {.seeder = true, .event = CHIHAYA_EVENT_STOPPED});
    a = c.announce(h, v4(0));
    CHECK(a.result.complete == 4);
    CHECK(a.result.incomplete == 4);
}

TEST_CASE("TRACK_COUNTERS hands back the previous totals") {
    Instance c;
    Hash h = random_hash();
    Answer a = c.announce(h, v4(1), {.track = true, .uploaded = 10, .downloaded = 20});
    check_ok(a);
    CHECK(a.result.had_previous == 0);
    for (uint32_t n = 2; n < 6; ++n)
        c.announce(h, v4(n), {.seeder = n % 2 == 0, .track = true, .uploaded = n, .downloaded = n * 10});
    a = c.announce(h, v4(1), {.track = true, .uploaded = 11, .downloaded = 21});
    CHECK(a.result.had_previous == 1);
    CHECK(a.result.previous_uploaded == 10);
    CHECK(a.result.previous_downloaded == 20);
    a = c.announce(h, v4(1), {.seeder = true, .event = CHIHAYA_EVENT_COMPLETED, .track = true,
                             .uploaded = 12, .downloaded = 22});
    CHECK(a.result.previous_uploaded == 11);
    CHECK(a.result.previous_downloaded == 21);
    c.announce(h, v4(3), {.event = CHIHAYA_EVENT_STOPPED, .track = true, .uploaded = 3, .downloaded = 30});
    for (uint32_t n : {2u, 4u, 5u}) {
        a = c.announce(h, v4(n), {.seeder = n % 2 == 0, .track = true});
        CHECK(a.result.had_previous == 1);
        CHECK(a.result.previous_uploaded == n);
        CHECK(a.result.previous_downloaded == n * 10);
    }
    a = c.announce(h, v4(1), {.seeder = true, .event = CHIHAYA_EVENT_STOPPED, .track = true,
                             .uploaded = 13, .downloaded = 23});
    CHECK(a.result.had_previous == 1);
    CHECK(a.result.previous_uploaded == 12);
    a = c.announce(h, v4(1), {.track = true});
    CHECK(a.result.had_previous == 0);  // stopped forgot it
    // Families are tracked apart.
    a = c.announce(h, v6(1), {.track = true, .uploaded = 7});
    CHECK(a.result.had_previous == 0);
}

TEST_CASE("scrape: counts per hash, zeros for unknown hashes") {
    Instance c;
    Hash h1 = random_hash(), h2 = random_hash(), unknown = random_hash();
    c.announce(h1, v4(1), {.seeder = true, .event = CHIHAYA_EVENT_COMPLETED});
    c.announce(h1, v6(2));
    c.announce(h2, v4(1));
    auto s = c.scrape({h1, unknown, h2});
    CHECK(s[0].complete == 1);
    CHECK(s[0].incomplete == 1);
    CHECK(s[0].downloaded == 1);
    CHECK(s[1].complete == 0);
    CHECK(s[1].incomplete == 0);
    CHECK(s[1].downloaded == 0);
    CHECK(s[2].complete == 0);
    CHECK(s[2].incomplete == 1);
    CHECK(c.scrape(std::vector<Hash>{}).empty());
}

// --provides lists the optional members the driver claims ("scrape_all,tick"):
// a claimed member must be in its table, so a registration slip cannot skip their tests.
TEST_CASE("the optional members the driver claims are in its table") {
    const std::string& provides = chihaya::conformance::options().provides;
    if (provides.find("scrape_all") != std::string::npos) CHECK((driver().vtable->scrape_all != nullptr));
    if (provides.find("tick") != std::string::npos) CHECK((driver().vtable->tick != nullptr));
    if (provides.find("stats") != std::string::npos) CHECK(has_stats());
    // Enforcing the budgets is declared to the host too (abi.h 2.3), or it warns that it is not.
    if (provides.find("limits") != std::string::npos)
        CHECK_MESSAGE((driver().plugin->abi_minor >= 3 &&
                       (driver().descriptor->flags & CHIHAYA_DRIVER_PROVIDES_LIMITS) != 0),
                      "--provides limits, but the driver does not declare CHIHAYA_DRIVER_PROVIDES_LIMITS");
}

// ---- budgets (ABI 2.3; --provides limits) ---------------------------------------------------
// Enforcing [limits] is what a 2.3 driver is for, but the kit checks it only when the driver
// claims it, so that a driver can pass the rest first. The store may be shared and hold other
// torrents (Redis between runs): every budget below is one the store is already at.

bool provides_limits() { return chihaya::conformance::options().provides.find("limits") != std::string::npos; }

void check_refused(const Answer& a, chihaya_status want, uint8_t budget, const char* what) {
    REQUIRE_MESSAGE(a.completed, what << ": done was not called");
    CHECK_MESSAGE(a.status == want, what << ": status " << a.status << " (want " << want << "): " << a.message);
    CHECK_MESSAGE(a.result.peer_count == 0, what << ": a refused announce handed out peers");
    CHECK_MESSAGE(a.result.created_swarm == 0, what << ": a refused announce created a swarm");
    // refused_by is the driver's to say; when it says, it must be right.
    if (a.result.refused_by != 0)
        CHECK_MESSAGE(a.result.refused_by == budget, what << ": refused_by " << int(a.result.refused_by)
                                                          << ", want " << int(budget));
}

TEST_CASE("created_swarm is 1 on the announce that created the swarm, and only then") {
    if (!provides_limits()) return;
    Instance c;
    Hash h = random_hash();
    CHECK(c.announce(random_hash(), v4(1), {.event = CHIHAYA_EVENT_STOPPED}).result.created_swarm == 0);
    CHECK(c.announce(h, v4(1)).result.created_swarm == 1);
    CHECK(c.announce(h, v4(1)).result.created_swarm == 0);
    CHECK(c.announce(h, v4(2)).result.created_swarm == 0);
}

TEST_CASE("max_torrents: a new swarm past it is refused FULL; existing swarms keep serving") {
    if (!provides_limits()) return;
    Instance c;
    Hash h = random_hash(), fresh = random_hash();
    c.announce(h, v4(1));  // the store now holds at least one swarm
    Answer a = c.announce_raw(fresh, v4(2), {.max_torrents = 1});
    check_refused(a, CHIHAYA_FULL, CHIHAYA_BUDGET_MAX_TORRENTS, "a new swarm at max_torrents");
    CHECK(c.scrape(fresh).incomplete == 0);  // nothing changed
    // An existing swarm takes new peers, refreshes, moves and stops under the same budget.
    CHECK(c.announce(h, v4(2), {.max_torrents = 1}).result.incomplete == 2);
    CHECK(c.announce(h, v4(1), {.seeder = true, .max_torrents = 1}).result.complete == 1);
    CHECK(c.announce(h, v4(2), {.event = CHIHAYA_EVENT_STOPPED, .max_torrents = 1}).result.incomplete == 0);
}

TEST_CASE("max_peers: a new peer past it is refused FULL; peers already held are served") {
    if (!provides_limits()) return;
    Instance c;
    Hash h = random_hash();
    c.announce(h, v4(1));
    c.announce(h, v4(2), {.seeder = true});
    Answer a = c.announce_raw(h, v4(3), {.max_peers = 2});
    check_refused(a, CHIHAYA_FULL, CHIHAYA_BUDGET_MAX_PEERS, "a new peer at max_peers");
    CHECK(c.scrape(h).incomplete == 1);
    a = c.announce(h, v4(1), {.max_peers = 2});  // a refresh
    CHECK(set_of(a.peers) == std::set<std::string>{v4(2).compact()});
    CHECK(c.announce(h, v4(1), {.seeder = true, .max_peers = 2}).result.complete == 2);  // a move
    c.announce(h, v4(1), {.event = CHIHAYA_EVENT_STOPPED, .max_peers = 2});
    c.announce(h, v4(2), {.event = CHIHAYA_EVENT_STOPPED, .max_peers = 2});
    CHECK(c.scrape(h).complete == 0);
}

TEST_CASE("max_peers_per_address: ports of one address are capped per swarm, not others") {
    if (!provides_limits()) return;
    Instance c;
    Hash h = random_hash(), other = random_hash();
    const AnnounceArgs base{.max_peers_per_address = 3};
    auto at = [&](uint16_t port) { AnnounceArgs a = base; a.port = port; return a; };
    for (uint16_t port = 1000; port < 1003; ++port) c.announce(h, v4(7), at(port));
    Answer a = c.announce_raw(h, v4(7), at(1003));
    check_refused(a, CHIHAYA_ADDRESS_LIMIT, CHIHAYA_BUDGET_PEERS_PER_ADDRESS, "a 4th port of one address");
    CHECK(c.scrape(h).incomplete == 3);
    c.announce(h, v4(7), at(1001));             // a peer already held is refreshed
    c.announce(h, v4(8), at(1003));             // another address is admitted
    c.announce(h, v6(7), at(1003));             // the same number over IPv6 is another address
    c.announce(other, v4(7), at(1003));         // the same address in another swarm
    CHECK(c.scrape(h).incomplete == 5);
    // One leaves: its place is free again.
    c.announce(h, v4(7), {.event = CHIHAYA_EVENT_STOPPED, .max_peers_per_address = 3, .port = 1000});
    c.announce(h, v4(7), at(1003));
    CHECK(c.scrape(h).incomplete == 5);
}

TEST_CASE("max_peers_per_address: an expired peer frees its place (real time, ~3 s)") {
    if (!provides_limits()) return;
    Instance c;
    Hash h = random_hash();
    c.announce(h, v4(9), {.ttl_s = 1, .max_peers_per_address = 2, .port = 2000});
    c.announce(h, v4(9), {.ttl_s = 1, .max_peers_per_address = 2, .port = 2001});
    c.announce(h, v4(10), {.ttl_s = 600});  // keeps the swarm alive
    check_refused(c.announce_raw(h, v4(9), {.max_peers_per_address = 2, .port = 2002}), CHIHAYA_ADDRESS_LIMIT,
                  CHIHAYA_BUDGET_PEERS_PER_ADDRESS, "a 3rd port of one address");
    std::this_thread::sleep_for(std::chrono::milliseconds(3100));
    if (driver().vtable->tick)
        for (int i = 0; i < 2048; ++i) driver().vtable->tick(c.handle(), host_now_ms());
    c.announce(h, v4(9), {.max_peers_per_address = 2, .port = 2002});
    c.announce(h, v4(9), {.max_peers_per_address = 2, .port = 2003});
    CHECK(c.scrape(h).incomplete == 3);
}

TEST_CASE("NO_NEW_SWARM: refused ADDRESS_LIMIT for a new swarm, no effect on an existing one") {
    if (!provides_limits()) return;
    Instance c;
    Hash h = random_hash(), fresh = random_hash();
    c.announce(h, v4(1));
    Answer a = c.announce_raw(fresh, v4(1), {.no_new_swarm = true});
    check_refused(a, CHIHAYA_ADDRESS_LIMIT, CHIHAYA_BUDGET_NEW_SWARM, "a new swarm with NO_NEW_SWARM");
    CHECK(c.scrape(fresh).incomplete == 0);
    a = c.announce(h, v4(2), {.no_new_swarm = true});  // a new peer in an existing swarm
    CHECK(a.result.incomplete == 2);
    CHECK(a.result.created_swarm == 0);
}

TEST_CASE("refusals change no count, and a new swarm refused by max_peers is not created") {
    if (!provides_limits()) return;
    Instance c;
    Hash h = random_hash(), fresh = random_hash();
    c.announce(h, v4(1));
    c.announce(h, v4(7), {.max_peers_per_address = 1, .port = 4000});
    const bool stats = has_stats();
    const Stats base = stats ? stats_of(c) : Stats{};
    // The store holds at least two peers and one swarm: every budget below is reached.
    check_refused(c.announce_raw(fresh, v4(2), {.max_peers = 1}), CHIHAYA_FULL, CHIHAYA_BUDGET_MAX_PEERS,
                  "a new swarm's first peer at max_peers");
    check_refused(c.announce_raw(fresh, v4(2), {.max_torrents = 1}), CHIHAYA_FULL, CHIHAYA_BUDGET_MAX_TORRENTS,
                  "a new swarm at max_torrents");
    check_refused(c.announce_raw(fresh, v4(2), {.no_new_swarm = true}), CHIHAYA_ADDRESS_LIMIT,
                  CHIHAYA_BUDGET_NEW_SWARM, "a new swarm with NO_NEW_SWARM");
    check_refused(c.announce_raw(h, v4(3), {.max_peers = 1}), CHIHAYA_FULL, CHIHAYA_BUDGET_MAX_PEERS,
                  "a new peer at max_peers");
    check_refused(c.announce_raw(h, v4(7), {.max_peers_per_address = 1, .port = 4001}), CHIHAYA_ADDRESS_LIMIT,
                  CHIHAYA_BUDGET_PEERS_PER_ADDRESS, "a second port at max_peers_per_address = 1");
    const chihaya_scrape_entry f = c.scrape(fresh);
    CHECK(f.complete + f.incomplete + f.downloaded == 0);
    CHECK(c.scrape(h).incomplete == 2);
    if (stats) CHECK(since(base, stats_of(c)) == Stats{0, 0, 0, 0, 0, 0, 0});
    // None of them left a swarm behind: the next announce of `fresh` is the one that creates it.
    CHECK(c.announce(fresh, v4(2)).result.created_swarm == 1);
}

TEST_CASE("stats agree with the announces made, per family, as peers come, move and go") {
    if (!has_stats()) return;  // optional in the ABI (2.2)
    Instance c;
    const Stats base = stats_of(c);
    Hash h1 = random_hash(), h2 = random_hash();
    c.announce(h1, v4(1));
    c.announce(h1, v4(2), {.seeder = true});
    c.announce(h1, v4(3), {.seeder = true});
    c.announce(h1, v6(1));
    c.announce(h2, v6(2), {.seeder = true});
    CHECK(since(base, stats_of(c)) == Stats{2, 1, 2, 2, 1, 1, 1});
    c.announce(h1, v4(1), {.seeder = true});  // leecher -> seeder
    c.announce(h1, v4(2), {.seeder = true});  // a refresh
    CHECK(since(base, stats_of(c)) == Stats{2, 1, 2, 3, 0, 1, 1});
    c.announce(h1, v6(1), {.event = CHIHAYA_EVENT_STOPPED});
    CHECK(since(base, stats_of(c)) == Stats{2, 1, 1, 3, 0, 1, 0});
    c.announce(h2, v6(2), {.seeder = true, .event = CHIHAYA_EVENT_STOPPED});
    CHECK(since(base, stats_of(c)) == Stats{1, 1, 0, 3, 0, 0, 0});
    for (uint32_t n : {1u, 2u, 3u}) c.announce(h1, v4(n), {.seeder = true, .event = CHIHAYA_EVENT_STOPPED});
    CHECK(since(base, stats_of(c)) == Stats{0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("stats write only what the host's struct_size covers") {
    if (!has_stats()) return;
    Instance c;
    c.announce(random_hash(), v4(1), {.seeder = true});
    // An older host whose struct ends before seeders_ipv4: nothing may be written past it.
    constexpr size_t kCut = offsetof(chihaya_cache_stats, seeders_ipv4);
    alignas(chihaya_cache_stats) unsigned char raw[sizeof(chihaya_cache_stats)];
    std::memset(raw, 0xAB, sizeof raw);
    auto* s = reinterpret_cast<chihaya_cache_stats*>(raw);
    s->struct_size = kCut;
    std::memset(raw + sizeof(uint32_t), 0, kCut - sizeof(uint32_t));
    const chihaya_status status = driver().vtable->stats(c.handle(), s);
    CHECK(status == CHIHAYA_OK);
    CHECK(s->struct_size == kCut);
    CHECK(s->torrents >= 1);  // covered: written
    bool untouched = true;
    for (size_t i = kCut; i < sizeof raw; ++i) untouched = untouched && raw[i] == 0xAB;
    CHECK_MESSAGE(untouched, "stats wrote past the host's struct_size");
}

TEST_CASE("scrape_all visits every torrent and stops when the visitor says so") {
    Instance c;
    if (!driver().vtable->scrape_all) return;  // optional in the ABI
    std::map<Hash, uint32_t> mine;
    for (uint32_t i = 0; i < 30; ++i) {
        Hash h = random_hash();
        for (uint32_t n = 0; n <= i % 3; ++n) c.announce(h, v4(n));
        mine[h] = i % 3 + 1;
    }
    struct Visit {
        std::map<Hash, uint32_t> seen;
        uint32_t calls = 0;
        uint32_t stop_after = UINT32_MAX;
        std::atomic<int> concurrent{0};
        bool overlapped = false;
    };
    auto visit = [](void* ctx, const chihaya_scrape_entry* e) -> int {
        auto& v = *static_cast<Visit*>(ctx);
        if (v.concurrent.fetch_add(1) != 0) v.overlapped = true;
        Hash h;
        std::memcpy(h.data(), e->info_hash, 20);
        v.seen[h] = e->incomplete;
        ++v.calls;
        v.concurrent.fetch_sub(1);
        return v.calls < v.stop_after ? 1 : 0;
    };
    Visit all;
    auto waiter = c.track(std::make_shared<Waiter>());
    driver().vtable->scrape_all(c.handle(), visit, &all, &waiter->completion);
    REQUIRE(waiter->wait());
    CHECK(waiter->status == CHIHAYA_OK);
    CHECK_FALSE(all.overlapped);
    for (const auto& [h, n] : mine) {
        REQUIRE(all.seen.count(h) == 1);
        CHECK(all.seen[h] == n);
    }
    Visit some;
    some.stop_after = 5;
    waiter = c.track(std::make_shared<Waiter>());
    driver().vtable->scrape_all(c.handle(), visit, &some, &waiter->completion);
    REQUIRE(waiter->wait());
    CHECK(some.calls == 5);
}

TEST_CASE("peers expire after peer_ttl_s without an announce (real time, ~3 s)") {
    Instance c;
    const Stats stats_base = has_stats() ? stats_of(c) : Stats{};
    Hash h = random_hash();
    c.announce(h, v4(1), {.ttl_s = 1});
    c.announce(h, v4(2), {.seeder = true, .event = CHIHAYA_EVENT_COMPLETED, .ttl_s = 1});
    c.announce(h, v4(3), {.ttl_s = 600});
    auto s = c.scrape(h);
    CHECK(s.complete + s.incomplete == 3);
    // Second-granular stores may round a 1 s TTL up to just under 2 s after the last whole second.
    std::this_thread::sleep_for(std::chrono::milliseconds(3100));
    if (driver().vtable->tick)
        for (int i = 0; i < 2048; ++i) driver().vtable->tick(c.handle(), host_now_ms());
    s = c.scrape(h);
    CHECK(s.complete == 0);
    CHECK(s.incomplete == 1);
    // A driver's stats may lag expiry until its housekeeping (or, as here, a scrape) reaches
    // the swarm, but no further: only v4(3) is left.
    if (has_stats()) CHECK(since(stats_base, stats_of(c)) == Stats{1, 1, 0, 0, 1, 0, 0});
    Answer a = c.announce(h, v4(4), {.numwant = 50});
    CHECK(set_of(a.peers) == std::set<std::string>{v4(3).compact()});
    // An expired peer that returns is new again.
    a = c.announce(h, v4(1), {.track = true});
    CHECK(a.result.had_previous == 0);
}

TEST_CASE("concurrent announces from several threads leave consistent counts") {
    Instance c;
    constexpr uint32_t kThreads = 4, kTorrents = 8, kPeersPerThread = 40, kRounds = 5;
    std::vector<Hash> hashes;
    for (uint32_t t = 0; t < kTorrents; ++t) hashes.push_back(random_hash());
    std::atomic<uint32_t> failures{0};
    auto work = [&](uint32_t thread) {
        // Each thread owns peers thread*1000 + i; every one joins every torrent, re-announces,
        // completes once (even i) and stops (i % 4 == 3); tick runs alongside from thread 0.
        for (uint32_t round = 0; round < kRounds; ++round) {
            for (uint32_t i = 0; i < kPeersPerThread; ++i) {
                for (uint32_t t = 0; t < kTorrents; ++t) {
                    Peer p = (i % 5 == 0) ? v6(thread * 1000 + i) : v4(thread * 1000 + i);
                    AnnounceArgs a;
                    bool last = round == kRounds - 1;
                    a.seeder = i % 2 == 0 && round >= 2;
                    if (i % 2 == 0 && round == 2) a.event = CHIHAYA_EVENT_COMPLETED;
                    if (last && i % 4 == 3) a.event = CHIHAYA_EVENT_STOPPED;
                    a.numwant = 20;
                    Answer r = c.announce_raw(hashes[t], p, a);
                    if (!r.completed || r.calls != 1 || r.status != CHIHAYA_OK || !r.in_bounds)
                        failures.fetch_add(1);
                    if (thread == 0 && driver().vtable->tick && i % 8 == 0)
                        driver().vtable->tick(c.handle(), host_now_ms());
                }
            }
        }
    };
    // stats (when the driver has it) is read all along from another thread, as the host's admin
    // thread does, and must end up agreeing with the swarms.
    const bool stats = has_stats();
    const Stats base = stats ? stats_of(c) : Stats{};
    std::atomic<bool> working{true};
    std::atomic<uint32_t> stats_failures{0};
    std::thread reader([&] {
        while (stats && working.load()) {
            chihaya_cache_stats s{};
            s.struct_size = sizeof s;
            if (driver().vtable->stats(c.handle(), &s) != CHIHAYA_OK) stats_failures.fetch_add(1);
            std::this_thread::yield();
        }
    });
    std::vector<std::thread> threads;
    for (uint32_t t = 0; t < kThreads; ++t) threads.emplace_back(work, t);
    for (auto& th : threads) th.join();
    working.store(false);
    reader.join();
    CHECK(failures.load() == 0);
    CHECK(stats_failures.load() == 0);
    // Per thread: 20 even peers are seeders that completed once; 10 peers (i % 4 == 3) stopped;
    // the other 10 odd peers stay leechers.
    for (const auto& s : c.scrape(hashes)) {
        CHECK(s.complete == kThreads * 20);
        CHECK(s.incomplete == kThreads * 10);
        CHECK(s.downloaded == kThreads * 20);
    }
    if (stats) {
        // The same rules per family (i % 5 == 0 is IPv6), in every torrent.
        Stats want{int64_t(kTorrents), int64_t(kTorrents), int64_t(kTorrents), 0, 0, 0, 0};
        for (uint32_t i = 0; i < kPeersPerThread; ++i) {
            if (i % 4 == 3) continue;  // stopped
            const size_t at = (i % 5 == 0 ? 5 : 3) + (i % 2 == 0 ? 0 : 1);
            want[at] += int64_t(kThreads * kTorrents);
        }
        CHECK(since(base, stats_of(c)) == want);
    }
}
