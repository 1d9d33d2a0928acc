// The TOML config: defaults, every table, and errors that name file, line and key.
#include "config/config.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace chihaya;

namespace {

std::string error_of(const std::string& toml) {
    try {
        parse_config(toml, "x.toml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("an empty file gives the documented defaults") {
    Config c = parse_config("", "x.toml");
    CHECK(c.source == "x.toml");
    CHECK(c.tracker.announce_interval == 1800);
    CHECK(c.tracker.max_numwant == 200);
    CHECK_FALSE(c.tracker.allow_full_scrape);
    CHECK(c.tracker.driver_timeout_ms == 5000);
    CHECK(c.udp.listen == std::vector<std::string>{"0.0.0.0:6969", "[::]:6969"});
    CHECK(c.http.max_request_head == 8192);
    CHECK(c.cache.driver == "memory");
    CHECK(c.storage.driver == "none");
}

TEST_CASE("etc/chihaya.toml is valid and spells out the defaults") {
    Config shipped = load_config(CHIHAYA_SOURCE_DIR "/etc/chihaya.toml");
    Config defaults = parse_config("", "x.toml");
    CHECK(shipped.tracker.announce_interval == defaults.tracker.announce_interval);
    CHECK(shipped.tracker.min_interval == defaults.tracker.min_interval);
    CHECK(shipped.tracker.peer_lifetime == defaults.tracker.peer_lifetime);
    CHECK(shipped.tracker.default_numwant == defaults.tracker.default_numwant);
    CHECK(shipped.tracker.max_numwant == defaults.tracker.max_numwant);
    CHECK(shipped.tracker.max_scrape_torrents == defaults.tracker.max_scrape_torrents);
    CHECK(shipped.tracker.driver_timeout_ms == defaults.tracker.driver_timeout_ms);
    CHECK(shipped.udp.listen == defaults.udp.listen);
    CHECK(shipped.udp.receive_buffer == defaults.udp.receive_buffer);
    CHECK(shipped.udp.connection_id_secret == defaults.udp.connection_id_secret);
    CHECK(shipped.http.listen == defaults.http.listen);
    CHECK(shipped.http.idle_timeout == defaults.http.idle_timeout);
    CHECK(shipped.http.request_timeout == defaults.http.request_timeout);
    CHECK(shipped.http.max_connections == defaults.http.max_connections);
    CHECK(shipped.http.max_connections_per_address == defaults.http.max_connections_per_address);
    CHECK(shipped.http.real_ip_header == defaults.http.real_ip_header);
    CHECK(shipped.workers.threads == defaults.workers.threads);
    CHECK(shipped.log.level == defaults.log.level);
    CHECK(shipped.process.user == defaults.process.user);
    CHECK(shipped.process.group == defaults.process.group);
    CHECK(shipped.process.chroot == defaults.process.chroot);
    CHECK(shipped.cache.driver == "memory");
    CHECK(shipped.cache.tables.at("memory").at("shards").integer == 1024);
    CHECK(shipped.storage.driver == "none");
}

TEST_CASE("values are read into their tables") {
    Config c = parse_config(R"(
plugins_dir = "/opt/chihaya/plugins"
[tracker]
announce_interval = 600
min_interval = 60
allow_full_scrape = true
[udp]
listen = ["127.0.0.1:7000"]
[http]
enabled = false
trusted_proxies = ["127.0.0.1", "::1"]
[workers]
threads = 3
[log]
level = "debug"
[cache]
driver = "redis"
[cache.redis]
address = "127.0.0.1:6379"
pool = 4
cluster = false
)", "x.toml");
    CHECK(c.plugins_dir == "/opt/chihaya/plugins");
    CHECK(c.tracker.announce_interval == 600);
    CHECK(c.tracker.min_interval == 60);
    CHECK(c.tracker.allow_full_scrape);
    CHECK(c.udp.listen == std::vector<std::string>{"127.0.0.1:7000"});
    CHECK_FALSE(c.http.enabled);
    CHECK(c.http.trusted_proxies.size() == 2);
    CHECK(c.workers.threads == 3);
    CHECK(c.log.level == "debug");
    CHECK(c.cache.driver == "redis");
    const auto& redis = c.cache.tables.at("redis");
    CHECK(redis.at("address").type == DriverTableValue::Type::String);
    CHECK(redis.at("address").string == "127.0.0.1:6379");
    CHECK(redis.at("pool").integer == 4);
    CHECK(redis.at("pool").line == 20);
    CHECK(redis.at("cluster").type == DriverTableValue::Type::Boolean);
}

TEST_CASE("errors name the file, the line and the key") {
    CHECK(error_of("[tracker]\nannounce_intervall = 5\n") == "x.toml:2: tracker.announce_intervall: unknown key");
    CHECK(error_of("\n\nbogus = 1\n") == "x.toml:3: bogus: unknown key");
    CHECK(error_of("[tracker]\nmax_numwant = \"many\"\n") == "x.toml:2: tracker.max_numwant: expected an integer");
    CHECK(error_of("[tracker]\nannounce_interval = 0\n") ==
          "x.toml:2: tracker.announce_interval: 0 is out of range [1, 86400]");
    CHECK(error_of("[tracker]\ndriver_timeout_ms = 5\n") ==
          "x.toml:2: tracker.driver_timeout_ms: 5 is out of range [10, 600000]");
    CHECK(parse_config("[tracker]\ndriver_timeout_ms = 250\n", "x.toml").tracker.driver_timeout_ms == 250);
    CHECK(error_of("[http]\nmax_request_head = 100\n") ==
          "x.toml:2: http.max_request_head: 100 is out of range [512, 65536]");
    CHECK(error_of("[udp]\nenabled = 1\n") == "x.toml:2: udp.enabled: expected true or false");
    CHECK(error_of("[udp]\nlisten = [\"localhost:80\"]\n").find("x.toml:2: udp.listen: \"localhost:80\"") == 0);
    CHECK(error_of("[udp]\nlisten = [\"1.2.3.4:99999\"]\n").find("x.toml:2: udp.listen:") == 0);
    CHECK(error_of("[http]\ntrusted_proxies = [\"proxy\"]\n") ==
          "x.toml:2: http.trusted_proxies: \"proxy\": not an IP address or CIDR network");
    CHECK(error_of("[http]\ntrusted_proxies = [\"127.0.0.0/33\"]\n").find("127.0.0.0/33") != std::string::npos);
    CHECK(error_of("[http]\ntrusted_proxies = [\"127.0.0.0/8\", \"::1/128\", \"fd00::/8\"]\n").empty());
    CHECK(error_of("[udp]\nconnection_id_secret = \"abc\"\n") ==
          "x.toml:2: udp.connection_id_secret: expected 32 hex digits or \"\"");
    CHECK(error_of("[udp]\nconnection_id_secret = \"00112233445566778899aabbccddeeff\"\n").empty());
    CHECK(error_of("[log]\nlevel = \"loud\"\n") == "x.toml:2: log.level: expected debug, info, warning or error");
    CHECK(error_of("[tracker]\nmin_interval = 2000\n").find("tracker.min_interval: must not exceed") != std::string::npos);
    CHECK(error_of("tracker = 3\n") == "x.toml:1: tracker: expected a table");
    CHECK(error_of("[cache]\ndriver = 5\n") == "x.toml:2: cache.driver: expected a string");
    CHECK(error_of("[cache]\nshards = 5\n").find("x.toml:2: cache.shards: unknown key") == 0);
}

TEST_CASE("combinations start-up would refuse, or that make no sense, are refused by the loader") {
    // A scoped IPv6 proxy: the frontend's parser refuses it, so the loader must too.
    CHECK(error_of("[http]\ntrusted_proxies = [\"fe80::1%eth0\"]\n").find("http.trusted_proxies: \"fe80::1%eth0\"") !=
          std::string::npos);
    CHECK(error_of("[tracker]\nannounce_interval = 1800\npeer_lifetime = 900\n")
              .find("tracker.peer_lifetime: must be at least announce_interval") != std::string::npos);
    CHECK(error_of("[tracker]\ndefault_numwant = 300\nmax_numwant = 200\n")
              .find("tracker.default_numwant: must not exceed max_numwant") != std::string::npos);
    CHECK(error_of("[udp]\nlisten = []\n").find("udp.listen: empty while udp.enabled") != std::string::npos);
    CHECK(error_of("[http]\nlisten = []\n").find("http.listen: empty while http.enabled") != std::string::npos);
    CHECK(error_of("[http]\nenabled = false\nlisten = []\n").empty());
    CHECK(error_of("[storage]\nflush_interval_ms = 10\n").find("storage.flush_interval_ms: 10 is out of range") !=
          std::string::npos);
    CHECK(error_of("[storage]\nbogus = 1\n").find("storage.bogus: unknown key") != std::string::npos);
    CHECK(error_of("[tracker]\nmode = \"secret\"\n").find("tracker.mode: expected") != std::string::npos);
    CHECK(error_of("[tracker]\nmode = \"private\"\n[storage]\nspool_dir = \"/x\"\nmax_batch = 5\n").empty());
}

TEST_CASE("TOML syntax errors name the line") {
    std::string e = error_of("[tracker]\nannounce_interval = = 5\n");
    CHECK(e.find("x.toml:2: ") == 0);
}

TEST_CASE("a missing file is an error naming it") {
    try {
        load_config("/nonexistent/chihaya.toml");
        FAIL("no error");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()) == "/nonexistent/chihaya.toml: cannot be read");
    }
}

TEST_CASE("[limits]: safe defaults, read, range-checked, and max_peers below max_torrents refused") {
    const Config defaults = parse_config("", "x.toml");
    CHECK(defaults.limits.max_torrents == 1000000);
    CHECK(defaults.limits.max_peers == 5000000);
    CHECK(defaults.limits.max_peers_per_address == 64);
    CHECK(defaults.limits.new_torrents_per_address == 300);
    const Config shipped = load_config(CHIHAYA_SOURCE_DIR "/etc/chihaya.toml");
    CHECK(shipped.limits.max_torrents == defaults.limits.max_torrents);
    CHECK(shipped.limits.max_peers == defaults.limits.max_peers);
    CHECK(shipped.limits.max_peers_per_address == defaults.limits.max_peers_per_address);
    CHECK(shipped.limits.new_torrents_per_address == defaults.limits.new_torrents_per_address);

    Config c = parse_config(
        "[limits]\nmax_torrents = 0\nmax_peers = 6000000000\nmax_peers_per_address = 0\nnew_torrents_per_address = 0\n",
        "x.toml");
    CHECK(c.limits.max_torrents == 0);
    CHECK(c.limits.max_peers == 6000000000ull);
    CHECK(c.limits.max_peers_per_address == 0);
    CHECK(c.limits.new_torrents_per_address == 0);

    CHECK(error_of("[limits]\nmax_torrents = -1\n") ==
          "x.toml:2: limits.max_torrents: -1 is out of range [0, 1000000000]");
    CHECK(error_of("[limits]\nmax_peers_per_address = 70000\n") ==
          "x.toml:2: limits.max_peers_per_address: 70000 is out of range [0, 65535]");
    CHECK(error_of("[limits]\nnew_torrents_per_address = \"many\"\n") ==
          "x.toml:2: limits.new_torrents_per_address: expected an integer");
    CHECK(error_of("[limits]\nmax_peer = 5\n") == "x.toml:2: limits.max_peer: unknown key");
    CHECK(error_of("[limits]\nmax_torrents = 100\n\nmax_peers = 50\n").find("x.toml:4: limits.max_peers: 50 is below max_torrents (100)") == 0);
    CHECK(error_of("[limits]\nmax_torrents = 10000000\n").find("x.toml:2: limits.max_peers: 5000000 is below max_torrents") == 0);
    CHECK(error_of("[limits]\nmax_torrents = 100\nmax_peers = 0\n").empty());  // no peer budget
}

TEST_CASE("[http] allow_ip_param with [limits] max_peers_per_address is refused: ip= would bypass the cap") {
    CHECK(error_of("[http]\nallow_ip_param = true\n").find(
              "x.toml:2: http.allow_ip_param: true lets a client announce any address with ip=, which defeats "
              "[limits] max_peers_per_address (64)") == 0);
    CHECK(error_of("[limits]\nmax_peers_per_address = 0\n[http]\nallow_ip_param = true\n").empty());
    CHECK(error_of("[http]\nallow_ip_param = false\n").empty());
}
