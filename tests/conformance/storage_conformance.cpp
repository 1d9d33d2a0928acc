// storage_conformance.cpp: the private-mode storage contract of abi.h (subscribe, apply) run
// against a PostgreSQL-backed storage driver through its vtable, on a real server.
//
// Usage (ctest does this through run_with_postgres.py, which starts the server):
//   CHIHAYA_PLUGIN=build/plugins/chihaya_postgres.so CHIHAYA_DRIVER=postgres
//   CHIHAYA_DRIVER_CONFIG='conninfo=host=... password=...' CHIHAYA_TEST_PG_ADMIN='host=/sock ...'
//   CHIHAYA_TEST_PG_PASSWORD=... CHIHAYA_TEST_PG_CONTROL=/path/control.sock ./storage_conformance
// The suite sets up rows with its own libpq connection (CHIHAYA_TEST_PG_ADMIN), stops and starts
// the server through the runner's control socket, and uses the driver through the ABI only.
// Tables follow etc/postgres/schema.sql. Each test case starts from empty tables.
#include <doctest/doctest.h>

#include "driver_under_test.hpp"

#include <chihaya/abi.h>

#include <libpq-fe.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Driver = chihaya_test::Driver<chihaya_storage_vtable>;
using chihaya_test::env;
using chihaya_test::host_api;

// abi.h: "keeps it current within about a second of a change"; the brief allows 2 s.
constexpr auto kChangeDeadline = 2s;
constexpr auto kApplyTimeout = 15s;

Driver& driver() {
    static Driver d = [] {
        std::string error;
        auto overrides = chihaya_test::overrides_from_env(error);
        Driver loaded = chihaya_test::load<chihaya_storage_vtable>(env("CHIHAYA_PLUGIN"), env("CHIHAYA_DRIVER"),
                                                                  CHIHAYA_KIND_STORAGE, "storage", overrides);
        if (!error.empty()) loaded.error = error;
        return loaded;
    }();
    return d;
}

// ---- the test's own SQL, and the server's on/off switch --------------------------------------

// Runs `query` on a fresh admin connection; returns the first column of the first row ("" when
// there is none). A failure fails the test case.
std::string sql(const std::string& query) {
    PGconn* conn = PQconnectdb(env("CHIHAYA_TEST_PG_ADMIN").c_str());
    REQUIRE_MESSAGE(PQstatus(conn) == CONNECTION_OK, "admin connect: " << PQerrorMessage(conn));
    PGresult* r = PQexec(conn, query.c_str());
    ExecStatusType status = PQresultStatus(r);
    std::string error = PQresultErrorMessage(r);
    std::string value = (status == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
                            ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    PQfinish(conn);
    REQUIRE_MESSAGE((status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK), query << ": " << error);
    return value;
}
int64_t sql_int(const std::string& query) { return std::stoll(sql(query)); }

void empty_tables() {
    sql("TRUNCATE users, torrents, client_whitelist, snatches, chihaya_peers, chihaya_batches, "
        "chihaya_changes; UPDATE chihaya_changes_horizon SET pruned_max_txid = '0'");
}

// "stop" / "start" through run_with_postgres.py's control socket.
void server(const std::string& command) {
    std::string path = env("CHIHAYA_TEST_PG_CONTROL");
    REQUIRE_MESSAGE(!path.empty(), "CHIHAYA_TEST_PG_CONTROL is not set (run through run_with_postgres.py)");
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    std::string line = command + "\n";
    REQUIRE(::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
    std::string reply;
    char c;
    while (::read(fd, &c, 1) == 1 && c != '\n') reply.push_back(c);
    ::close(fd);
    REQUIRE_MESSAGE(reply == "ok", "server " << command << ": " << reply);
}

std::string hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 15]);
    }
    return out;
}
// A 20-byte info_hash per torrent id, and its bytea literal.
std::string info_hash(uint64_t id, size_t size = 20) {
    std::string h(size, '\0');
    for (size_t i = 0; i < size; ++i) h[i] = static_cast<char>((id * 31 + i * 7) & 0xff);
    return h;
}
std::string bytea(const std::string& bytes) { return "'\\x" + hex(bytes) + "'::bytea"; }

// ---- the host's registry, as the driver fills it ---------------------------------------------

struct User {
    uint32_t flags;
    std::string passkey;
    uint32_t up, down, slots;
    bool operator==(const User&) const = default;
};
struct Torrent {
    uint32_t flags;
    std::string info_hash;
    uint32_t up, down;
    bool operator==(const Torrent&) const = default;
};

// Records every sink call; flags any two calls that overlap (abi.h: never concurrently).
class Registry {
public:
    Registry() {
        sink_ = {sizeof(chihaya_registry_sink), 0, this, &put_user, &remove_user, &put_torrent,
                 &remove_torrent, &put_client, &remove_client, &reset, &loaded};
    }
    const chihaya_registry_sink* sink() const { return &sink_; }

    // True when `pred` (called under the lock) holds within `timeout`.
    bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = kChangeDeadline) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, timeout, pred);
    }
    template <class F>
    auto with(F&& f) {
        std::lock_guard lock(mutex_);
        return f();
    }

    std::map<uint64_t, User> users;
    std::map<uint64_t, Torrent> torrents;
    std::map<uint64_t, std::string> clients;
    int resets = 0, loads = 0;
    bool overlapped = false;
    std::set<std::thread::id> threads;

private:
    struct Call {
        explicit Call(Registry* r) : r(r) {
            if (r->in_call_.fetch_add(1) != 0) r->overlapped = true;
            r->mutex_.lock();
            r->threads.insert(std::this_thread::get_id());
        }
        ~Call() {
            r->mutex_.unlock();
            r->cv_.notify_all();
            r->in_call_.fetch_sub(1);
        }
        Registry* r;
    };
    static Registry* self(void* ctx) { return static_cast<Registry*>(ctx); }
    static void put_user(void* ctx, const chihaya_user* u) {
        Call c(self(ctx));
        self(ctx)->users[u->id] = {u->flags, std::string(u->passkey.ptr, u->passkey.len),
                                   u->upload_multiplier, u->download_multiplier, u->leech_slots};
    }
    static void remove_user(void* ctx, uint64_t id) {
        Call c(self(ctx));
        self(ctx)->users.erase(id);
    }
    static void put_torrent(void* ctx, const chihaya_torrent* t) {
        Call c(self(ctx));
        self(ctx)->torrents[t->id] = {t->flags, std::string(reinterpret_cast<const char*>(t->info_hash), 20),
                                      t->upload_multiplier, t->download_multiplier};
    }
    static void remove_torrent(void* ctx, uint64_t id) {
        Call c(self(ctx));
        self(ctx)->torrents.erase(id);
    }
    static void put_client(void* ctx, const chihaya_client* cl) {
        Call c(self(ctx));
        self(ctx)->clients[cl->id] = std::string(cl->prefix.ptr, cl->prefix.len);
    }
    static void remove_client(void* ctx, uint64_t id) {
        Call c(self(ctx));
        self(ctx)->clients.erase(id);
    }
    static void reset(void* ctx) {
        Call c(self(ctx));
        auto* r = self(ctx);
        r->users.clear();
        r->torrents.clear();
        r->clients.clear();
        ++r->resets;
    }
    static void loaded(void* ctx) {
        Call c(self(ctx));
        ++self(ctx)->loads;
    }

    chihaya_registry_sink sink_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::atomic<int> in_call_{0};
};

// ---- one driver instance ---------------------------------------------------------------------

class Storage {
public:
    // `overrides`: key=value on top of the suite's config (e.g. a conninfo to a closed port).
    explicit Storage(const std::map<std::string, std::string>& overrides = {}) {
        Driver& d = driver();
        REQUIRE_MESSAGE(d.error.empty(), d.error);
        values_ = d.values;
        for (auto& v : values_) {
            auto it = overrides.find(v.key);
            if (it == overrides.end()) continue;
            strings_.push_back(std::make_unique<std::string>(it->second));
            if (v.type == CHIHAYA_CONFIG_STRING)
                v.string = {strings_.back()->data(), strings_.back()->size()};
            else
                v.integer = std::stoll(it->second);
        }
        chihaya_config config{sizeof(chihaya_config), static_cast<uint32_t>(values_.size()), values_.data()};
        char error[256] = {};
        handle_ = d.vtable->create(&host_api, &config, error, sizeof error);
        REQUIRE_MESSAGE(handle_ != nullptr, "create failed: " << error);
    }
    ~Storage() { destroy(); }
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;

    // Destroys now; returns how long it took.
    std::chrono::milliseconds destroy() {
        auto start = Clock::now();
        if (handle_) driver().vtable->destroy(handle_);
        handle_ = nullptr;
        return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    }

    chihaya_status subscribe(Registry& registry, std::string* error_out = nullptr) {
        char error[256] = {};
        chihaya_status s = driver().vtable->subscribe(handle_, registry.sink(), error, sizeof error);
        if (error_out) *error_out = error;
        return s;
    }

    struct Applied {
        bool completed = false;
        chihaya_status status = CHIHAYA_INTERNAL;
        std::string message;
        std::chrono::milliseconds took{};
    };
    Applied apply(const std::string& host_id, uint64_t sequence,
                  const std::vector<chihaya_peer_delta>& deltas,
                  const std::vector<chihaya_torrent_stats>& torrents = {}) {
        struct Waiter {
            std::mutex m;
            std::condition_variable cv;
            int calls = 0;
            chihaya_status status = CHIHAYA_INTERNAL;
            static void done(void* ctx, chihaya_status s) {
                auto* w = static_cast<Waiter*>(ctx);
                std::lock_guard lock(w->m);
                ++w->calls;
                w->status = s;
                w->cv.notify_all();
            }
        };
        auto waiter = std::make_shared<Waiter>();
        auto batch = std::make_shared<chihaya_delta_batch>();
        auto keep_deltas = std::make_shared<std::vector<chihaya_peer_delta>>(deltas);
        auto keep_torrents = std::make_shared<std::vector<chihaya_torrent_stats>>(torrents);
        auto keep_host = std::make_shared<std::string>(host_id);
        batch->struct_size = sizeof *batch;
        batch->delta_count = static_cast<uint32_t>(keep_deltas->size());
        batch->host_id = {keep_host->data(), keep_host->size()};
        batch->sequence = sequence;
        batch->deltas = keep_deltas->data();
        batch->torrent_count = static_cast<uint32_t>(keep_torrents->size());
        batch->torrents = keep_torrents->data();
        chihaya_completion completion{sizeof completion, 0, &Waiter::done, waiter.get()};
        Applied a;
        auto start = Clock::now();
        driver().vtable->apply(handle_, batch.get(), &completion);
        std::unique_lock lock(waiter->m);
        a.completed = waiter->cv.wait_for(lock, kApplyTimeout, [&] { return waiter->calls > 0; });
        a.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
        if (!a.completed) {  // the driver may still write into them later: keep them alive
            new auto(waiter);
            new auto(batch);
            new auto(keep_deltas);
            new auto(keep_torrents);
            new auto(keep_host);
            return a;
        }
        CHECK(waiter->calls == 1);
        a.status = waiter->status;
        a.message = batch->message;
        return a;
    }

private:
    chihaya_instance* handle_ = nullptr;
    std::vector<chihaya_config_value> values_;
    std::vector<std::unique_ptr<std::string>> strings_;
};

void check_ok(const Storage::Applied& a) {
    REQUIRE(a.completed);
    REQUIRE_MESSAGE(a.status == CHIHAYA_OK, a.message);
}

chihaya_peer_delta delta(uint64_t user, uint64_t torrent, char peer) {
    chihaya_peer_delta d{};
    d.struct_size = sizeof d;
    d.user_id = user;
    d.torrent_id = torrent;
    std::memset(d.peer_id, peer, sizeof d.peer_id);
    d.upload_multiplier = d.download_multiplier = CHIHAYA_MULTIPLIER_ONE;
    d.left = 1000;
    d.unix_ms = 1700000000000;
    return d;
}

std::string peer_key(uint64_t user, uint64_t torrent, char peer) {
    return "user_id = " + std::to_string(user) + " AND torrent_id = " + std::to_string(torrent) +
           " AND peer_id = " + bytea(std::string(20, peer));
}

int64_t uploaded(uint64_t user) { return sql_int("SELECT uploaded FROM users WHERE id = " + std::to_string(user)); }
int64_t downloaded(uint64_t user) { return sql_int("SELECT downloaded FROM users WHERE id = " + std::to_string(user)); }

// No log line may carry a secret.
void check_no_secret_logged(const std::vector<std::string>& secrets) {
    for (const auto& line : chihaya_test::logged())
        for (const auto& secret : secrets)
            if (!secret.empty()) CHECK_MESSAGE(line.find(secret) == std::string::npos, "secret in log: " << line);
}

}  // namespace

// ---- the driver's declaration ----------------------------------------------------------------

TEST_CASE("the plugin declares a storage driver with subscribe and apply, conninfo secret") {
    Driver& d = driver();
    REQUIRE_MESSAGE(d.error.empty(), d.error);
    REQUIRE(d.vtable->struct_size >= offsetof(chihaya_storage_vtable, apply) + sizeof(void*));
    CHECK(reinterpret_cast<const void*>(d.vtable->subscribe) != nullptr);
    CHECK(reinterpret_cast<const void*>(d.vtable->apply) != nullptr);
    bool conninfo = false;
    for (uint32_t i = 0; i < d.descriptor->config_key_count; ++i) {
        const chihaya_config_key& k = *CHIHAYA_AT(const chihaya_config_key, d.descriptor->config_keys, i);
        CHECK(k.doc != nullptr);
        if (std::string(k.key) == "conninfo") {
            conninfo = true;
            CHECK((k.flags & CHIHAYA_CONFIG_SECRET) != 0);
        }
    }
    CHECK(conninfo);
}

// ---- subscribe: the full load ----------------------------------------------------------------

TEST_CASE("subscribe delivers exactly the users, torrents and clients, with their fields") {
    empty_tables();
    sql("INSERT INTO users (id, passkey, enabled, upload_multiplier, download_multiplier, leech_slots) VALUES"
        " (1, 'pk_one-1', true, 1000, 1000, 0),"
        " (2, 'PK2', false, 2000, 500, 3),"
        " (3, 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-', true, 250000, -5, 7)");
    sql("INSERT INTO torrents (id, info_hash, enabled, upload_multiplier, download_multiplier) VALUES"
        " (10, " + bytea(info_hash(10)) + ", true, 1000, 0),"
        " (11, " + bytea(info_hash(11)) + ", false, 1500, 1000)");
    sql("INSERT INTO client_whitelist (id, prefix) VALUES (100, '-qB4'), (101, '-lt20')");

    Registry reg;
    Storage storage;
    std::string error;
    REQUIRE_MESSAGE(storage.subscribe(reg, &error) == CHIHAYA_OK, error);
    reg.with([&] {
        CHECK(reg.loads == 1);
        CHECK(reg.resets == 0);
        CHECK(reg.threads == std::set<std::thread::id>{std::this_thread::get_id()});
        CHECK(reg.users == std::map<uint64_t, User>{
                               {1, {CHIHAYA_ENABLED, "pk_one-1", 1000, 1000, 0}},
                               {2, {0, "PK2", 2000, 500, 3}},
                               {3, {CHIHAYA_ENABLED,
                                    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
                                    100000, 0, 7}},  // multipliers clamped to [0, 100000]
                           });
        CHECK(reg.torrents == std::map<uint64_t, Torrent>{
                                  {10, {CHIHAYA_ENABLED, info_hash(10), 1000, 0}},
                                  {11, {0, info_hash(11), 1500, 1000}},
                              });
        CHECK(reg.clients == std::map<uint64_t, std::string>{{100, "-qB4"}, {101, "-lt20"}});
        return 0;
    });
    CHECK(storage.destroy() < 1000ms);
}

TEST_CASE("bad rows are skipped with their id in a warning, the others load") {
    empty_tables();
    const std::string long_passkey(65, 'a');
    sql("INSERT INTO users (id, passkey) VALUES (1, 'good1'), (2, NULL), (3, ''), (4, '" + long_passkey +
        "'), (5, 'has space!'), (6, 'good6')");
    sql("INSERT INTO torrents (id, info_hash) VALUES (10, " + bytea(info_hash(10)) + "), (11, " +
        bytea(info_hash(11, 19)) + "), (12, " + bytea(info_hash(12, 21)) + "), (13, NULL)");
    sql("INSERT INTO client_whitelist (id, prefix) VALUES (100, '-qB4'), (101, '-qB4'), (102, ''),"
        " (103, '" + std::string(21, 'x') + "'), (104, '-TR3')");
    size_t log_before = chihaya_test::logged().size();

    Registry reg;
    Storage storage;
    std::string error;
    REQUIRE_MESSAGE(storage.subscribe(reg, &error) == CHIHAYA_OK, error);
    reg.with([&] {
        CHECK(reg.loads == 1);
        std::set<uint64_t> users, torrents;
        for (auto& [id, u] : reg.users) users.insert(id);
        for (auto& [id, t] : reg.torrents) torrents.insert(id);
        CHECK(users == std::set<uint64_t>{1, 6});
        CHECK(torrents == std::set<uint64_t>{10});
        CHECK(reg.clients == std::map<uint64_t, std::string>{{100, "-qB4"}, {104, "-TR3"}});
        return 0;
    });
    auto lines = chihaya_test::logged();
    auto warned = [&](const std::string& table, int id) {
        std::string needle = table + " row id=" + std::to_string(id) + " ";
        for (size_t i = log_before; i < lines.size(); ++i)
            if (lines[i].rfind("[warning]", 0) == 0 && lines[i].find(needle) != std::string::npos) return true;
        return false;
    };
    for (int id : {2, 3, 4, 5}) CHECK_MESSAGE(warned("users", id), "no warning for user " << id);
    for (int id : {11, 12, 13}) CHECK_MESSAGE(warned("torrents", id), "no warning for torrent " << id);
    for (int id : {101, 102, 103}) CHECK_MESSAGE(warned("client_whitelist", id), "no warning for client " << id);
    check_no_secret_logged({long_passkey, "has space!", "good1", "good6", env("CHIHAYA_TEST_PG_PASSWORD")});
}

// ---- subscribe: changes ----------------------------------------------------------------------

TEST_CASE("a change in the database reaches the sink within 2 s") {
    empty_tables();
    sql("INSERT INTO users (id, passkey) VALUES (1, 'alice'), (2, 'bob')");
    sql("INSERT INTO torrents (id, info_hash) VALUES (10, " + bytea(info_hash(10)) + "), (11, " +
        bytea(info_hash(11)) + ")");
    sql("INSERT INTO client_whitelist (id, prefix) VALUES (100, '-qB4')");
    Registry reg;
    Storage storage;
    REQUIRE(storage.subscribe(reg) == CHIHAYA_OK);

    SUBCASE("a new user") {
        sql("INSERT INTO users (id, passkey, leech_slots) VALUES (3, 'carol', 2)");
        CHECK(reg.eventually([&] { return reg.users.count(3) && reg.users[3].slots == 2; }));
    }
    SUBCASE("a user disabled") {
        sql("UPDATE users SET enabled = false WHERE id = 1");
        CHECK(reg.eventually([&] { return reg.users[1].flags == 0; }));
    }
    SUBCASE("a passkey changed") {
        sql("UPDATE users SET passkey = 'alice2' WHERE id = 1");
        CHECK(reg.eventually([&] { return reg.users[1].passkey == "alice2"; }));
    }
    SUBCASE("a passkey revoked: the user is removed") {
        sql("UPDATE users SET passkey = NULL WHERE id = 2");
        CHECK(reg.eventually([&] { return reg.users.count(2) == 0; }));
        CHECK(reg.with([&] { return reg.users.count(1) == 1; }));
    }
    SUBCASE("a user deleted") {
        sql("DELETE FROM users WHERE id = 2");
        CHECK(reg.eventually([&] { return reg.users.count(2) == 0; }));
    }
    SUBCASE("a torrent deleted") {
        sql("DELETE FROM torrents WHERE id = 11");
        CHECK(reg.eventually([&] { return reg.torrents.count(11) == 0; }));
        CHECK(reg.with([&] { return reg.torrents.count(10) == 1; }));
    }
    SUBCASE("freeleech set on a torrent") {
        sql("UPDATE torrents SET download_multiplier = 0 WHERE id = 10");
        CHECK(reg.eventually([&] { return reg.torrents[10].down == 0; }));
    }
    SUBCASE("a torrent's info_hash becomes invalid: removed") {
        sql("UPDATE torrents SET info_hash = " + bytea(info_hash(10, 19)) + " WHERE id = 10");
        CHECK(reg.eventually([&] { return reg.torrents.count(10) == 0; }));
    }
    SUBCASE("a prefix added, a duplicate skipped until the first one goes") {
        sql("INSERT INTO client_whitelist (id, prefix) VALUES (101, '-lt20'), (102, '-qB4')");
        CHECK(reg.eventually([&] { return reg.clients.count(101) == 1; }));
        CHECK(reg.with([&] { return reg.clients.count(102) == 0; }));
        sql("DELETE FROM client_whitelist WHERE id = 100");
        CHECK(reg.eventually([&] { return reg.clients.count(100) == 0 && reg.clients.count(102) == 1; }));
    }
    SUBCASE("a user's id changed: the old id goes, the new one comes") {
        sql("UPDATE users SET id = 20 WHERE id = 1");
        CHECK(reg.eventually([&] { return reg.users.count(1) == 0 && reg.users.count(20) == 1; }));
    }
    SUBCASE("many changes in one transaction, committed out of sequence order") {
        // Transaction A takes change seq n, B takes n+1 and commits first: a reader that only
        // asked for "seq > last" would skip A's change for ever.
        PGconn* a = PQconnectdb(env("CHIHAYA_TEST_PG_ADMIN").c_str());
        REQUIRE(PQstatus(a) == CONNECTION_OK);
        PQclear(PQexec(a, "BEGIN; UPDATE users SET leech_slots = 9 WHERE id = 1"));
        sql("UPDATE users SET leech_slots = 8 WHERE id = 2");
        CHECK(reg.eventually([&] { return reg.users[2].slots == 8; }));
        PQclear(PQexec(a, "COMMIT"));
        PQfinish(a);
        CHECK(reg.eventually([&] { return reg.users[1].slots == 9; }));
    }
    reg.with([&] {
        CHECK(reg.loads == 1);
        CHECK(reg.resets == 0);
        CHECK_FALSE(reg.overlapped);
        CHECK(reg.threads.size() <= 2);  // the subscribing thread, then the driver's one
        return 0;
    });
    CHECK(storage.destroy() < 1000ms);
}

TEST_CASE("the tracker's own writes (traffic, torrent stats) do not enter the change log") {
    empty_tables();
    sql("INSERT INTO users (id, passkey) VALUES (1, 'alice')");
    sql("INSERT INTO torrents (id, info_hash) VALUES (10, " + bytea(info_hash(10)) + ")");
    int64_t before = sql_int("SELECT count(*) FROM chihaya_changes");
    sql("UPDATE users SET uploaded = uploaded + 5, downloaded = downloaded + 7");
    sql("UPDATE torrents SET seeders = 3, leechers = 4, snatched = 5, stats_at = now()");
    CHECK(sql_int("SELECT count(*) FROM chihaya_changes") == before);
    sql("UPDATE users SET upload_multiplier = 2000");
    CHECK(sql_int("SELECT count(*) FROM chihaya_changes") == before + 1);
}

TEST_CASE("changes made while the listener's connection was killed still arrive") {
    empty_tables();
    sql("INSERT INTO users (id, passkey) VALUES (1, 'alice')");
    Registry reg;
    Storage storage;
    REQUIRE(storage.subscribe(reg) == CHIHAYA_OK);
    CHECK(sql_int("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                  "WHERE application_name = 'chihaya listener'") == 1);
    sql("INSERT INTO users (id, passkey) VALUES (2, 'bob')");
    sql("UPDATE users SET enabled = false WHERE id = 1");
    CHECK(reg.eventually([&] { return reg.users.count(2) == 1 && reg.users[1].flags == 0; }, 5000ms));
    // And it listens again: a later change is as quick as ever.
    CHECK(reg.eventually([&] {
        return sql_int("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'chihaya listener'") == 1;
    }, 5000ms));
    sql("DELETE FROM users WHERE id = 2");
    CHECK(reg.eventually([&] { return reg.users.count(2) == 0; }));
    CHECK(reg.with([&] { return reg.resets; }) == 0);  // caught up, no full reload needed
}

TEST_CASE("the listener survives a server restart and catches up") {
    empty_tables();
    sql("INSERT INTO users (id, passkey) VALUES (1, 'alice')");
    Registry reg;
    Storage storage;
    REQUIRE(storage.subscribe(reg) == CHIHAYA_OK);
    server("stop");
    server("start");
    sql("INSERT INTO users (id, passkey) VALUES (2, 'bob')");
    // Reconnect backoff is capped at 5 s.
    CHECK(reg.eventually([&] { return reg.users.count(2) == 1; }, 8000ms));
    CHECK(storage.destroy() < 1000ms);
}

TEST_CASE("a change log pruned past the listener's snapshot, or a truncate, reloads everything") {
    empty_tables();
    sql("INSERT INTO users (id, passkey) VALUES (1, 'alice')");
    sql("INSERT INTO client_whitelist (id, prefix) VALUES (100, '-qB4')");
    Registry reg;
    Storage storage;
    REQUIRE(storage.subscribe(reg) == CHIHAYA_OK);
    SUBCASE("pruned") {
        // The change and the pruning of its log row in one transaction: the listener can never
        // read that row, and must notice from the horizon that it missed something.
        // (Its changed_at is aged first: a transaction's now() is its start.)
        sql("BEGIN; INSERT INTO users (id, passkey) VALUES (2, 'bob');"
            " UPDATE chihaya_changes SET changed_at = now() - interval '1 hour'"
            "  WHERE txid = pg_current_xact_id();"
            " SELECT chihaya_prune_changes('1 minute'); COMMIT");
        CHECK(sql_int("SELECT count(*) FROM chihaya_changes WHERE kind = 'u' AND id = 2") == 0);
        CHECK(reg.eventually([&] { return reg.resets == 1 && reg.loads == 2; }));
        reg.with([&] {
            CHECK(reg.users.count(1) == 1);
            CHECK(reg.users.count(2) == 1);
            CHECK(reg.clients.count(100) == 1);
            return 0;
        });
    }
    SUBCASE("truncated") {
        sql("TRUNCATE client_whitelist");
        CHECK(reg.eventually([&] { return reg.resets == 1 && reg.loads == 2; }));
        reg.with([&] {
            CHECK(reg.clients.empty());
            CHECK(reg.users.count(1) == 1);
            return 0;
        });
    }
}

TEST_CASE("subscribe to an unreachable server fails with UNAVAILABLE, bounded, no secret in the message") {
    // Port 1: nothing listens there (connection refused at once).
    Registry reg;
    Storage storage(std::map<std::string, std::string>{
        {"conninfo", "host=127.0.0.1 port=1 dbname=x user=x password=topsecret-unreachable"},
        {"connect_timeout_ms", "1000"}});
    std::string error;
    auto start = Clock::now();
    CHECK(storage.subscribe(reg, &error) == CHIHAYA_UNAVAILABLE);
    CHECK(Clock::now() - start < 3000ms);
    CHECK(!error.empty());
    CHECK(error.find("topsecret-unreachable") == std::string::npos);
    check_no_secret_logged({"topsecret-unreachable"});
}

// ---- apply -----------------------------------------------------------------------------------

TEST_CASE("apply credits exactly") {
    empty_tables();
    sql("INSERT INTO users (id, passkey) VALUES (1, 'alice'), (2, 'bob')");
    Storage storage;

    SUBCASE("credit_* is added as is; the latest report is kept for the peer") {
        auto d = delta(1, 10, 'a');
        d.credit_uploaded = 1000;
        d.credit_downloaded = 500;
        d.uploaded = 4000;
        d.downloaded = 3000;
        d.left = 0;
        d.flags = CHIHAYA_DELTA_SEEDER;
        d.unix_ms = 1700000000123;
        check_ok(storage.apply("host-a", 1, {d}));
        CHECK(uploaded(1) == 1000);
        CHECK(downloaded(1) == 500);
        CHECK(uploaded(2) == 0);
        CHECK(sql("SELECT uploaded || '/' || downloaded || '/' || \"left\" || '/' || seeder || '/' || "
                  "(extract(epoch FROM updated_at) * 1000)::bigint FROM chihaya_peers WHERE " +
                  peer_key(1, 10, 'a')) == "4000/3000/0/true/1700000000123");
    }
    SUBCASE("anchored, with a stored report: anchor - stored, times the multiplier") {
        auto first = delta(1, 10, 'a');
        first.uploaded = 1000;
        first.downloaded = 400;
        check_ok(storage.apply("host-a", 1, {first}));
        auto d = delta(1, 10, 'a');
        d.flags = CHIHAYA_DELTA_ANCHORED;
        d.anchor_uploaded = 1500;   // +500, x2
        d.anchor_downloaded = 700;  // +300, x0.5
        d.upload_multiplier = 2000;
        d.download_multiplier = 500;
        d.credit_uploaded = 10;
        d.credit_downloaded = 20;
        d.uploaded = 1600;
        d.downloaded = 800;
        check_ok(storage.apply("host-a", 2, {d}));
        CHECK(uploaded(1) == 500 * 2 + 10);
        CHECK(downloaded(1) == 300 / 2 + 20);
        CHECK(sql("SELECT uploaded FROM chihaya_peers WHERE " + peer_key(1, 10, 'a')) == "1600");
    }
    SUBCASE("anchored, no stored report: the anchor credits nothing") {
        auto d = delta(1, 10, 'a');
        d.flags = CHIHAYA_DELTA_ANCHORED;
        d.anchor_uploaded = 5000;
        d.anchor_downloaded = 6000;
        d.credit_uploaded = 7;
        check_ok(storage.apply("host-a", 1, {d}));
        CHECK(uploaded(1) == 7);
        CHECK(downloaded(1) == 0);
    }
    SUBCASE("anchored below the stored report (a restarted client): its own value counts") {
        auto first = delta(1, 10, 'a');
        first.uploaded = 10000;
        first.downloaded = 10000;
        check_ok(storage.apply("host-a", 1, {first}));
        auto d = delta(1, 10, 'a');
        d.flags = CHIHAYA_DELTA_ANCHORED;
        d.anchor_uploaded = 333;
        d.anchor_downloaded = 300;
        d.upload_multiplier = 1500;  // 499.5: truncated
        d.download_multiplier = 0;   // freeleech
        check_ok(storage.apply("host-a", 2, {d}));
        CHECK(uploaded(1) == 499);
        CHECK(downloaded(1) == 0);
    }
    SUBCASE("sums per user across peers and torrents; a deleted user does not fail the batch") {
        std::vector<chihaya_peer_delta> ds;
        for (int i = 0; i < 5; ++i) {
            auto d = delta(1, 10 + i, char('a' + i));
            d.credit_uploaded = 100;
            d.credit_downloaded = 1;
            ds.push_back(d);
        }
        auto b = delta(2, 10, 'z');
        b.credit_uploaded = 42;
        ds.push_back(b);
        auto ghost = delta(999, 10, 'g');  // no such user
        ghost.credit_uploaded = 1;
        ds.push_back(ghost);
        check_ok(storage.apply("host-a", 1, ds));
        CHECK(uploaded(1) == 500);
        CHECK(downloaded(1) == 5);
        CHECK(uploaded(2) == 42);
        CHECK(sql_int("SELECT count(*) FROM chihaya_peers") == 7);
    }
}

TEST_CASE("apply: deltas in any order, reports out of order, totals capped") {
    empty_tables();
    sql("INSERT INTO users (id, passkey) VALUES (1, 'alice'), (2, 'bob'), (3, 'carol')");
    Storage storage;

    SUBCASE("a batch in hash order credits the same as one in key order") {
        // The driver stages deltas sorted by key; the result must not depend on the host's order.
        std::vector<chihaya_peer_delta> ds;
        for (uint64_t user : {3, 1, 2, 1, 3}) {
            auto d = delta(user, 20 - user, char('a' + ds.size()));
            d.credit_uploaded = 10 * user;
            d.credit_downloaded = user;
            d.flags = ds.size() < 2 ? CHIHAYA_DELTA_COMPLETED : 0;  // users 3 and 1
            ds.push_back(d);
        }
        check_ok(storage.apply("host-a", 1, ds));
        CHECK(uploaded(1) == 20);
        CHECK(downloaded(1) == 2);
        CHECK(uploaded(2) == 20);
        CHECK(uploaded(3) == 60);
        CHECK(sql_int("SELECT count(*) FROM chihaya_peers") == 5);
        CHECK(sql_int("SELECT count(*) FROM snatches") == 2);
    }
    SUBCASE("an older report (another host's late batch) neither replaces nor deletes a newer one") {
        auto newer = delta(1, 10, 'a');
        newer.uploaded = 5000;
        newer.unix_ms = 1700000060000;
        check_ok(storage.apply("host-b", 1, {newer}));
        auto older = delta(1, 10, 'a');
        older.uploaded = 4000;
        older.credit_uploaded = 7;  // its traffic still counts
        older.unix_ms = 1700000000000;
        check_ok(storage.apply("host-a", 1, {older}));
        CHECK(sql("SELECT uploaded FROM chihaya_peers WHERE " + peer_key(1, 10, 'a')) == "5000");
        auto late_stop = older;
        late_stop.flags = CHIHAYA_DELTA_STOPPED;
        late_stop.unix_ms = 1700000030000;
        check_ok(storage.apply("host-a", 2, {late_stop}));
        CHECK(sql_int("SELECT count(*) FROM chihaya_peers WHERE " + peer_key(1, 10, 'a')) == 1);
        CHECK(uploaded(1) == 14);
    }
    SUBCASE("totals stop at 2^63-1, even when one batch's credits add up past it") {
        sql("UPDATE users SET uploaded = 9223372036854775000 WHERE id = 1");
        auto a = delta(1, 10, 'a');
        a.credit_uploaded = 1000;
        auto b = delta(2, 10, 'b');
        b.credit_uploaded = UINT64_MAX;  // sent as 2^63-1
        auto c = delta(2, 11, 'c');
        c.credit_uploaded = UINT64_MAX;
        c.credit_downloaded = 5;
        check_ok(storage.apply("host-a", 1, {a, b, c}));
        CHECK(uploaded(1) == INT64_MAX);
        CHECK(uploaded(2) == INT64_MAX);
        CHECK(downloaded(2) == 5);

        // Capped with an anchored part too; a negative total (the web application's) adds up.
        auto stored = delta(3, 10, 'd');
        stored.uploaded = 100;
        check_ok(storage.apply("host-a", 2, {stored}));
        sql("UPDATE users SET uploaded = 9223372036854775000, downloaded = -50 WHERE id = 3");
        auto anchored = delta(3, 10, 'd');
        anchored.flags = CHIHAYA_DELTA_ANCHORED;
        anchored.anchor_uploaded = 2100;  // +2000 against the stored 100
        anchored.credit_uploaded = 1000;  // total + credit alone is past 2^63-1
        anchored.credit_downloaded = 20;
        check_ok(storage.apply("host-a", 3, {anchored}));
        CHECK(uploaded(3) == INT64_MAX);
        CHECK(downloaded(3) == -30);
        auto plain = delta(3, 11, 'e');
        plain.credit_downloaded = 10;
        check_ok(storage.apply("host-a", 4, {plain}));
        CHECK(downloaded(3) == -20);
    }
    SUBCASE("a report time past year 9999 is stored as 9999-12-31, not refused") {
        auto d = delta(1, 10, 'a');
        d.unix_ms = UINT64_MAX;
        d.flags = CHIHAYA_DELTA_COMPLETED;
        d.credit_uploaded = 3;
        check_ok(storage.apply("host-a", 1, {d}));
        CHECK(uploaded(1) == 3);
        CHECK(sql("SELECT to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') FROM "
                  "chihaya_peers WHERE " + peer_key(1, 10, 'a')) == "9999-12-31 23:59:59.999");
        CHECK(sql_int("SELECT count(*) FROM snatches WHERE user_id = 1") == 1);
    }
}

TEST_CASE("apply is at most once per (host_id, sequence)") {
    empty_tables();
    sql("INSERT INTO users (id, passkey) VALUES (1, 'alice')");
    Storage storage;
    auto d = delta(1, 10, 'a');
    d.credit_uploaded = 100;
    check_ok(storage.apply("host-a", 5, {d}));
    CHECK(uploaded(1) == 100);
    check_ok(storage.apply("host-a", 5, {d}));  // re-sent after a lost reply
    CHECK(uploaded(1) == 100);
    check_ok(storage.apply("host-a", 4, {d}));  // older
    CHECK(uploaded(1) == 100);
    check_ok(storage.apply("host-b", 1, {d}));  // another host has its own sequence
    CHECK(uploaded(1) == 200);
    check_ok(storage.apply("host-a", 6, {d}));
    CHECK(uploaded(1) == 300);
    CHECK(sql("SELECT sequence FROM chihaya_batches WHERE host_id = 'host-a'") == "6");
    CHECK(sql("SELECT applied_at IS NOT NULL FROM chihaya_batches WHERE host_id = 'host-a'") == "t");
}

TEST_CASE("apply records snatches once, forgets stopped peers, writes torrent stats") {
    empty_tables();
    sql("INSERT INTO users (id, passkey) VALUES (1, 'alice')");
    sql("INSERT INTO torrents (id, info_hash) VALUES (10, " + bytea(info_hash(10)) + "), (11, " +
        bytea(info_hash(11)) + ")");
    Storage storage;

    auto done = delta(1, 10, 'a');
    done.flags = CHIHAYA_DELTA_COMPLETED | CHIHAYA_DELTA_SEEDER;
    done.left = 0;
    check_ok(storage.apply("host-a", 1, {done}));
    check_ok(storage.apply("host-a", 2, {done}));  // a second completed (another batch)
    auto other_peer = delta(1, 10, 'b');
    other_peer.flags = CHIHAYA_DELTA_COMPLETED;
    check_ok(storage.apply("host-a", 3, {other_peer}));
    CHECK(sql_int("SELECT count(*) FROM snatches WHERE user_id = 1 AND torrent_id = 10") == 1);

    CHECK(sql_int("SELECT count(*) FROM chihaya_peers WHERE " + peer_key(1, 10, 'a')) == 1);
    auto stop = delta(1, 10, 'a');
    stop.flags = CHIHAYA_DELTA_STOPPED;
    stop.credit_uploaded = 9;  // a stopped peer's last traffic still counts
    check_ok(storage.apply("host-a", 4, {stop}));
    CHECK(sql_int("SELECT count(*) FROM chihaya_peers WHERE " + peer_key(1, 10, 'a')) == 0);
    CHECK(sql_int("SELECT count(*) FROM chihaya_peers WHERE " + peer_key(1, 10, 'b')) == 1);
    CHECK(uploaded(1) == 9);

    chihaya_torrent_stats s{};
    s.struct_size = sizeof s;
    s.torrent_id = 11;
    s.seeders = 3;
    s.leechers = 4;
    s.snatched = 5;
    chihaya_torrent_stats gone = s;
    gone.torrent_id = 12345;  // deleted meanwhile: ignored
    check_ok(storage.apply("host-a", 5, {}, {s, gone}));
    CHECK(sql("SELECT seeders || '/' || leechers || '/' || snatched || '/' || (stats_at IS NOT NULL) "
              "FROM torrents WHERE id = 11") == "3/4/5/true");
    CHECK(sql("SELECT seeders || '/' || (stats_at IS NULL) FROM torrents WHERE id = 10") == "0/true");
}

TEST_CASE("apply while the server is down completes UNAVAILABLE promptly, then succeeds") {
    empty_tables();
    sql("INSERT INTO users (id, passkey) VALUES (1, 'alice')");
    Storage storage(std::map<std::string, std::string>{{"connect_timeout_ms", "1000"}});
    auto d = delta(1, 10, 'a');
    d.credit_uploaded = 100;
    check_ok(storage.apply("host-a", 1, {d}));  // the connection exists when the server goes

    server("stop");
    auto down = storage.apply("host-a", 2, {d});
    REQUIRE(down.completed);
    CHECK(down.status == CHIHAYA_UNAVAILABLE);
    CHECK(down.took < 3000ms);
    CHECK(!down.message.empty());
    auto again = storage.apply("host-a", 2, {d});
    CHECK(again.status == CHIHAYA_UNAVAILABLE);
    CHECK(again.took < 3000ms);
    server("start");

    check_ok(storage.apply("host-a", 2, {d}));  // reconnects by itself
    CHECK(uploaded(1) == 200);
    check_ok(storage.apply("host-a", 2, {d}));
    CHECK(uploaded(1) == 200);
    check_no_secret_logged({env("CHIHAYA_TEST_PG_PASSWORD")});
}

TEST_CASE("apply of a stale connection after a restart reconnects without failing") {
    empty_tables();
    sql("INSERT INTO users (id, passkey) VALUES (1, 'alice')");
    Storage storage;
    auto d = delta(1, 10, 'a');
    d.credit_uploaded = 100;
    check_ok(storage.apply("host-a", 1, {d}));
    server("stop");
    server("start");
    check_ok(storage.apply("host-a", 2, {d}));
    CHECK(uploaded(1) == 200);
}

TEST_CASE("no log line of the whole run carries the password or a passkey used above") {
    check_no_secret_logged({env("CHIHAYA_TEST_PG_PASSWORD"), "alice2", "carol", "pk_one-1", "good1"});
}
