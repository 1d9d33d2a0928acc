// SIGHUP's sorting of settings (reload/reloader.cpp): every key of config.hpp is either live or
// restart-only, so that no change is silently ignored: applied, or reported and kept.
#include "config/config.hpp"
#include "reload/reloader.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace chihaya;

namespace {

enum class Kind { Live, Restart };

struct Change {
    const char* toml;    // the key changed from its default (plus what it needs to validate)
    const char* name;    // how the reload names it
    Kind kind;
    const char* base = "";  // what both sides share (a key another one needs)
};

// One line per key of config.hpp. A key added there without a line here is not caught by this
// list; the reloader's header names the rule.
const Change kChanges[] = {
    {"plugins_dir = \"/elsewhere\"\n", "plugins_dir", Kind::Restart},
    {"[tracker]\nmode = \"private\"\n", "tracker.mode", Kind::Restart},
    {"[tracker]\nannounce_interval = 1200\n", "tracker.announce_interval", Kind::Live},
    {"[tracker]\nmin_interval = 300\n", "tracker.min_interval", Kind::Live},
    {"[tracker]\npeer_lifetime = 3600\n", "tracker.peer_lifetime", Kind::Live},
    {"[tracker]\ndefault_numwant = 30\n", "tracker.default_numwant", Kind::Live},
    {"[tracker]\nmax_numwant = 100\n", "tracker.max_numwant", Kind::Live},
    {"[tracker]\nmax_scrape_torrents = 10\n", "tracker.max_scrape_torrents", Kind::Live},
    {"[tracker]\nallow_full_scrape = true\n", "tracker.allow_full_scrape", Kind::Live},
    {"[limits]\nmax_torrents = 1000\n", "limits.max_torrents", Kind::Live},
    {"[limits]\nmax_peers = 2000000\n", "limits.max_peers", Kind::Live},
    {"[limits]\nmax_peers_per_address = 8\n", "limits.max_peers_per_address", Kind::Live},
    {"[limits]\nnew_torrents_per_address = 10\n", "limits.new_torrents_per_address", Kind::Live},
    {"[cache.memory]\naddress_counters = 65536\n", "cache", Kind::Restart},
    {"[udp]\nenabled = false\n", "udp.enabled", Kind::Restart},
    {"[udp]\nlisten = [\"127.0.0.1:7000\"]\n", "udp.listen", Kind::Restart},
    {"[udp]\nreceive_buffer = 65536\n", "udp.receive_buffer", Kind::Restart},
    {"[udp]\nconnect_rate = 5\n", "udp.connect_rate", Kind::Live},
    {"[udp]\nconnect_burst = 10\n", "udp.connect_burst", Kind::Live},
    {"[udp]\nconnection_id_secret = \"00112233445566778899aabbccddeeff\"\n", "udp.connection_id_secret", Kind::Restart},
    {"[http]\nenabled = false\n", "http.enabled", Kind::Restart},
    {"[http]\nlisten = [\"127.0.0.1:7000\"]\n", "http.listen", Kind::Restart},
    {"[http]\nmax_request_head = 4096\n", "http.max_request_head", Kind::Live},
    {"[http]\nidle_timeout = 5\n", "http.idle_timeout", Kind::Live},
    {"[http]\nrequest_timeout = 5\n", "http.request_timeout", Kind::Live},
    {"[http]\nmax_connections = 50\n", "http.max_connections", Kind::Live},
    {"[http]\nmax_connections_per_address = 8\n", "http.max_connections_per_address", Kind::Live},
    {"[http]\ntrusted_proxies = [\"10.0.0.0/8\"]\n", "http.trusted_proxies", Kind::Live},
    {"[http]\nreal_ip_header = \"X-Real-IP\"\n", "http.real_ip_header", Kind::Live},
    {"[http]\nallow_ip_param = true\n", "http.allow_ip_param", Kind::Live, "[limits]\nmax_peers_per_address = 0\n"},
    {"[workers]\nthreads = 3\n", "workers.threads", Kind::Restart},
    {"[log]\nlevel = \"debug\"\n", "log.level", Kind::Live},
    {"[log]\nformat = \"json\"\n", "log.format", Kind::Restart},
    {"[log]\naccess_log = true\n", "log.access_log", Kind::Live},
    {"[log]\naccess_log_rate = 5\n", "log.access_log_rate", Kind::Live},
    {"[admin]\nlisten = \"127.0.0.1:6880\"\n", "admin.listen", Kind::Restart},
    {"[cache]\ndriver = \"redis\"\n", "cache", Kind::Restart},
    {"[cache.memory]\nshards = 16\n", "cache", Kind::Restart},
    {"[storage]\ndriver = \"postgres\"\n", "storage", Kind::Restart},
    {"[storage]\nflush_interval_ms = 500\n", "storage accounting (flush_interval_ms, max_batch, spool_dir)", Kind::Restart},
};

bool contains(const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

TEST_CASE("every setting a reload can change is applied live or reported as needing a restart") {
    for (const Change& c : kChanges) {
        CAPTURE(c.toml);
        const Config defaults = parse_config(c.base, "defaults.toml");
        const Config next = parse_config(std::string(c.base) + c.toml, "next.toml");
        const auto live = Reloader::live_changes(defaults, next);
        const auto restart = Reloader::restart_changes(defaults, next);
        // Named once, on its side: one key changed, one name reported.
        CHECK(live.size() + restart.size() == 1);
        CHECK(contains(c.kind == Kind::Live ? live : restart, c.name));
    }
}

TEST_CASE("[process] is restart-only: the user, group and chroot are taken once, at start-up") {
    const Config plain = parse_config("", "plain.toml");
    const Config user = parse_config("[process]\nuser = \"nobody\"\n", "user.toml");
    const std::vector<std::string> want_user{"process.user"};
    CHECK(Reloader::restart_changes(plain, user) == want_user);
    CHECK(Reloader::restart_changes(user, plain) == want_user);
    const Config group = parse_config("[process]\nuser = \"nobody\"\ngroup = \"nogroup\"\n", "g.toml");
    CHECK(Reloader::restart_changes(user, group) == std::vector<std::string>{"process.group"});
    const Config root = parse_config("[process]\nuser = \"nobody\"\nchroot = \"/var/empty\"\n", "c.toml");
    CHECK(Reloader::restart_changes(user, root) == std::vector<std::string>{"process.chroot"});
    CHECK(Reloader::live_changes(plain, root).empty());
}

TEST_CASE("an unchanged file changes nothing") {
    const Config a = parse_config("[udp]\nconnect_rate = 5\n[http]\nmax_connections_per_address = 3\n", "a.toml");
    const Config b = parse_config("[udp]\nconnect_rate = 5\n[http]\nmax_connections_per_address = 3\n", "b.toml");
    CHECK(Reloader::live_changes(a, b).empty());
    CHECK(Reloader::restart_changes(a, b).empty());
}
