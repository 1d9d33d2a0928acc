// redis_limits_test.cpp: issue 11's memory budgets (ABI 2.3: max_torrents, max_peers,
// max_peers_per_address, NO_NEW_SWARM, created_swarm) on the redis cache driver, through the C
// ABI against a real redis-server, with the store itself (DBSIZE, used_memory, the ledger)
// read over a plain hiredis connection.
//
// Usage (ctest does this through run_redis_limits.py, which starts the server or cluster):
//   CHIHAYA_PLUGIN=build/plugins/chihaya_redis.so CHIHAYA_DRIVER=redis
//   CHIHAYA_DRIVER_CONFIG='addresses="127.0.0.1:6379"' CHIHAYA_TEST_REDIS_NODES=127.0.0.1:6379
//   [CHIHAYA_TEST_REDIS_CLUSTER=1] ./redis_limits_test
// Every test case starts from an empty store (FLUSHALL on every node) and a fresh instance.
// Bounded: at most a few thousand announces per case, every wait has a deadline.
#include <doctest/doctest.h>

#include "driver_under_test.hpp"

#include <chihaya/abi.h>

#include <hiredis/hiredis.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Driver = chihaya_test::Driver<chihaya_cache_vtable>;
using chihaya_test::env;
using chihaya_test::host_api;
using Hash = std::array<uint8_t, 20>;

constexpr auto kTimeout = 10s;

Driver& driver() {
    static Driver d = [] {
        std::string error;
        auto overrides = chihaya_test::overrides_from_env(error);
        Driver loaded = chihaya_test::load<chihaya_cache_vtable>(env("CHIHAYA_PLUGIN"), env("CHIHAYA_DRIVER"),
                                                                CHIHAYA_KIND_CACHE, "cache", overrides);
        if (!error.empty()) loaded.error = error;
        return loaded;
    }();
    return d;
}

bool cluster() { return env("CHIHAYA_TEST_REDIS_CLUSTER") == "1"; }

// ---- the store, read directly ---------------------------------------------------------------

struct Node {
    std::unique_ptr<redisContext, void (*)(redisContext*)> c{nullptr, redisFree};
    std::string name;
};

std::vector<Node>& nodes() {
    static std::vector<Node> list = [] {
        std::vector<Node> out;
        std::string all = env("CHIHAYA_TEST_REDIS_NODES");
        size_t start = 0;
        while (start < all.size()) {
            size_t end = all.find(',', start);
            if (end == std::string::npos) end = all.size();
            std::string hp = all.substr(start, end - start);
            start = end + 1;
            size_t colon = hp.rfind(':');
            Node n;
            n.name = hp;
            n.c.reset(redisConnect(hp.substr(0, colon).c_str(), std::stoi(hp.substr(colon + 1))));
            out.push_back(std::move(n));
        }
        return out;
    }();
    return list;
}

// One command on one node; the reply as an integer (status and string replies parsed).
long long node_int(Node& n, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) argv.push_back(a.c_str()), lens.push_back(a.size());
    auto* r = static_cast<redisReply*>(redisCommandArgv(n.c.get(), int(argv.size()), argv.data(), lens.data()));
    REQUIRE_MESSAGE(r != nullptr, n.name << ": no reply to " << args[0]);
    long long v = 0;
    if (r->type == REDIS_REPLY_INTEGER) v = r->integer;
    else if (r->type == REDIS_REPLY_STRING) v = std::atoll(r->str);
    freeReplyObject(r);
    return v;
}

long long info_field(Node& n, const char* section, const char* field) {
    auto* r = static_cast<redisReply*>(redisCommand(n.c.get(), "INFO %s", section));
    REQUIRE(r != nullptr);
    std::string text(r->str, r->len);
    freeReplyObject(r);
    size_t at = text.find(std::string("\n") + field + ":");
    REQUIRE(at != std::string::npos);
    return std::atoll(text.c_str() + at + std::strlen(field) + 2);
}

long long dbsize() {
    long long sum = 0;
    for (auto& n : nodes()) sum += node_int(n, {"DBSIZE"});
    return sum;
}
long long used_memory() {
    long long sum = 0;
    for (auto& n : nodes()) sum += info_field(n, "memory", "used_memory");
    return sum;
}
void flushall() {
    for (auto& n : nodes()) node_int(n, {"FLUSHALL"});
}
// The single node's ledger (scripts.hpp): swarms it counts and peers it counts.
long long ledger_swarms() {
    long long c = node_int(nodes()[0], {"ZCARD", "chihaya:{limits}"});
    return c > 0 ? c - 1 : 0;
}
long long ledger_peers() { return -node_int(nodes()[0], {"ZSCORE", "chihaya:{limits}", "#p"}); }

// ---- the driver, through the ABI ------------------------------------------------------------

struct Budget {
    uint32_t per_address = 0;
    uint64_t torrents = 0, peers = 0;
    bool no_new_swarm = false;
};

struct Peer {
    uint32_t addr = 1;  // 10.0.x.y
    uint16_t port = 6881;
    bool v6 = false;
};

// One announce in flight: everything the driver may touch lives here until done.
struct Call {
    chihaya_announce_request req{};
    chihaya_announce_result result{};
    uint8_t peers[50 * 18];
    std::mutex m;
    std::condition_variable cv;
    int calls = 0;
    chihaya_status status = CHIHAYA_INTERNAL;
    chihaya_completion completion{sizeof(chihaya_completion), 0, &Call::done, this};

    static void done(void* ctx, chihaya_status s) {
        auto* c = static_cast<Call*>(ctx);
        std::lock_guard lock(c->m);
        c->status = s;
        ++c->calls;
        c->cv.notify_all();
    }
    bool wait() {
        std::unique_lock lock(m);
        return cv.wait_for(lock, kTimeout, [&] { return calls > 0; });
    }
};

Hash hash_of(uint64_t n) {
    Hash h{};
    for (int i = 0; i < 8; ++i) h[i] = uint8_t(n >> (8 * i));
    h[19] = 0x5a;
    return h;
}

Hash random_hash(std::mt19937_64& rng) {
    Hash h;
    for (auto& b : h) b = uint8_t(rng());
    return h;
}

class Instance {
public:
    Instance() {
        flushall();
        Driver& d = driver();
        REQUIRE_MESSAGE(d.error.empty(), d.error);
        chihaya_config config{sizeof(chihaya_config), static_cast<uint32_t>(d.values.size()), d.values.data()};
        char error[256] = {};
        handle_ = d.vtable->create(&host_api, &config, error, sizeof error);
        REQUIRE_MESSAGE(handle_ != nullptr, "create failed: " << error);
    }
    ~Instance() {
        for (auto& c : calls_) c->wait();  // none may complete into freed memory
        driver().vtable->destroy(handle_);
    }

    // Starts an announce; the Call stays owned by the instance.
    Call& start(const Hash& hash, const Peer& p, const Budget& b, chihaya_event event = CHIHAYA_EVENT_NONE,
                uint32_t ttl_s = 300, bool seeder = false) {
        calls_.push_back(std::make_unique<Call>());
        Call& c = *calls_.back();
        c.req.struct_size = sizeof c.req;
        std::memcpy(c.req.info_hash, hash.data(), 20);
        std::memset(c.req.peer_id, 'p', 20);
        c.req.family = p.v6 ? CHIHAYA_IPV6 : CHIHAYA_IPV4;
        c.req.event = static_cast<uint8_t>(event);
        c.req.port = p.port;
        if (p.v6) {
            c.req.addr[0] = 0x20, c.req.addr[1] = 0x01, c.req.addr[2] = 0x0d, c.req.addr[3] = 0xb8;
            c.req.addr[14] = uint8_t(p.addr >> 8), c.req.addr[15] = uint8_t(p.addr);
        } else {
            c.req.addr[0] = 10, c.req.addr[2] = uint8_t(p.addr >> 8), c.req.addr[3] = uint8_t(p.addr);
        }
        c.req.left = seeder ? 0 : 1000;
        c.req.numwant = 50;
        c.req.peer_ttl_s = ttl_s;
        c.req.now_ms = chihaya_test::host_now_ms();
        c.req.max_peers_per_address = b.per_address;
        c.req.max_torrents = b.torrents;
        c.req.max_peers = b.peers;
        if (b.no_new_swarm) c.req.flags |= CHIHAYA_ANNOUNCE_NO_NEW_SWARM;
        c.result.struct_size = sizeof c.result;
        c.result.peers = c.peers;
        c.result.peers_capacity = 50;
        driver().vtable->announce(handle_, &c.req, &c.result, &c.completion);
        return c;
    }

    // One announce, waited for; its status.
    Call& announce(const Hash& hash, const Peer& p, const Budget& b, chihaya_event event = CHIHAYA_EVENT_NONE,
                   uint32_t ttl_s = 300, bool seeder = false) {
        Call& c = start(hash, p, b, event, ttl_s, seeder);
        REQUIRE_MESSAGE(c.wait(), "announce: no completion within " << kTimeout.count() << " s");
        return c;
    }

    chihaya_status status(const Hash& hash, const Peer& p, const Budget& b,
                          chihaya_event event = CHIHAYA_EVENT_NONE, uint32_t ttl_s = 300) {
        return announce(hash, p, b, event, ttl_s).status;
    }

    // Cluster: one full round of per-slot ledger totals, and time for its replies.
    void sum_slots() {
        for (int i = 0; i < 8; ++i) {
            driver().vtable->tick(handle_, chihaya_test::host_now_ms());
            std::this_thread::sleep_for(50ms);
        }
        std::this_thread::sleep_for(200ms);
    }

    void forget_calls() {
        for (auto& c : calls_) c->wait();
        calls_.clear();
    }

private:
    chihaya_instance* handle_ = nullptr;
    std::vector<std::unique_ptr<Call>> calls_;
};

}  // namespace

TEST_CASE("created_swarm says which announce made the swarm; NO_NEW_SWARM makes none") {
    Instance c;
    const Budget none{};
    Hash h = hash_of(1);
    Call& first = c.announce(h, {1, 6881}, none);
    REQUIRE(first.status == CHIHAYA_OK);
    CHECK(first.result.created_swarm == 1);
    Call& second = c.announce(h, {2, 6881}, none);
    REQUIRE(second.status == CHIHAYA_OK);
    CHECK(second.result.created_swarm == 0);
    CHECK(second.result.complete + second.result.incomplete == 2);

    // The address has used its new-swarm rate: an existing swarm still takes it, a new one not.
    const Budget spent{.no_new_swarm = true};
    CHECK(c.status(h, {3, 6881}, spent) == CHIHAYA_OK);
    const long long keys = dbsize();
    Call& refused = c.announce(hash_of(2), {3, 6881}, spent);
    CHECK(refused.status == CHIHAYA_ADDRESS_LIMIT);
    CHECK(refused.result.refused_by == CHIHAYA_BUDGET_NEW_SWARM);
    CHECK(refused.result.created_swarm == 0);
    CHECK(dbsize() == keys);
    // IPv6 the same.
    CHECK(c.status(hash_of(3), {3, 6881, true}, spent) == CHIHAYA_ADDRESS_LIMIT);
    CHECK(dbsize() == keys);
    // After a swarm's last peer stops, the hash is new again.
    for (uint32_t a = 1; a <= 3; ++a) REQUIRE(c.status(h, {a, 6881}, none, CHIHAYA_EVENT_STOPPED) == CHIHAYA_OK);
    CHECK(c.status(h, {4, 6881}, spent) == CHIHAYA_ADDRESS_LIMIT);
    CHECK(c.announce(h, {4, 6881}, none).result.created_swarm == 1);
}

TEST_CASE("a flood of new swarms from one address stops at max_torrents; existing swarms are served") {
    if (cluster()) return;  // the Cluster case below bounds the overshoot instead
    Instance c;
    const Budget budget{.torrents = 40};
    // Another address's swarms, made before the flood.
    std::vector<Hash> theirs;
    for (uint64_t i = 0; i < 5; ++i) {
        theirs.push_back(hash_of(1000 + i));
        Call& a = c.announce(theirs.back(), {500, 6881}, budget, CHIHAYA_EVENT_STARTED, 300, true);
        REQUIRE(a.status == CHIHAYA_OK);
    }
    // The flood: random info_hashes from 10.0.0.1, many in flight at once (so batched).
    std::mt19937_64 rng(11);
    std::vector<Hash> flood;
    std::vector<Call*> calls;
    for (int i = 0; i < 200; ++i) {
        flood.push_back(random_hash(rng));
        calls.push_back(&c.start(flood.back(), {1, 6881}, budget));
    }
    int created = 0, full = 0;
    for (Call* call : calls) {
        REQUIRE(call->wait());
        if (call->status == CHIHAYA_OK) created += call->result.created_swarm;
        else if (call->status == CHIHAYA_FULL && call->result.refused_by == CHIHAYA_BUDGET_MAX_TORRENTS) ++full;
        else FAIL("unexpected status " << call->status << ", refused_by " << int(call->result.refused_by));
    }
    CHECK(created == 35);
    CHECK(full == 165);
    CHECK(ledger_swarms() == 40);
    calls.clear();
    c.forget_calls();

    // At the bound, the keyspace and Redis' memory stop growing however long the flood goes on.
    const long long keys = dbsize(), memory = used_memory();
    for (int i = 0; i < 2000; ++i) calls.push_back(&c.start(random_hash(rng), {1, 6881}, budget));
    for (Call* call : calls) {
        REQUIRE(call->wait());
        CHECK(call->status == CHIHAYA_FULL);
    }
    calls.clear();
    c.forget_calls();
    CHECK(dbsize() == keys);
    // 2000 swarms more would be about 400 KB; allow for allocator noise only.
    CHECK(used_memory() - memory < 32 * 1024);

    // Another address: existing swarms answer correctly (new peers too), a new swarm is refused.
    for (const Hash& h : theirs) {
        Call& a = c.announce(h, {600, 6881}, budget);
        REQUIRE(a.status == CHIHAYA_OK);
        CHECK(a.result.complete == 1);
        CHECK(a.result.incomplete == 1);
        CHECK(a.result.peer_count == 1);
        CHECK(a.result.created_swarm == 0);
    }
    CHECK(c.status(hash_of(2000), {600, 6881}, budget) == CHIHAYA_FULL);

    // The flood's peers leave: their swarms go, and the budget is free again.
    for (const Hash& h : flood) c.announce(h, {1, 6881}, budget, CHIHAYA_EVENT_STOPPED);
    CHECK(ledger_swarms() == 5);
    CHECK(ledger_peers() == 10);
    Call& again = c.announce(hash_of(2000), {600, 6881}, budget);
    CHECK(again.status == CHIHAYA_OK);
    CHECK(again.result.created_swarm == 1);
}

TEST_CASE("a port flood into one swarm stops at max_peers_per_address; others still join") {
    Instance c;
    const Budget budget{.per_address = 8};
    Hash h = hash_of(7);
    int ok = 0, limited = 0;
    for (uint16_t port = 1; port <= 100; ++port) {
        Call& a = c.announce(h, {1, port}, budget);
        if (a.status == CHIHAYA_OK) ++ok;
        else if (a.status == CHIHAYA_ADDRESS_LIMIT && a.result.refused_by == CHIHAYA_BUDGET_PEERS_PER_ADDRESS) ++limited;
        else FAIL("unexpected status " << a.status << ", refused_by " << int(a.result.refused_by));
    }
    CHECK(ok == 8);
    CHECK(limited == 92);
    // Its peers re-announce; another address and the same address over IPv6 join.
    CHECK(c.status(h, {1, 3}, budget) == CHIHAYA_OK);
    Call& other = c.announce(h, {2, 6881}, budget);
    REQUIRE(other.status == CHIHAYA_OK);
    CHECK(other.result.incomplete == 9);
    CHECK(c.status(h, {1, 6881, true}, budget) == CHIHAYA_OK);
    // The address's share in another swarm is its own.
    CHECK(c.status(hash_of(8), {1, 200}, budget) == CHIHAYA_OK);
    // One of its peers stops: exactly one more port gets in.
    CHECK(c.status(h, {1, 5}, budget, CHIHAYA_EVENT_STOPPED) == CHIHAYA_OK);
    CHECK(c.status(h, {1, 500}, budget) == CHIHAYA_OK);
    CHECK(c.status(h, {1, 501}, budget) == CHIHAYA_ADDRESS_LIMIT);
}

TEST_CASE("max_peers: a new peer is refused at the budget, known peers are served, stops give back") {
    if (cluster()) return;
    Instance c;
    const Budget budget{.peers = 20};
    for (uint32_t a = 1; a <= 20; ++a) REQUIRE(c.status(hash_of(a % 4), {a, 6881}, budget) == CHIHAYA_OK);
    Call& full = c.announce(hash_of(0), {21, 6881}, budget);
    CHECK(full.status == CHIHAYA_FULL);
    CHECK(full.result.refused_by == CHIHAYA_BUDGET_MAX_PEERS);
    CHECK(c.status(hash_of(99), {21, 6881}, budget) == CHIHAYA_FULL);
    Call& known = c.announce(hash_of(1), {1, 6881}, budget, CHIHAYA_EVENT_NONE, 300, true);
    REQUIRE(known.status == CHIHAYA_OK);
    CHECK(known.result.complete + known.result.incomplete == 5);
    CHECK(ledger_peers() == 20);
    REQUIRE(c.status(hash_of(2), {2, 6881}, budget, CHIHAYA_EVENT_STOPPED) == CHIHAYA_OK);
    CHECK(ledger_peers() == 19);
    CHECK(c.status(hash_of(0), {21, 6881}, budget) == CHIHAYA_OK);
    CHECK(c.status(hash_of(0), {22, 6881}, budget) == CHIHAYA_FULL);
}

TEST_CASE("budgets come back when peers and swarms expire; the counts do not drift") {
    if (cluster()) return;
    Instance c;
    const Budget budget{.per_address = 2, .torrents = 6, .peers = 12};
    // Six swarms of two peers from short-lived clients (1 s), IPv4 and IPv6.
    for (uint64_t t = 0; t < 6; ++t)
        for (uint16_t port = 1; port <= 2; ++port)
            REQUIRE(c.status(hash_of(t), {uint32_t(t + 1), port, t % 2 == 1}, budget, CHIHAYA_EVENT_NONE, 1) ==
                    CHIHAYA_OK);
    CHECK(ledger_swarms() == 6);
    CHECK(ledger_peers() == 12);
    CHECK(c.status(hash_of(50), {9, 6881}, budget) == CHIHAYA_FULL);
    CHECK(c.status(hash_of(0), {9, 6881}, budget) == CHIHAYA_FULL);
    CHECK(c.status(hash_of(0), {1, 3}, budget) == CHIHAYA_ADDRESS_LIMIT);  // its share first

    // Expired peers free their place in their swarm (trimmed by the next joiner), expired swarms
    // their place in the store (Redis dropped their keys; the ledger gives them back).
    std::this_thread::sleep_for(3100ms);  // TTL 1 s, and the ledger counts in whole seconds
    Call& rejoin = c.announce(hash_of(0), {1, 3}, budget);
    REQUIRE(rejoin.status == CHIHAYA_OK);
    CHECK(rejoin.result.incomplete == 1);
    CHECK(c.status(hash_of(0), {1, 4}, budget) == CHIHAYA_OK);  // the address's older two are gone
    for (uint64_t t = 100; t < 105; ++t) CHECK(c.status(hash_of(t), {20, 6881}, budget) == CHIHAYA_OK);
    CHECK(c.status(hash_of(200), {20, 6881}, budget) == CHIHAYA_FULL);
    CHECK(ledger_swarms() == 6);
    CHECK(ledger_peers() == 7);

    // Churn: many rounds of join, stop and expire; at the end the ledger holds what is there.
    for (int round = 0; round < 3; ++round) {
        for (uint64_t t = 300; t < 303; ++t) {
            REQUIRE(c.status(hash_of(0), {uint32_t(t), 1}, Budget{.peers = 1000}, CHIHAYA_EVENT_NONE, 1) == CHIHAYA_OK);
            REQUIRE(c.status(hash_of(t), {uint32_t(t), 1}, Budget{.torrents = 1000}, CHIHAYA_EVENT_NONE, 1) == CHIHAYA_OK);
            REQUIRE(c.status(hash_of(t), {uint32_t(t), 2}, Budget{.torrents = 1000}, CHIHAYA_EVENT_NONE, 1) ==
                    CHIHAYA_OK);
            REQUIRE(c.status(hash_of(t), {uint32_t(t), 2}, Budget{.torrents = 1000}, CHIHAYA_EVENT_STOPPED) ==
                    CHIHAYA_OK);
        }
        std::this_thread::sleep_for(1200ms);
    }
    // Swarm 0: its two long-lived peers and the last round's three (expired, not yet trimmed:
    // each round's first joiner trimmed the round before's); 100-104: one each; 300-302: one
    // each (made again every round, as Redis dropped them between rounds).
    CHECK(ledger_swarms() == 9);
    CHECK(ledger_peers() == 13);
    for (uint64_t t = 100; t < 105; ++t)
        REQUIRE(c.status(hash_of(t), {20, 6881}, budget, CHIHAYA_EVENT_STOPPED) == CHIHAYA_OK);
    REQUIRE(c.status(hash_of(0), {1, 3}, budget, CHIHAYA_EVENT_STOPPED) == CHIHAYA_OK);
    REQUIRE(c.status(hash_of(0), {1, 4}, budget, CHIHAYA_EVENT_STOPPED) == CHIHAYA_OK);
    // Everything left has expired: each swarm made now prunes up to two that Redis dropped.
    std::this_thread::sleep_for(3100ms);  // TTL 1 s, and the ledger counts in whole seconds
    REQUIRE(c.status(hash_of(400), {1, 1}, budget) == CHIHAYA_OK);
    REQUIRE(c.status(hash_of(401), {1, 1}, budget) == CHIHAYA_OK);
    CHECK(ledger_swarms() == 2);
    CHECK(ledger_peers() == 2);
    REQUIRE(c.status(hash_of(400), {1, 1}, budget, CHIHAYA_EVENT_STOPPED) == CHIHAYA_OK);
    REQUIRE(c.status(hash_of(401), {1, 1}, budget, CHIHAYA_EVENT_STOPPED) == CHIHAYA_OK);
    CHECK(ledger_swarms() == 0);
    CHECK(ledger_peers() == 0);
    // Redis reclaims expired keys in the background (10 Hz): the ledger alone remains.
    auto deadline = std::chrono::steady_clock::now() + 3s;
    while (dbsize() > 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(100ms);
    CHECK(dbsize() == 1);
}

TEST_CASE("Cluster: per-slot ledgers summed by the tick bound a flood at max_torrents plus one round") {
    if (!cluster()) return;
    Instance c;
    const Budget budget{.torrents = 40};
    std::mt19937_64 rng(12);
    int created = 0, full = 0;
    // Rounds of 10 new swarms between sums: each round's announces see the others as of the last
    // sum, so the store may overshoot by one round, never more.
    for (int round = 0; round < 20; ++round) {
        for (int i = 0; i < 10; ++i) {
            Call& a = c.announce(random_hash(rng), {1, 6881}, budget);
            if (a.status == CHIHAYA_OK) created += a.result.created_swarm;
            else if (a.status == CHIHAYA_FULL) ++full;
            else FAIL("unexpected status " << a.status << ": " << a.result.message);
        }
        c.sum_slots();
    }
    MESSAGE("created " << created << " swarms for a budget of 40");
    CHECK(created >= 40);
    CHECK(created <= 50);
    CHECK(full == 200 - created);
    const long long keys = dbsize();
    for (int i = 0; i < 100; ++i) CHECK(c.status(random_hash(rng), {1, 6881}, budget) == CHIHAYA_FULL);
    CHECK(dbsize() == keys);
}
