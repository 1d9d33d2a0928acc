// registry_sync.hpp: subscribe: the full load of users, torrents and clients, then the listener
// thread that follows chihaya_changes into the host's sink.
#pragma once

#include "connection.hpp"

#include <chihaya/driver.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace chihaya::postgres {

struct SyncOptions {
    ConnectionOptions connection;
    std::chrono::milliseconds poll_interval{1000};  // fallback when no notification arrives
    int64_t changes_retention_s = 86400;            // 0 = never prune chihaya_changes
    int64_t peers_retention_s = 172800;             // 0 = never prune chihaya_peers
};

// Threads and lifetime:
//   - subscribe() runs on the host's main thread: connects, LISTENs, loads everything into the
//     sink in one REPEATABLE READ snapshot, calls loaded(), then starts the listener thread.
//   - The listener thread owns the connection from then on and is the only caller of the sink,
//     so the sink is never called concurrently. It wakes on a notification or every
//     poll_interval, reads the change rows committed since its last snapshot, re-reads those rows
//     by id and puts or removes them. On any failure it drops the connection, reconnects with a
//     backoff of 100 ms doubling to 5 s, and catches up from the same snapshot; when the log was
//     pruned past that snapshot (or a table was truncated) it resets the sink and loads again.
//   - The destructor (main thread, at destroy) signals an eventfd that every wait of the thread
//     polls, including waits inside a query or a connect, and joins it: well under a second.
//   - health() (the host's admin thread, any time after subscribe) reads what the listener last
//     saw, under a mutex the listener holds only to record it: a read of the change log every
//     poll_interval keeps the answer current without traffic, a lost connection shows as soon as
//     the listener sees it, and a reconnect within its backoff (at most 5 s) clears it.
class RegistrySync {
public:
    RegistrySync(const chihaya::Host& host, SyncOptions options);
    ~RegistrySync();
    RegistrySync(const RegistrySync&) = delete;
    RegistrySync& operator=(const RegistrySync&) = delete;

    // Throws (PgError, std::logic_error) when the first load cannot be completed.
    void subscribe(const chihaya::RegistrySink& sink);

    // ABI 2.2 health: OK while the listener's last contact with PostgreSQL succeeded, else
    // UNAVAILABLE with the failure and how long it has been failing (never the conninfo: PgError
    // messages hold none).
    chihaya_status health(std::string& why) const;

private:
    void run() noexcept;
    void full_load();
    void reload_everything(const char* why);
    void load_cursor(const char* declare, const char* fetch, const char* table, bool users,
                     uint64_t& loaded);
    void deliver_clients(const PGresult* rows);
    void poll_changes();
    void refresh(std::vector<uint64_t>& ids, bool users);
    void housekeeping() noexcept;
    // Returns when a notification arrived, `timeout` passed or stop was signalled.
    void wait_for_changes(std::chrono::milliseconds timeout);
    bool sleep_unless_stopped(std::chrono::milliseconds duration);  // false when stopped
    void bad_row(const char* table, uint64_t id, const char* why);
    bool stopping() const noexcept { return stop_.load(std::memory_order_acquire); }
    void record_contact(bool ok, std::string_view failure = {});

    chihaya::Host host_;
    SyncOptions options_;
    int stop_fd_ = -1;  // eventfd: readable once destroy began
    std::atomic<bool> stop_{false};
    Connection conn_;
    std::optional<chihaya::RegistrySink> sink_;
    std::string snapshot_;  // pg_snapshot (text) in which the sink was last brought up to date
    std::map<uint64_t, std::string> clients_;  // the prefixes delivered, by id
    Clock::time_point next_housekeeping_{};
    LogLimiter housekeeping_log_{std::chrono::seconds(300)};
    uint64_t bad_rows_ = 0;  // in the current full load (the first few are logged one by one)
    bool loading_ = false;
    // What health() reports: written by the listener (or subscribe), read by the admin thread.
    mutable std::mutex health_mutex_;
    bool reachable_ = false;       // no answer before subscribe: the host does not ask then
    std::string lost_because_;     // the failure that ended the last contact
    Clock::time_point lost_at_{};
    std::thread thread_;
};

}  // namespace chihaya::postgres
