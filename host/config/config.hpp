// The host's configuration: one typed struct per TOML table, defaults in class, a doc per field.
// etc/chihaya.toml mirrors this file key for key; load.cpp maps TOML onto it and rejects the rest.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace chihaya {

// [tracker] mode: who may announce.
enum class TrackerMode : uint8_t {
    Open,     // anyone, any torrent; no storage calls
    Private,  // a passkey in every URL, registered torrents only, traffic accounted to users
};

// [tracker]: swarm policy, independent of the wire protocol.
struct TrackerConfig {
    TrackerMode mode = TrackerMode::Open;
    uint32_t announce_interval = 1800;   // seconds a client should wait between announces
    uint32_t min_interval = 900;         // seconds a client must wait between announces
    uint32_t peer_lifetime = 2700;       // seconds without an announce after which a peer expires
    uint32_t default_numwant = 50;       // peers returned when the client does not say
    uint32_t max_numwant = 200;          // most peers returned to one announce
    uint32_t max_scrape_torrents = 64;   // most info_hashes in one HTTP scrape
    bool allow_full_scrape = false;      // a scrape with no info_hash lists every torrent
    // Milliseconds a cache driver may hold an announce or scrape before its client is answered
    // "tracker storage unavailable". The call's memory stays the driver's until its late `done`,
    // which is then logged and ignored. Above the driver's own timeout (Redis: 500 ms per command),
    // so that this is the net for a driver that hangs, not its usual error path. Live reload.
    uint32_t driver_timeout_ms = 5000;
};

// [limits]: memory budgets against floods (issue 11). The host hands the three budgets to the
// cache driver with every announce (abi.h 2.3), which alone knows whether an announce adds a
// swarm or a peer; a driver built for ABI 2.2 or older cannot enforce them (warned at start-up).
// When a budget is reached new swarms / peers are refused with a fixed failure reason while
// every swarm and peer already held keeps being served. 0 = no limit. Live reload.
// Memory, measured with the memory driver (VmRSS over 200,000-announce floods; etc/chihaya.toml):
// 122 bytes a torrent with its first IPv4 peer (IPv6: 142), 25 bytes a further IPv4 peer in a big
// swarm (IPv6: 39).
struct LimitsConfig {
    // Swarms the store may hold; a new info_hash past it fails "tracker full". ~122 MB at 1e6.
    uint64_t max_torrents = 1000000;
    // Peers the store may hold, all swarms and both families together; a new peer past it fails
    // "tracker full". At least max_torrents (each swarm holds a peer), else max_torrents is moot.
    // ~100 MB beyond the torrents' first peers at the default.
    uint64_t max_peers = 5000000;
    // Peers of one address (as the driver groups it: the memory driver counts IPv6 per /64) in
    // one swarm, over all its ports. Caps what one address can put in a swarm (a port flood),
    // not in all of them: 64 in every swarm it names, which only max_peers bounds. Refused with
    // [http] allow_ip_param = true, whose ip= would name a new address per peer.
    uint32_t max_peers_per_address = 64;
    // Swarms one client address (IPv6: per /64) may create per minute, as a token bucket of that
    // size refilled at that rate; announces into existing swarms are never limited by it. The
    // address is the client's own (the socket's, or its trusted proxy's X-Forwarded-For), never
    // the announce's ip= parameter. Not applied in private mode (registered torrents only).
    uint32_t new_torrents_per_address = 300;
};

// [udp]: BEP 15 frontend.
struct UdpConfig {
    bool enabled = true;
    std::vector<std::string> listen = {"0.0.0.0:6969", "[::]:6969"};  // host:port, [v6]:port
    uint32_t receive_buffer = 8 << 20;   // SO_RCVBUF bytes per socket; 0 = the kernel default
    // Connect requests answered per second per address (IPv6: per /64) and per worker, after a
    // burst of connect_burst; the rest are dropped unanswered. 0 = no limit. A client connects
    // about once per two minutes; thousands of users behind one carrier-grade NAT stay far below.
    uint32_t connect_rate = 20;
    uint32_t connect_burst = 200;
    // 32 hex digits shared by every host behind one UDP address, so a connection id issued by one
    // is accepted by the others; "" = a random secret per process.
    std::string connection_id_secret;
};

// [http]: BEP 3 / BEP 23 / BEP 48 frontend.
struct HttpConfig {
    bool enabled = true;
    std::vector<std::string> listen = {"0.0.0.0:6969", "[::]:6969"};
    uint32_t max_request_head = 8192;    // bytes of request line + headers before 431
    uint32_t idle_timeout = 30;          // seconds a keep-alive connection may stay idle
    uint32_t request_timeout = 10;       // seconds to receive one whole request head
    uint32_t max_connections = 10000;    // open connections per worker; more are closed at once
    // Open connections from one client address (an IPv6 /64) across all workers; more are closed
    // at once. Trusted proxies are exempt. 0 = no limit.
    uint32_t max_connections_per_address = 64;
    std::vector<std::string> trusted_proxies;  // addresses or CIDR networks whose real_ip_header is believed
    std::string real_ip_header = "X-Forwarded-For";  // last address in it is the client
    bool allow_ip_param = false;         // believe the announce's ip= parameter
};

// [workers]
struct WorkersConfig {
    uint32_t threads = 0;                // event loops (one socket set each); 0 = one per core
};

// [log]
struct LogConfig {
    std::string level = "info";          // debug, info, warning, error (live reload)
    std::string format = "text";         // text (for people) or json (one object per line)
    bool access_log = false;             // a line per request: address, action, result (live reload)
    uint32_t access_log_rate = 100;      // most access-log lines per second; the rest are counted
};

// [admin]: the operator's listener (metrics, health); never on the public port.
struct AdminConfig {
    // host:port, [v6]:port, or "" = no admin listener. Loopback in the shipped config; a public
    // address exposes metrics to anyone.
    std::string listen;
};

// [process]: who the tracker runs as once its sockets are bound and its plugins loaded.
struct ProcessConfig {
    std::string user;    // "" = stay who started it (a loud warning when that is root)
    std::string group;   // "" = the user's primary group
    std::string chroot;  // "" = none; else a directory to confine the process to (needs user)
};

// A driver's table ([cache.<name>] / [storage.<name>]) as written, checked later against the
// keys the driver declares. Values keep their TOML text position for error messages.
struct DriverTableValue {
    enum class Type { String, Integer, Boolean, Other } type = Type::Other;
    std::string string;
    int64_t integer = 0;
    uint32_t line = 0;
};

struct DriverSelection {
    std::string driver;                  // registered driver name
    // Tables of every driver named in the file, by driver name (only the selected one is used).
    std::map<std::string, std::map<std::string, DriverTableValue>> tables;
};

// [storage] keys of the host's own (next to `driver`): how private-mode accounting reaches the
// storage. Batching, the spool and the flush schedule are the host's, whatever the driver.
struct AccountingConfig {
    uint32_t flush_interval_ms = 3000;   // a batch is sealed and flushed at least this often
    uint32_t max_batch = 100000;         // ... or as soon as this many peers have pending deltas
    // Directory of batches not yet applied (written and fsync'd before every apply); relative to
    // the config file. Must be writable; "" = "spool" beside the config file.
    std::string spool_dir;
};

struct Config {
    std::string source;                  // path of the file read, for messages
    std::string plugins_dir;             // "" = the plugins/ folder beside the chihaya binary
    TrackerConfig tracker;
    LimitsConfig limits;
    UdpConfig udp;
    HttpConfig http;
    WorkersConfig workers;
    LogConfig log;
    AdminConfig admin;
    ProcessConfig process;
    DriverSelection cache{"memory", {}};
    DriverSelection storage{"none", {}};
    AccountingConfig accounting;
};

// Thrown at start-up only: "file:line: key: what is wrong".
struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Reads and validates a TOML file. Throws ConfigError.
Config load_config(const std::string& path);
// Parses TOML text; `source` names it in messages. Throws ConfigError.
Config parse_config(std::string_view text, const std::string& source);

}  // namespace chihaya
