// registry_sync.cpp: the full load and the listener thread (see registry_sync.hpp).
#include "registry_sync.hpp"

#include "rows.hpp"
#include "sql.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>

namespace chihaya::postgres {

namespace {

constexpr uint64_t kProgressEvery = 250000;           // rows between progress lines of a load
constexpr uint64_t kBadRowsLoggedPerLoad = 20;        // then only the count at the end
constexpr size_t kIdsPerQuery = 5000;                 // ids per "WHERE id = ANY($1)"
constexpr std::chrono::milliseconds kBackoffFirst{100};
constexpr std::chrono::milliseconds kBackoffCap{5000};
constexpr std::chrono::seconds kHousekeepingEvery{60};
constexpr std::chrono::seconds kFirstHousekeeping{10};
constexpr int kPeerPruneSlices = 100;                 // 10,000 rows each, per housekeeping run

std::string id_array(const std::vector<uint64_t>& ids, size_t from, size_t to) {
    std::string s = "{";
    for (size_t i = from; i < to; ++i) {
        if (i > from) s.push_back(',');
        s += std::to_string(static_cast<int64_t>(ids[i]));
    }
    s.push_back('}');
    return s;
}

}  // namespace

RegistrySync::RegistrySync(const chihaya::Host& host, SyncOptions options)
    : host_(host),
      options_(std::move(options)),
      stop_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      conn_(options_.connection, stop_fd_) {
    if (stop_fd_ < 0) throw std::runtime_error(std::string("postgres: eventfd: ") + std::strerror(errno));
}

RegistrySync::~RegistrySync() {
    stop_.store(true, std::memory_order_release);
    uint64_t one = 1;
    if (::write(stop_fd_, &one, sizeof one) < 0) {
        // Cannot happen for an eventfd below its maximum; the flag alone still stops the loop
        // at its next wake-up (at most poll_interval).
    }
    if (thread_.joinable()) thread_.join();
    conn_.close();
    ::close(stop_fd_);
}

void RegistrySync::subscribe(const chihaya::RegistrySink& sink) {
    if (sink_) throw std::logic_error("postgres: subscribe called twice");
    sink_.emplace(sink);
    try {
        conn_.connect();
        // LISTEN before the load's snapshot: a change committed during the load wakes the
        // listener at once instead of at the next poll.
        conn_.exec(sql::kListen);
        full_load();
    } catch (...) {
        conn_.close();
        sink_.reset();
        throw;
    }
    next_housekeeping_ = Clock::now() + kFirstHousekeeping;
    record_contact(true);
    thread_ = std::thread([this] { run(); });
}

// ---- health (ABI 2.2) ------------------------------------------------------------------------

void RegistrySync::record_contact(bool ok, std::string_view failure) {
    std::lock_guard lock(health_mutex_);
    if (ok) {
        reachable_ = true;
        return;
    }
    if (reachable_ || lost_because_.empty()) lost_at_ = Clock::now();  // the first failure dates it
    reachable_ = false;
    lost_because_ = failure;
}

chihaya_status RegistrySync::health(std::string& why) const {
    std::lock_guard lock(health_mutex_);
    if (reachable_) return CHIHAYA_OK;
    if (lost_because_.empty()) {
        why = "not subscribed";
        return CHIHAYA_UNAVAILABLE;
    }
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - lost_at_).count();
    why = "change listener failing for " + std::to_string(seconds) + " s: " + lost_because_;
    return CHIHAYA_UNAVAILABLE;
}

// ---- the full load ---------------------------------------------------------------------------

void RegistrySync::full_load() {
    const auto started = Clock::now();
    bad_rows_ = 0;
    loading_ = true;
    uint64_t users = 0, torrents = 0;
    conn_.exec(sql::kBeginLoad);
    try {
        Result snapshot = conn_.exec(sql::kLoadSnapshot);
        std::string taken(text(snapshot.get(), 0, 0));
        load_cursor(sql::kDeclareUsers, sql::kFetchUsers, "users", true, users);
        load_cursor(sql::kDeclareTorrents, sql::kFetchTorrents, "torrents", false, torrents);
        Result clients = conn_.exec(sql::kSelectClients);
        deliver_clients(clients.get());
        conn_.exec(sql::kCommit);
        snapshot_ = std::move(taken);
    } catch (...) {
        loading_ = false;
        if (conn_.connected()) {
            try {
                conn_.exec(sql::kRollback);
            } catch (...) {
                conn_.close();
            }
        }
        throw;
    }
    loading_ = false;
    sink_->loaded();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    std::string line = "loaded " + std::to_string(users) + " users, " + std::to_string(torrents) +
                       " torrents, " + std::to_string(clients_.size()) + " client prefixes in " +
                       std::to_string(ms) + " ms";
    if (bad_rows_) line += " (" + std::to_string(bad_rows_) + " bad rows skipped)";
    host_.info(line);
}

void RegistrySync::reload_everything(const char* why) {
    host_.warning(std::string("reloading users, torrents and clients: ") + why);
    sink_->reset();
    clients_.clear();
    full_load();
}

void RegistrySync::load_cursor(const char* declare, const char* fetch, const char* table,
                               bool users, uint64_t& loaded) {
    conn_.exec(declare);
    uint64_t seen = 0, next_progress = kProgressEvery;
    for (;;) {
        Result r = conn_.exec(fetch);
        const int n = PQntuples(r.get());
        if (n == 0) break;
        for (int row = 0; row < n; ++row) {
            if (users) {
                chihaya_user user;
                if (const char* why = read_user(r.get(), row, user)) {
                    bad_row(table, user.id, why);
                    continue;
                }
                sink_->put_user(user);
            } else {
                chihaya_torrent torrent;
                if (const char* why = read_torrent(r.get(), row, torrent)) {
                    bad_row(table, torrent.id, why);
                    continue;
                }
                sink_->put_torrent(torrent);
            }
            ++loaded;
        }
        seen += static_cast<uint64_t>(n);
        if (seen >= next_progress) {
            host_.info(std::string("loading ") + table + ": " + std::to_string(seen) + " rows");
            next_progress += kProgressEvery;
        }
    }
}

// The whitelist is small, so every change of it re-reads the whole table and the sink gets the
// difference. That also settles duplicates: the prefix belongs to the lowest id, and when that
// row goes, the next one takes it over.
void RegistrySync::deliver_clients(const PGresult* rows) {
    std::map<uint64_t, std::string> wanted;
    std::set<std::string_view> prefixes;
    for (int row = 0, n = PQntuples(rows); row < n; ++row) {
        uint64_t id = 0;
        std::string_view prefix;
        if (const char* why = read_client(rows, row, id, prefix)) {
            bad_row("client_whitelist", id, why);
            continue;
        }
        if (!prefixes.insert(prefix).second) {
            bad_row("client_whitelist", id, "prefix duplicates one of a lower id");
            continue;
        }
        wanted.emplace(id, std::string(prefix));
    }
    for (auto it = clients_.begin(); it != clients_.end();) {
        if (wanted.count(it->first)) {
            ++it;
            continue;
        }
        sink_->remove_client(it->first);
        it = clients_.erase(it);
    }
    for (auto& [id, prefix] : wanted) {
        auto it = clients_.find(id);
        if (it != clients_.end() && it->second == prefix) continue;
        chihaya_client client{};
        client.struct_size = sizeof client;
        client.id = id;
        client.prefix = {prefix.data(), prefix.size()};
        sink_->put_client(client);
        clients_[id] = prefix;
    }
}

void RegistrySync::bad_row(const char* table, uint64_t id, const char* why) {
    // The reason never quotes the value: a passkey is a secret.
    if (loading_ && ++bad_rows_ > kBadRowsLoggedPerLoad) return;
    host_.warning(std::string(table) + " row id=" + std::to_string(static_cast<int64_t>(id)) +
                  " skipped: " + why);
}

// ---- following the change log ----------------------------------------------------------------

void RegistrySync::poll_changes() {
    Result r = conn_.exec(sql::kPollChanges, {snapshot_});
    const PGresult* rows = r.get();
    if (PQntuples(rows) == 0)
        throw PgError(CHIHAYA_INTERNAL, "postgres: chihaya_changes_horizon has no row: apply "
                                        "etc/postgres/schema.sql");
    if (text(rows, 0, 1) == "t") {
        reload_everything("chihaya_changes was pruned past what this tracker had read");
        return;
    }
    std::string next(text(rows, 0, 0));
    std::vector<uint64_t> users, torrents;
    bool clients = false;
    for (int row = 0, n = PQntuples(rows); row < n; ++row) {
        if (is_null(rows, row, 2)) continue;  // nothing changed: the LEFT JOIN's one empty row
        std::string_view kind = text(rows, row, 2);
        uint64_t id = static_cast<uint64_t>(std::stoll(std::string(text(rows, row, 3))));
        switch (kind.empty() ? '\0' : kind[0]) {
        case 'u': users.push_back(id); break;
        case 't': torrents.push_back(id); break;
        case 'c': clients = true; break;
        case 'r':
            reload_everything("a table was truncated");
            return;
        default: break;  // a kind of a later schema: not ours
        }
    }
    refresh(users, true);
    refresh(torrents, false);
    if (clients) {
        Result all = conn_.exec(sql::kSelectClients);
        deliver_clients(all.get());
    }
    // Only now: a failure above re-reads the same changes after the reconnect.
    snapshot_ = std::move(next);
}

// Re-reads rows by id: a row found is put (or removed when it is bad now: a revoked passkey must
// stop working), an id not found is removed.
void RegistrySync::refresh(std::vector<uint64_t>& ids, bool users) {
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (size_t from = 0; from < ids.size(); from += kIdsPerQuery) {
        const size_t to = std::min(ids.size(), from + kIdsPerQuery);
        Result r = conn_.exec(users ? sql::kUsersById : sql::kTorrentsById, {id_array(ids, from, to)});
        std::set<uint64_t> found;
        for (int row = 0, n = PQntuples(r.get()); row < n; ++row) {
            if (users) {
                chihaya_user user;
                const char* why = read_user(r.get(), row, user);
                found.insert(user.id);
                if (why) {
                    bad_row("users", user.id, why);
                    sink_->remove_user(user.id);
                } else {
                    sink_->put_user(user);
                }
            } else {
                chihaya_torrent torrent;
                const char* why = read_torrent(r.get(), row, torrent);
                found.insert(torrent.id);
                if (why) {
                    bad_row("torrents", torrent.id, why);
                    sink_->remove_torrent(torrent.id);
                } else {
                    sink_->put_torrent(torrent);
                }
            }
        }
        for (size_t i = from; i < to; ++i) {
            if (found.count(ids[i])) continue;
            if (users)
                sink_->remove_user(ids[i]);
            else
                sink_->remove_torrent(ids[i]);
        }
    }
}

void RegistrySync::housekeeping() noexcept {
    next_housekeeping_ = Clock::now() + kHousekeepingEvery;
    try {
        if (options_.changes_retention_s > 0)
            conn_.exec(sql::kPruneChanges, {std::to_string(options_.changes_retention_s)});
        if (options_.peers_retention_s > 0) {
            for (int slice = 0; slice < kPeerPruneSlices && !stopping(); ++slice) {
                Result r = conn_.exec(sql::kPrunePeers, {std::to_string(options_.peers_retention_s)});
                if (std::strtoull(PQcmdTuples(r.get()), nullptr, 10) < 10000) break;
            }
        }
    } catch (const std::exception& e) {
        // Pruning is retried at the next run; the change log is followed meanwhile (a lost
        // connection is noticed by the next poll).
        uint64_t suppressed = 0;
        if (!stopping() && housekeeping_log_.allow(suppressed))
            host_.warning(std::string("pruning failed: ") + e.what());
    }
}

void RegistrySync::wait_for_changes(std::chrono::milliseconds timeout) {
    // Notifications read along with the last query's reply are already buffered in libpq.
    if (conn_.drain_notifications() > 0) return;
    pollfd fds[2] = {{conn_.socket(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int n = ::poll(fds, 2, static_cast<int>(timeout.count()));
    if (n > 0 && fds[0].revents) conn_.drain_notifications();  // throws when the link is gone
}

bool RegistrySync::sleep_unless_stopped(std::chrono::milliseconds duration) {
    pollfd fd{stop_fd_, POLLIN, 0};
    ::poll(&fd, 1, static_cast<int>(duration.count()));
    return !stopping();
}

void RegistrySync::run() noexcept {
    auto backoff = kBackoffFirst;
    bool lost = false;
    LogLimiter failures(std::chrono::seconds(30));
    while (!stopping()) {
        try {
            if (!conn_.connected()) {
                conn_.connect();
                conn_.exec(sql::kListen);
            }
            poll_changes();  // after a reconnect: everything committed meanwhile
            record_contact(true);
            if (lost) host_.info("change listener reconnected and caught up");
            lost = false;
            failures.reset();
            backoff = kBackoffFirst;
            if (Clock::now() >= next_housekeeping_) housekeeping();
            wait_for_changes(options_.poll_interval);
        } catch (const std::exception& e) {
            if (stopping()) break;
            conn_.close();
            record_contact(false, e.what());
            uint64_t suppressed = 0;
            if (failures.allow(suppressed)) {
                std::string line = std::string("change listener: ") + e.what() +
                                   "; reconnecting (backoff up to " +
                                   std::to_string(kBackoffCap.count()) + " ms)";
                if (suppressed) line += " [" + std::to_string(suppressed) + " similar failures]";
                host_.warning(line);
            }
            lost = true;
            if (!sleep_unless_stopped(backoff)) break;
            backoff = std::min(backoff * 2, std::chrono::milliseconds(kBackoffCap));
        }
    }
}

}  // namespace chihaya::postgres
