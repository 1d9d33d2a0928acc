// SIGHUP reload: parse, compare, apply the live settings, keep and report the restart ones.
#include "reload/reloader.hpp"

#include "log/access_log.hpp"
#include "log/log.hpp"
#include "tracker/tracker.hpp"

#include <chrono>

namespace chihaya {
namespace {

bool same_tables(const DriverSelection& a, const DriverSelection& b) {
    if (a.driver != b.driver || a.tables.size() != b.tables.size()) return false;
    for (const auto& [name, keys] : a.tables) {
        auto other = b.tables.find(name);
        if (other == b.tables.end() || other->second.size() != keys.size()) return false;
        for (const auto& [key, value] : keys) {
            auto v = other->second.find(key);
            if (v == other->second.end() || v->second.type != value.type || v->second.string != value.string ||
                v->second.integer != value.integer)
                return false;
        }
    }
    return true;
}

std::string joined(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

}  // namespace

std::vector<std::string> Reloader::restart_changes(const Config& a, const Config& b) {
    std::vector<std::string> out;
    auto check = [&](bool differs, const char* key) { if (differs) out.push_back(key); };
    check(a.plugins_dir != b.plugins_dir, "plugins_dir");
    check(a.tracker.mode != b.tracker.mode, "tracker.mode");
    check(a.udp.enabled != b.udp.enabled, "udp.enabled");
    check(a.udp.listen != b.udp.listen, "udp.listen");
    check(a.udp.receive_buffer != b.udp.receive_buffer, "udp.receive_buffer");
    check(a.udp.connection_id_secret != b.udp.connection_id_secret, "udp.connection_id_secret");
    check(a.http.enabled != b.http.enabled, "http.enabled");
    check(a.http.listen != b.http.listen, "http.listen");
    check(a.workers.threads != b.workers.threads, "workers.threads");
    check(a.log.format != b.log.format, "log.format");
    check(a.admin.listen != b.admin.listen, "admin.listen");
    check(a.process.user != b.process.user, "process.user");
    check(a.process.group != b.process.group, "process.group");
    check(a.process.chroot != b.process.chroot, "process.chroot");
    check(!same_tables(a.cache, b.cache), "cache");
    check(!same_tables(a.storage, b.storage), "storage");
    check(a.accounting.flush_interval_ms != b.accounting.flush_interval_ms || a.accounting.max_batch != b.accounting.max_batch ||
              a.accounting.spool_dir != b.accounting.spool_dir,
          "storage accounting (flush_interval_ms, max_batch, spool_dir)");
    return out;
}

std::vector<std::string> Reloader::live_changes(const Config& a, const Config& b) {
    std::vector<std::string> out;
    auto check = [&](bool differs, const char* key) { if (differs) out.push_back(key); };
    const TrackerConfig &t = a.tracker, &u = b.tracker;
    check(t.announce_interval != u.announce_interval, "tracker.announce_interval");
    check(t.min_interval != u.min_interval, "tracker.min_interval");
    check(t.peer_lifetime != u.peer_lifetime, "tracker.peer_lifetime");
    check(t.default_numwant != u.default_numwant, "tracker.default_numwant");
    check(t.max_numwant != u.max_numwant, "tracker.max_numwant");
    check(t.max_scrape_torrents != u.max_scrape_torrents, "tracker.max_scrape_torrents");
    check(t.allow_full_scrape != u.allow_full_scrape, "tracker.allow_full_scrape");
    check(t.driver_timeout_ms != u.driver_timeout_ms, "tracker.driver_timeout_ms");
    const LimitsConfig &l = a.limits, &m = b.limits;
    check(l.max_torrents != m.max_torrents, "limits.max_torrents");
    check(l.max_peers != m.max_peers, "limits.max_peers");
    check(l.max_peers_per_address != m.max_peers_per_address, "limits.max_peers_per_address");
    check(l.new_torrents_per_address != m.new_torrents_per_address, "limits.new_torrents_per_address");
    check(a.udp.connect_rate != b.udp.connect_rate, "udp.connect_rate");
    check(a.udp.connect_burst != b.udp.connect_burst, "udp.connect_burst");
    const HttpConfig &h = a.http, &i = b.http;
    check(h.max_request_head != i.max_request_head, "http.max_request_head");
    check(h.idle_timeout != i.idle_timeout, "http.idle_timeout");
    check(h.request_timeout != i.request_timeout, "http.request_timeout");
    check(h.max_connections != i.max_connections, "http.max_connections");
    check(h.max_connections_per_address != i.max_connections_per_address, "http.max_connections_per_address");
    check(h.trusted_proxies != i.trusted_proxies, "http.trusted_proxies");
    check(h.real_ip_header != i.real_ip_header, "http.real_ip_header");
    check(h.allow_ip_param != i.allow_ip_param, "http.allow_ip_param");
    check(a.log.level != b.log.level, "log.level");
    check(a.log.access_log != b.log.access_log, "log.access_log");
    check(a.log.access_log_rate != b.log.access_log_rate, "log.access_log_rate");
    return out;
}

Reloader::Reloader(Config running, Tracker& tracker, std::function<void(const Config&)> apply_frontends,
                   metrics::ReloadCounters& counters)
    : running_(std::move(running)), tracker_(tracker), apply_frontends_(std::move(apply_frontends)),
      counters_(counters) {}

void Reloader::reload() noexcept try {
    if (running_.source.empty()) {
        log::warning("reload", "SIGHUP: running on built-in defaults, no config file to read again");
        return;
    }
    Config next;
    try {
        next = load_config(running_.source);
    } catch (const std::exception& e) {
        counters_.failed.fetch_add(1);
        log::error("reload", std::string("SIGHUP: ") + e.what() + "; the running configuration is kept");
        return;
    }
    const std::vector<std::string> restart = restart_changes(running_, next);
    const std::vector<std::string> live = live_changes(running_, next);
    for (const auto& key : restart)
        log::warning("reload", "SIGHUP: " + key + " changed in " + running_.source +
                                   " but needs a restart; the running value is kept");

    // Only the live settings move; everything else stays as it runs.
    tracker_.reconfigure(next.tracker, next.limits);
    apply_frontends_(next);
    bool ok = false;
    log::set_level(log::parse_level(next.log.level, &ok));
    access_log::configure(next.log.access_log, next.log.access_log_rate);
    const TrackerMode mode = running_.tracker.mode;
    running_.tracker = next.tracker;
    running_.tracker.mode = mode;
    running_.limits = next.limits;
    const auto listen = running_.http.listen;
    const bool http_enabled = running_.http.enabled;
    running_.http = next.http;
    running_.http.listen = listen;
    running_.http.enabled = http_enabled;
    running_.udp.connect_rate = next.udp.connect_rate;
    running_.udp.connect_burst = next.udp.connect_burst;
    running_.log.level = next.log.level;
    running_.log.access_log = next.log.access_log;
    running_.log.access_log_rate = next.log.access_log_rate;

    counters_.ok.fetch_add(1);
    counters_.last_ok_unix_s.store(uint64_t(std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count()));
    log::info("reload", "SIGHUP: reloaded " + running_.source + (live.empty() ? ": no live setting changed" : ": " + joined(live)));
} catch (const std::exception& e) {
    log::error("reload", std::string("SIGHUP: reload failed: ") + e.what());
}

}  // namespace chihaya
