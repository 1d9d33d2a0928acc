// TOML++ → Config: every key typed and range-checked; errors name file:line: key.
#include "config/config.hpp"

#include "net/address.hpp"
#include "log/log.hpp"

#include <toml++/toml.h>

#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

namespace chihaya {
namespace {

[[noreturn]] void fail(const std::string& file, const toml::source_region& where,
                       const std::string& key, const std::string& what) {
    std::ostringstream out;
    out << file << ':' << where.begin.line << ": " << key << ": " << what;
    throw ConfigError(out.str());
}

// Reads one table into typed fields; finish() rejects every key no field claimed.
class TableReader {
public:
    TableReader(const toml::table& table, std::string prefix, const std::string& file)
        : table_(table), prefix_(std::move(prefix)), file_(file) {}

    void u32(const char* key, uint32_t& out, int64_t min, int64_t max) { integer(key, out, min, max); }
    void u64(const char* key, uint64_t& out, int64_t min, int64_t max) { integer(key, out, min, max); }

    // Where a key was written, for a check across keys; null when it was left out.
    const toml::node* node_of(const char* key) const { return table_.get(key); }

    void boolean(const char* key, bool& out) {
        const toml::node* node = take(key);
        if (!node) return;
        auto value = node->value_exact<bool>();
        if (!value) fail(file_, node->source(), name(key), "expected true or false");
        out = *value;
    }

    const toml::node* string(const char* key, std::string& out) {
        const toml::node* node = take(key);
        if (!node) return nullptr;
        auto value = node->value_exact<std::string>();
        if (!value) fail(file_, node->source(), name(key), "expected a string");
        out = *value;
        return node;
    }

    // Each element is checked by `valid`, which returns an empty string or what is wrong.
    template <class Check>
    void strings(const char* key, std::vector<std::string>& out, Check valid) {
        const toml::node* node = take(key);
        if (!node) return;
        const toml::array* array = node->as_array();
        if (!array) fail(file_, node->source(), name(key), "expected an array of strings");
        out.clear();
        for (const toml::node& element : *array) {
            auto value = element.value_exact<std::string>();
            if (!value) fail(file_, element.source(), name(key), "expected an array of strings");
            if (auto why = valid(*value); !why.empty())
                fail(file_, element.source(), name(key), "\"" + *value + "\": " + why);
            out.push_back(*value);
        }
    }

    const toml::table* table(const char* key) {
        const toml::node* node = take(key);
        if (!node) return nullptr;
        const toml::table* t = node->as_table();
        if (!t) fail(file_, node->source(), name(key), "expected a table");
        return t;
    }

    void finish() const {
        for (const auto& [key, node] : table_)
            if (!claimed_.count(std::string(key.str())))
                fail(file_, node.source(), name(std::string(key.str())), "unknown key");
    }

    std::string name(const std::string& key) const {
        return prefix_.empty() ? key : prefix_ + "." + key;
    }
    const std::string& file() const { return file_; }

private:
    template <class Int>
    void integer(const char* key, Int& out, int64_t min, int64_t max) {
        const toml::node* node = take(key);
        if (!node) return;
        auto value = node->value_exact<int64_t>();
        if (!value) fail(file_, node->source(), name(key), "expected an integer");
        if (*value < min || *value > max)
            fail(file_, node->source(), name(key),
                 std::to_string(*value) + " is out of range [" + std::to_string(min) + ", " +
                     std::to_string(max) + "]");
        out = static_cast<Int>(*value);
    }

    const toml::node* take(const char* key) {
        claimed_.insert(key);
        return table_.get(key);
    }

    const toml::table& table_;
    std::string prefix_;
    const std::string& file_;
    std::set<std::string> claimed_;
};

std::string check_listen(const std::string& text) {
    return parse_listen_address(text) ? "" : "expected host:port or [ipv6]:port with a numeric address";
}

// An address, or a network in CIDR notation ("10.0.0.0/8", "fd00::/8"), read by the very parser
// the HTTP frontend uses at start-up, so --check-config accepts exactly what start-up accepts
// (a scoped IPv6 address such as "fe80::1%eth0" is refused by both).
std::string check_proxy(const std::string& text) {
    return parse_trusted_proxy(text) ? "" : "not an IP address or CIDR network";
}

// [cache] / [storage]: `driver` plus one sub-table per driver, validated once the driver's
// declared keys are known (plugin/registry.cpp). `host_keys` reads the table's other scalar keys
// (the host's own settings for that kind), or is null when there are none.
void read_selection(TableReader& parent, const char* key, DriverSelection& out,
                    void (*host_keys)(TableReader&, Config&) = nullptr, Config* config = nullptr) {
    const toml::table* table = parent.table(key);
    if (!table) return;
    if (host_keys) {
        toml::table scalars;
        for (const auto& [k, node] : *table)
            if (k.str() != "driver" && !node.is_table()) scalars.insert(k, node);
        TableReader r(scalars, key, parent.file());
        host_keys(r, *config);
        r.finish();
    }
    for (const auto& [k, node] : *table) {
        std::string sub(k.str());
        if (host_keys && !node.is_table()) {
            if (sub != "driver") continue;
        }
        if (sub == "driver") {
            auto value = node.value_exact<std::string>();
            if (!value) fail(parent.file(), node.source(), std::string(key) + ".driver", "expected a string");
            out.driver = *value;
            continue;
        }
        const toml::table* driver_table = node.as_table();
        if (!driver_table)
            fail(parent.file(), node.source(), std::string(key) + "." + sub,
                 "unknown key (driver settings go in a table [" + std::string(key) + ".<driver>])");
        auto& values = out.tables[sub];
        for (const auto& [dk, dnode] : *driver_table) {
            DriverTableValue v;
            v.line = dnode.source().begin.line;
            if (auto s = dnode.value_exact<std::string>()) {
                v.type = DriverTableValue::Type::String;
                v.string = *s;
            } else if (auto i = dnode.value_exact<int64_t>()) {
                v.type = DriverTableValue::Type::Integer;
                v.integer = *i;
            } else if (auto b = dnode.value_exact<bool>()) {
                v.type = DriverTableValue::Type::Boolean;
                v.integer = *b;
            }
            values[std::string(dk.str())] = v;
        }
    }
}

void read_accounting(TableReader& r, Config& config) {
    AccountingConfig& c = config.accounting;
    r.u32("flush_interval_ms", c.flush_interval_ms, 100, 600000);
    r.u32("max_batch", c.max_batch, 1, 10000000);
    r.string("spool_dir", c.spool_dir);
}

Config read(const toml::table& root, const std::string& file) {
    Config config;
    config.source = file;
    TableReader top(root, "", file);
    top.string("plugins_dir", config.plugins_dir);

    if (const toml::table* t = top.table("tracker")) {
        TableReader r(*t, "tracker", file);
        TrackerConfig& c = config.tracker;
        std::string mode = "open";
        if (const toml::node* node = r.string("mode", mode)) {
            if (mode == "open") c.mode = TrackerMode::Open;
            else if (mode == "private") c.mode = TrackerMode::Private;
            else fail(file, node->source(), "tracker.mode", "expected \"open\" or \"private\"");
        }
        r.u32("announce_interval", c.announce_interval, 1, 86400);
        r.u32("min_interval", c.min_interval, 1, 86400);
        r.u32("peer_lifetime", c.peer_lifetime, 1, 7 * 86400);
        r.u32("default_numwant", c.default_numwant, 0, 1000);
        r.u32("max_numwant", c.max_numwant, 0, 1000);
        r.u32("max_scrape_torrents", c.max_scrape_torrents, 1, 1000);
        r.boolean("allow_full_scrape", c.allow_full_scrape);
        r.u32("driver_timeout_ms", c.driver_timeout_ms, 10, 600000);
        r.finish();
        if (c.min_interval > c.announce_interval)
            fail(file, t->source(), "tracker.min_interval", "must not exceed announce_interval");
        if (c.peer_lifetime < c.announce_interval)
            fail(file, t->source(), "tracker.peer_lifetime",
                 "must be at least announce_interval (" + std::to_string(c.announce_interval) +
                     "), or peers expire between their announces");
        if (c.default_numwant > c.max_numwant)
            fail(file, t->source(), "tracker.default_numwant",
                 "must not exceed max_numwant (" + std::to_string(c.max_numwant) + ")");
    }
    if (const toml::table* t = top.table("limits")) {
        TableReader r(*t, "limits", file);
        LimitsConfig& c = config.limits;
        r.u64("max_torrents", c.max_torrents, 0, 1'000'000'000);
        r.u64("max_peers", c.max_peers, 0, 10'000'000'000);
        // At most one peer per port.
        r.u32("max_peers_per_address", c.max_peers_per_address, 0, 65535);
        r.u32("new_torrents_per_address", c.new_torrents_per_address, 0, 1'000'000);
        r.finish();
        if (c.max_peers != 0 && c.max_torrents > c.max_peers) {
            const toml::node* at = r.node_of("max_peers") ? r.node_of("max_peers") : r.node_of("max_torrents");
            fail(file, at ? at->source() : t->source(), "limits.max_peers",
                 std::to_string(c.max_peers) + " is below max_torrents (" + std::to_string(c.max_torrents) +
                     "): every torrent holds at least one peer, so max_torrents could never be reached");
        }
    }
    if (const toml::table* t = top.table("udp")) {
        TableReader r(*t, "udp", file);
        r.boolean("enabled", config.udp.enabled);
        r.strings("listen", config.udp.listen, check_listen);
        r.u32("receive_buffer", config.udp.receive_buffer, 0, 1 << 30);
        r.u32("connect_rate", config.udp.connect_rate, 0, 1000000);
        r.u32("connect_burst", config.udp.connect_burst, 1, 1000000);
        if (config.udp.enabled && config.udp.listen.empty())
            fail(file, t->source(), "udp.listen", "empty while udp.enabled = true (disable UDP instead)");
        if (const toml::node* node = r.string("connection_id_secret", config.udp.connection_id_secret)) {
            const std::string& secret = config.udp.connection_id_secret;
            bool hex = secret.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
            if (!secret.empty() && (secret.size() != 32 || !hex))
                fail(file, node->source(), "udp.connection_id_secret", "expected 32 hex digits or \"\"");
        }
        r.finish();
    }
    if (const toml::table* t = top.table("http")) {
        TableReader r(*t, "http", file);
        HttpConfig& c = config.http;
        r.boolean("enabled", c.enabled);
        r.strings("listen", c.listen, check_listen);
        r.u32("max_request_head", c.max_request_head, 512, 1 << 16);
        r.u32("idle_timeout", c.idle_timeout, 1, 3600);
        r.u32("request_timeout", c.request_timeout, 1, 600);
        r.u32("max_connections", c.max_connections, 1, 1000000);
        r.u32("max_connections_per_address", c.max_connections_per_address, 0, 1000000);
        r.strings("trusted_proxies", c.trusted_proxies, check_proxy);
        r.string("real_ip_header", c.real_ip_header);
        r.boolean("allow_ip_param", c.allow_ip_param);
        // ip= names any address, so a client would get max_peers_per_address peers per address
        // it names, without end: the two cannot be on together (the operator chooses).
        if (c.allow_ip_param && config.limits.max_peers_per_address != 0)
            fail(file, r.node_of("allow_ip_param")->source(), "http.allow_ip_param",
                 "true lets a client announce any address with ip=, which defeats [limits] "
                 "max_peers_per_address (" + std::to_string(config.limits.max_peers_per_address) +
                     "): set max_peers_per_address = 0 to accept that, or keep allow_ip_param = false");
        if (c.enabled && c.listen.empty())
            fail(file, t->source(), "http.listen", "empty while http.enabled = true (disable HTTP instead)");
        r.finish();
    }
    if (const toml::table* t = top.table("workers")) {
        TableReader r(*t, "workers", file);
        r.u32("threads", config.workers.threads, 0, 256);
        r.finish();
    }
    if (const toml::table* t = top.table("log")) {
        TableReader r(*t, "log", file);
        if (const toml::node* node = r.string("level", config.log.level)) {
            bool ok = false;
            log::parse_level(config.log.level, &ok);
            if (!ok) fail(file, node->source(), "log.level", "expected debug, info, warning or error");
        }
        if (const toml::node* node = r.string("format", config.log.format)) {
            bool ok = false;
            log::parse_format(config.log.format, &ok);
            if (!ok) fail(file, node->source(), "log.format", "expected \"text\" or \"json\"");
        }
        r.boolean("access_log", config.log.access_log);
        r.u32("access_log_rate", config.log.access_log_rate, 1, 1000000);
        r.finish();
    }
    if (const toml::table* t = top.table("admin")) {
        TableReader r(*t, "admin", file);
        if (const toml::node* node = r.string("listen", config.admin.listen)) {
            if (!config.admin.listen.empty() && !check_listen(config.admin.listen).empty())
                fail(file, node->source(), "admin.listen", check_listen(config.admin.listen) + " (or \"\" for none)");
        }
        r.finish();
    }
    if (const toml::table* t = top.table("process")) {
        TableReader r(*t, "process", file);
        r.string("user", config.process.user);
        const toml::node* group = r.string("group", config.process.group);
        const toml::node* root = r.string("chroot", config.process.chroot);
        r.finish();
        if (group && config.process.user.empty() && !config.process.group.empty())
            fail(file, group->source(), "process.group", "needs process.user");
        if (root && config.process.user.empty() && !config.process.chroot.empty())
            fail(file, root->source(), "process.chroot", "needs process.user (root can leave a chroot)");
        if (root && !config.process.chroot.empty() && config.tracker.mode == TrackerMode::Private)
            fail(file, root->source(), "process.chroot", "not with tracker.mode = \"private\" (its spool is written later)");
    }
    read_selection(top, "cache", config.cache);
    read_selection(top, "storage", config.storage, &read_accounting, &config);
    top.finish();
    return config;
}

}  // namespace

Config parse_config(std::string_view text, const std::string& source) {
    try {
        toml::table root = toml::parse(text, source);
        return read(root, source);
    } catch (const toml::parse_error& e) {
        std::ostringstream out;
        out << source << ':' << e.source().begin.line << ": " << e.description();
        throw ConfigError(out.str());
    }
}

Config load_config(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path + ": cannot be read");
    std::ostringstream text;
    text << in.rdbuf();
    return parse_config(text.str(), path);
}

}  // namespace chihaya
