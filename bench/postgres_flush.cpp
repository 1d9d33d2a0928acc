// postgres_flush.cpp: how long the postgres storage driver's apply takes for one large batch,
// with a web-application-like reader querying users all the while. Loopback only.
//
// Run through bench/postgres_flush.py (it starts a throwaway PostgreSQL). Environment:
//   CHIHAYA_PLUGIN=build/plugins/chihaya_postgres.so CHIHAYA_DRIVER=postgres
//   CHIHAYA_DRIVER_CONFIG='conninfo=...'     the driver's connection (TCP, password)
//   CHIHAYA_BENCH_ADMIN='host=/sock ...'    the bench's own connection (fill, reader)
// Arguments: --users N (1,000,000) --deltas N[,N...] (100000,1000000) --torrents N (10,000)
//            --stored-peers N (1,000,000 rows already in chihaya_peers, untouched by the batches)
//            --reader-max N (queries, 1,000,000; 0 = no reader) --reader-max-s S (120)
//            --spread 1 (users spread over the whole table instead of 1..D)
//            --shuffle 1 (the batch in a random order, as the host's hash table hands it over)
//
// For each batch size D: users 1..D (or D users spread over the table) get one delta each
// (distinct users, distinct peers), applied twice as two batches: first as new peers
// (chihaya_peers inserts), then the same peers again (updates; half the deltas ANCHORED against
// the stored report). 10 % are COMPLETED, 5 % STOPPED (in the second batch). Prints one key=value line per batch; server_cpu_s is the CPU
// time of the driver's apply backend during the batch (from /proc, so only with the server on
// this machine): on a machine shared with other work it moves less than the wall time. wal_mb
// is the WAL the batch wrote (what a durable commit waits to flush).
#include "../sdk/conformance/driver_under_test.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

[[noreturn]] void die(const std::string& why) {
    std::fprintf(stderr, "postgres_flush: %s\n", why.c_str());
    std::exit(1);
}

void admin(const std::string& sql) {
    PGconn* c = PQconnectdb(chihaya_test::env("CHIHAYA_BENCH_ADMIN").c_str());
    if (PQstatus(c) != CONNECTION_OK) die(std::string("admin connect: ") + PQerrorMessage(c));
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        die(sql.substr(0, 60) + ": " + PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

// First column of the first row of `sql` on the bench's own connection ("" when no row).
std::string admin_value(const std::string& sql) {
    PGconn* c = PQconnectdb(chihaya_test::env("CHIHAYA_BENCH_ADMIN").c_str());
    if (PQstatus(c) != CONNECTION_OK) die(std::string("admin connect: ") + PQerrorMessage(c));
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) != PGRES_TUPLES_OK) die(sql.substr(0, 60) + ": " + PQresultErrorMessage(r));
    std::string value = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    PQfinish(c);
    return value;
}

// The driver's apply backend ("chihaya apply", plugin.cpp): its pid and CPU seconds so far
// (utime + stime of /proc/<pid>/stat), or pid 0 before its first connection.
struct BackendCpu {
    int pid = 0;
    double seconds = 0;
};
BackendCpu apply_backend_cpu() {
    BackendCpu b;
    std::string pid = admin_value("SELECT pid FROM pg_stat_activity WHERE application_name = 'chihaya apply'");
    if (pid.empty()) return b;
    b.pid = std::stoi(pid);
    std::ifstream stat("/proc/" + pid + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return b;
    // Fields after the command name, which is in parentheses and may hold spaces.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; rest >> field; ++i) {
        if (i == 14) utime = std::stoull(field);
        if (i == 15) { stime = std::stoull(field); break; }
    }
    b.seconds = double(utime + stime) / double(sysconf(_SC_CLK_TCK));
    return b;
}

// A web application's view of the table while batches land: point reads of random users.
struct Reader {
    std::atomic<bool> stop{false};
    uint64_t queries = 0;
    double max_ms = 0;
    uint64_t max_queries;
    double max_s;
    std::thread thread;

    Reader(uint64_t users, uint64_t max_queries_, double max_s_) : max_queries(max_queries_), max_s(max_s_) {
        thread = std::thread([this, users] {
            PGconn* c = PQconnectdb(chihaya_test::env("CHIHAYA_BENCH_ADMIN").c_str());
            if (PQstatus(c) != CONNECTION_OK) die("reader connect");
            std::mt19937_64 rng(7);
            auto start = Clock::now();
            while (!stop.load() && queries < max_queries && seconds_since(start) < max_s) {
                std::string id = std::to_string(rng() % users + 1);
                const char* values[] = {id.c_str()};
                auto t = Clock::now();
                PGresult* r = PQexecParams(c, "SELECT uploaded, downloaded FROM users WHERE id = $1",
                                           1, nullptr, values, nullptr, nullptr, 0);
                if (PQresultStatus(r) != PGRES_TUPLES_OK) die("reader query failed");
                PQclear(r);
                max_ms = std::max(max_ms, seconds_since(t) * 1000);
                ++queries;
            }
            PQfinish(c);
        });
    }
    void finish() {
        stop = true;
        thread.join();
    }
};

struct Storage {
    chihaya_instance* handle;
    const chihaya_storage_vtable* vt;
};

chihaya_status apply(Storage& s, uint64_t sequence, std::vector<chihaya_peer_delta>& deltas,
                     std::vector<chihaya_torrent_stats>& torrents, std::string& message) {
    struct Done {
        std::mutex m;
        std::condition_variable cv;
        bool done = false;
        chihaya_status status = CHIHAYA_INTERNAL;
    } done;
    chihaya_delta_batch batch{};
    batch.struct_size = sizeof batch;
    batch.delta_count = static_cast<uint32_t>(deltas.size());
    static const std::string host_id = "bench-host";
    batch.host_id = {host_id.data(), host_id.size()};
    batch.sequence = sequence;
    batch.deltas = deltas.data();
    batch.torrent_count = static_cast<uint32_t>(torrents.size());
    batch.torrents = torrents.data();
    chihaya_completion completion{sizeof completion, 0,
                                  [](void* ctx, chihaya_status st) {
                                      auto* d = static_cast<Done*>(ctx);
                                      std::lock_guard lock(d->m);
                                      d->done = true;
                                      d->status = st;
                                      d->cv.notify_all();
                                  },
                                  &done};
    s.vt->apply(s.handle, &batch, &completion);
    std::unique_lock lock(done.m);
    done.cv.wait(lock, [&] { return done.done; });
    message = batch.message;
    return done.status;
}

std::vector<uint64_t> parse_list(const char* text) {
    std::vector<uint64_t> out;
    std::string s(text);
    size_t start = 0;
    while (start < s.size()) {
        size_t end = s.find(',', start);
        if (end == std::string::npos) end = s.size();
        out.push_back(std::stoull(s.substr(start, end - start)));
        start = end + 1;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    uint64_t users = 1000000, torrents = 10000, reader_max = 1000000, stored_peers = 1000000;
    bool spread = false, shuffle = false;
    double reader_max_s = 120;
    std::vector<uint64_t> sizes = {100000, 1000000};
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--users") users = std::stoull(argv[i + 1]);
        else if (a == "--deltas") sizes = parse_list(argv[i + 1]);
        else if (a == "--torrents") torrents = std::stoull(argv[i + 1]);
        else if (a == "--stored-peers") stored_peers = std::stoull(argv[i + 1]);
        else if (a == "--reader-max") reader_max = std::stoull(argv[i + 1]);
        else if (a == "--reader-max-s") reader_max_s = std::stod(argv[i + 1]);
        else if (a == "--spread") spread = std::string(argv[i + 1]) != "0";
        else if (a == "--shuffle") shuffle = std::string(argv[i + 1]) != "0";
        else die("unknown argument " + a);
    }
    for (uint64_t n : sizes)
        if (n > users) die("--deltas larger than --users: deltas are of distinct users");

    std::string config_error;
    auto overrides = chihaya_test::overrides_from_env(config_error);
    auto d = chihaya_test::load<chihaya_storage_vtable>(chihaya_test::env("CHIHAYA_PLUGIN"),
                                                        chihaya_test::env("CHIHAYA_DRIVER"),
                                                        CHIHAYA_KIND_STORAGE, "storage", overrides);
    if (!config_error.empty()) d.error = config_error;
    if (!d.error.empty()) die(d.error);

    // The fill bypasses the change-log triggers (replica role): a web application importing a
    // million users at once would do the same, and it keeps the fill out of the measurement.
    auto fill = Clock::now();
    admin("TRUNCATE users, torrents, snatches, chihaya_peers, chihaya_batches, chihaya_changes");
    admin("SET session_replication_role = replica; "
          "INSERT INTO users (id, passkey) SELECT g, 'pk' || g FROM generate_series(1, " +
          std::to_string(users) + ") g; "
          "INSERT INTO torrents (id, info_hash) SELECT g, decode(lpad(to_hex(g), 40, '0'), 'hex') "
          "FROM generate_series(1, " + std::to_string(torrents) + ") g");
    // Peers the batch does not touch (torrent 0), so that chihaya_peers has the size of a busy
    // tracker's: the batch's anchored lookups and upserts go into a large index.
    admin("INSERT INTO chihaya_peers (user_id, torrent_id, peer_id, uploaded, downloaded, \"left\", "
          "seeder, updated_at) SELECT g, 0, decode(lpad(to_hex(g), 40, '0'), 'hex'), 1, 1, 0, true, now() "
          "FROM generate_series(1, " + std::to_string(stored_peers) + ") g");
    admin("VACUUM ANALYZE chihaya_peers");
    admin("VACUUM ANALYZE users");
    admin("VACUUM ANALYZE torrents");
    std::printf("fill users=%llu torrents=%llu stored_peers=%llu seconds=%.1f\n",
                (unsigned long long)users, (unsigned long long)torrents,
                (unsigned long long)stored_peers, seconds_since(fill));
    std::fflush(stdout);

    chihaya_config config{sizeof(chihaya_config), static_cast<uint32_t>(d.values.size()), d.values.data()};
    char error[256] = {};
    Storage storage{d.vtable->create(&chihaya_test::host_api, &config, error, sizeof error), d.vtable};
    if (!storage.handle) die(std::string("create: ") + error);

    // --spread: delta i goes to user (i * stride) % users + 1, a stride coprime to the user
    // count, so the users stay distinct but land on every page of the table.
    uint64_t stride = 1;
    if (spread)
        for (stride = 7919; std::gcd(stride, users) != 1; stride += 2) {}

    uint64_t sequence = 0;
    for (uint64_t n : sizes) {
        admin("DELETE FROM chihaya_peers WHERE torrent_id <> 0; TRUNCATE snatches");
        admin("VACUUM chihaya_peers");
        std::vector<chihaya_peer_delta> deltas(n);
        for (uint64_t i = 0; i < n; ++i) {
            chihaya_peer_delta& x = deltas[i];
            x = {};
            x.struct_size = sizeof x;
            x.user_id = (i * stride) % users + 1;
            x.torrent_id = i % torrents + 1;
            char peer_id[32];  // "-qB4650-" and 12 digits: 20 bytes, no NUL kept
            std::snprintf(peer_id, sizeof peer_id, "-qB4650-%012llu", (unsigned long long)(i % 1000000000000));
            std::memcpy(x.peer_id, peer_id, sizeof x.peer_id);
            x.upload_multiplier = x.download_multiplier = CHIHAYA_MULTIPLIER_ONE;
            x.credit_uploaded = 16384 * (i % 97);
            x.credit_downloaded = 16384 * (i % 89);
            x.uploaded = 1 << 20;
            x.downloaded = 1 << 21;
            x.left = i % 3 == 0 ? 0 : 1 << 22;
            x.flags = (x.left == 0 ? CHIHAYA_DELTA_SEEDER : 0) | (i % 10 == 0 ? CHIHAYA_DELTA_COMPLETED : 0);
            x.unix_ms = 1700000000000 + i;
        }
        if (shuffle) std::shuffle(deltas.begin(), deltas.end(), std::mt19937_64(42));
        std::vector<chihaya_torrent_stats> stats(torrents);
        for (uint64_t t = 0; t < torrents; ++t)
            stats[t] = {sizeof(chihaya_torrent_stats), uint32_t(t % 50), t + 1, uint32_t(t % 20), uint32_t(t % 7)};

        for (int round = 0; round < 2; ++round) {
            if (round == 1) {
                for (uint64_t i = 0; i < n; ++i) {
                    chihaya_peer_delta& x = deltas[i];
                    x.flags &= ~CHIHAYA_DELTA_COMPLETED;
                    if (i % 2 == 0) {
                        x.flags |= CHIHAYA_DELTA_ANCHORED;
                        x.anchor_uploaded = x.uploaded + 1000;
                        x.anchor_downloaded = x.downloaded + 1000;
                    }
                    if (i % 20 == 1) x.flags |= CHIHAYA_DELTA_STOPPED;
                    x.uploaded += 1 << 20;
                    x.unix_ms += 60000;
                }
            }
            BackendCpu cpu_before = apply_backend_cpu();
            std::string wal_before = admin_value("SELECT pg_current_wal_insert_lsn()");
            Reader reader(users, reader_max, reader_max_s);
            std::string message;
            auto t = Clock::now();
            chihaya_status st = apply(storage, ++sequence, deltas, stats, message);
            double took = seconds_since(t);
            reader.finish();
            if (st != CHIHAYA_OK) die("apply failed (" + std::to_string(st) + "): " + message);
            BackendCpu cpu_after = apply_backend_cpu();
            double server_cpu = cpu_after.seconds - (cpu_after.pid == cpu_before.pid ? cpu_before.seconds : 0);
            double wal_mb = std::stod(admin_value("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '" +
                                                  wal_before + "')")) / 1e6;
            std::printf("apply deltas=%llu batch=%s seconds=%.3f deltas_per_s=%.0f server_cpu_s=%.2f "
                        "wal_mb=%.0f reader_queries=%llu reader_max_ms=%.1f\n",
                        (unsigned long long)n, round == 0 ? "new_peers" : "same_peers_half_anchored",
                        took, n / took, server_cpu, wal_mb, (unsigned long long)reader.queries,
                        reader.max_ms);
            std::fflush(stdout);
        }
    }
    auto t = Clock::now();
    d.vtable->destroy(storage.handle);
    std::printf("destroy seconds=%.3f\n", seconds_since(t));
    return 0;
}
