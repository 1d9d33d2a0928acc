// SIGHUP: read the config file again and apply what can change while serving.
//
// Live (the next request sees it): [tracker] intervals, peer_lifetime, numwant, scrape limits,
// full scrape; [udp] connect_rate, connect_burst; [http] timeouts, max_connections,
// max_connections_per_address, max_request_head, trusted_proxies, real_ip_header,
// allow_ip_param; [log] level and access log. Restart settings (listen addresses, enabled
// frontends, receive_buffer, connection_id_secret, workers, drivers and their tables, tracker
// mode, plugins_dir, [admin], [process], log format, accounting) are compared, each change logged
// as needing a restart, and the running value kept. Every key of config.hpp is one or the other
// (tests/unit/reload_test.cpp holds them to it). A file that no longer parses or validates
// changes nothing: the error is logged with file:line and the old configuration keeps running.
#pragma once

#include "config/config.hpp"
#include "metrics/host_collectors.hpp"

#include <functional>
#include <string>
#include <vector>

namespace chihaya {

class Tracker;

class Reloader {
public:
    // `apply_frontends` hands the new [http] and [udp] settings to every worker
    // (HttpFrontend::reconfigure, UdpFrontend::reconfigure) and to what the workers share (the
    // per-address HTTP connection count); restart keys in it are ignored there.
    Reloader(Config running, Tracker& tracker, std::function<void(const Config&)> apply_frontends,
             metrics::ReloadCounters& counters);

    // On the main thread, on SIGHUP. Never throws.
    void reload() noexcept;

    // The restart settings that differ between `a` and `b`, by key ("udp.listen", "cache").
    static std::vector<std::string> restart_changes(const Config& a, const Config& b);
    // The live settings that differ (for the log line).
    static std::vector<std::string> live_changes(const Config& a, const Config& b);

private:
    Config running_;
    Tracker& tracker_;
    std::function<void(const Config&)> apply_frontends_;
    metrics::ReloadCounters& counters_;
};

}  // namespace chihaya
