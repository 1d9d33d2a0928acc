// Parsing of an HTTP tracker request target: route, and the announce / scrape query parameters.
#include "frontend/http/query.hpp"

#include "frontend/http/client_address.hpp"
#include "tracker/passkey.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

namespace chihaya::http {
namespace {

// A table, not comparisons: clients send info_hash and peer_id as 60 characters of %XX each, and
// decoding them was 6 % of an HTTP announce's CPU in a profile with the branchy version.
constexpr std::array<int8_t, 256> kHexValue = [] {
    std::array<int8_t, 256> t{};
    for (auto& v : t) v = -1;
    for (int c = '0'; c <= '9'; ++c) t[c] = int8_t(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) t[c] = int8_t(c - 'a' + 10);
    for (int c = 'A'; c <= 'F'; ++c) t[c] = int8_t(c - 'A' + 10);
    return t;
}();

int hex_value(char c) { return kHexValue[static_cast<uint8_t>(c)]; }

// Digits only: no sign, no space, no empty string, no overflow. Clients that send anything else
// are broken, and guessing what they meant would corrupt swarm statistics.
bool parse_u64(std::string_view s, uint64_t& out) {
    if (s.empty() || s.size() > 20) return false;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        const uint64_t d = static_cast<uint64_t>(c - '0');
        if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
        v = v * 10 + d;
    }
    out = v;
    return true;
}

bool parse_flag(std::string_view s, bool& out) {
    if (s == "1") { out = true; return true; }
    if (s == "0") { out = false; return true; }
    return false;
}

// Exactly 20 bytes after decoding, or nothing.
bool decode_hash(std::string_view s, std::array<uint8_t, 20>& out) {
    uint8_t buf[20];
    if (percent_decode(s, buf, sizeof buf) != 20) return false;
    std::memcpy(out.data(), buf, 20);
    return true;
}

// BEP 7 `key`: libtorrent sends 8 hex digits. Anything else still identifies the client, so it
// is folded with FNV-1a rather than refused; the key never decides whether an announce is valid.
uint32_t parse_key(std::string_view s) {
    if (!s.empty() && s.size() <= 8) {
        uint32_t v = 0;
        bool hex = true;
        for (char c : s) {
            const int h = hex_value(c);
            if (h < 0) { hex = false; break; }
            v = (v << 4) | static_cast<uint32_t>(h);
        }
        if (hex) return v;
    }
    uint32_t h = 2166136261u;
    for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
    return h;
}

// Calls f(key, value) for each `key=value` pair separated by '&'; a pair without '=' has an
// empty value. Keys are compared undecoded: clients never percent-encode parameter names.
template <class F>
void for_each_param(std::string_view query, F&& f) {
    while (!query.empty()) {
        const size_t amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) continue;
        const size_t eq = pair.find('=');
        if (eq == std::string_view::npos) f(pair, std::string_view{});
        else f(pair.substr(0, eq), pair.substr(eq + 1));
    }
}

}  // namespace

ptrdiff_t percent_decode(std::string_view in, uint8_t* out, size_t cap) {
    const char* p = in.data();
    const char* const end = p + in.size();
    size_t n = 0;
    while (p != end) {
        if (n == cap) return -1;
        const char c = *p;
        if (c == '%') {
            if (end - p < 3) return -1;
            const int hi = hex_value(p[1]);
            const int lo = hex_value(p[2]);
            if ((hi | lo) < 0) return -1;
            out[n++] = static_cast<uint8_t>(hi << 4 | lo);
            p += 3;
        } else {
            out[n++] = static_cast<uint8_t>(c == '+' ? ' ' : c);
            ++p;
        }
    }
    return static_cast<ptrdiff_t>(n);
}

Route route_target(std::string_view target, std::string_view& query, std::string_view& passkey) {
    passkey = {};
    // Absolute-form (RFC 9112 3.2.2) is rare but legal; drop scheme and authority.
    if (target.starts_with("http://") || target.starts_with("https://")) {
        const size_t slash = target.find('/', target.find("//") + 2);
        target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
    const size_t q = target.find('?');
    std::string_view path = target.substr(0, q);
    query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
    if (const size_t hash = query.find('#'); hash != std::string_view::npos) query = query.substr(0, hash);
    if (path == "/announce") return Route::Announce;
    if (path == "/scrape") return Route::Scrape;
    if (!(passkey = passkey_from_path(path, "/announce")).empty()) return Route::Announce;
    if (!(passkey = passkey_from_path(path, "/scrape")).empty()) return Route::Scrape;
    return Route::NotFound;
}

const char* parse_announce(std::string_view query, AnnounceQuery& out) {
    out = AnnounceQuery{};
    const char* failure = nullptr;
    bool have_hash = false, have_peer_id = false, have_port = false;
    bool have_uploaded = false, have_downloaded = false, have_left = false;

    for_each_param(query, [&](std::string_view key, std::string_view value) {
        if (failure) return;
        if (key == "info_hash") {
            if (have_hash) { failure = "announce takes exactly one info_hash"; return; }
            if (!decode_hash(value, out.info_hash.bytes)) { failure = "invalid info_hash"; return; }
            have_hash = true;
        } else if (key == "peer_id") {
            if (!decode_hash(value, out.peer_id.bytes)) { failure = "invalid peer_id"; return; }
            have_peer_id = true;
        } else if (key == "port") {
            uint64_t port = 0;
            if (!parse_u64(value, port) || port == 0 || port > 65535) { failure = "invalid port"; return; }
            out.port = static_cast<uint16_t>(port);
            have_port = true;
        } else if (key == "uploaded") {
            if (!parse_u64(value, out.uploaded)) { failure = "invalid uploaded"; return; }
            have_uploaded = true;
        } else if (key == "downloaded") {
            if (!parse_u64(value, out.downloaded)) { failure = "invalid downloaded"; return; }
            have_downloaded = true;
        } else if (key == "left") {
            if (!parse_u64(value, out.left)) { failure = "invalid left"; return; }
            have_left = true;
        } else if (key == "numwant") {
            uint64_t n = 0;
            if (!parse_u64(value, n)) { failure = "invalid numwant"; return; }
            out.numwant = static_cast<int32_t>(std::min<uint64_t>(n, std::numeric_limits<int32_t>::max()));
        } else if (key == "compact") {
            if (!parse_flag(value, out.compact)) { failure = "invalid compact"; return; }
        } else if (key == "no_peer_id") {
            if (!parse_flag(value, out.no_peer_id)) { failure = "invalid no_peer_id"; return; }
        } else if (key == "event") {
            // "paused" is BEP 21's upload-only announce: a regular announce for the swarm.
            if (value.empty() || value == "paused") out.event = Event::None;
            else if (value == "started") out.event = Event::Started;
            else if (value == "completed") out.event = Event::Completed;
            else if (value == "stopped") out.event = Event::Stopped;
            else failure = "invalid event";
        } else if (key == "key") {
            out.key = parse_key(value);
            out.has_key = true;
        } else if (key == "ip") {
            // A hostname or garbage here is ignored rather than refused: the socket address is
            // still a good answer, and the parameter is only believed when configured anyway.
            uint8_t text[64];
            const ptrdiff_t n = percent_decode(value, text, sizeof text);
            out.has_ip = n > 0 &&
                parse_address(std::string_view(reinterpret_cast<const char*>(text), static_cast<size_t>(n)), out.ip);
        }
    });
    if (failure) return failure;
    if (!have_hash) return "missing info_hash";
    if (!have_peer_id) return "missing peer_id";
    if (!have_port) return "missing port";
    if (!have_uploaded) return "missing uploaded";
    if (!have_downloaded) return "missing downloaded";
    if (!have_left) return "missing left";
    return nullptr;
}

const char* parse_scrape(std::string_view query, chihaya_scrape_entry* entries, uint32_t capacity,
                         uint32_t& count) {
    count = 0;
    const char* failure = nullptr;
    for_each_param(query, [&](std::string_view key, std::string_view value) {
        if (failure || key != "info_hash") return;
        std::array<uint8_t, 20> hash;
        if (!decode_hash(value, hash)) { failure = "invalid info_hash"; return; }
        // Insertion into a sorted array: capacity is small (max_scrape_torrents) and this keeps
        // the bencoded dictionary's keys sorted and unique without a second pass.
        auto less = [](const chihaya_scrape_entry& e, const std::array<uint8_t, 20>& h) {
            return std::memcmp(e.info_hash, h.data(), 20) < 0;
        };
        chihaya_scrape_entry* pos = std::lower_bound(entries, entries + count, hash, less);
        if (pos != entries + count && std::memcmp(pos->info_hash, hash.data(), 20) == 0) return;
        if (count == capacity) { failure = "too many info_hash in one scrape"; return; }
        std::move_backward(pos, entries + count, entries + count + 1);
        *pos = chihaya_scrape_entry{};
        std::memcpy(pos->info_hash, hash.data(), 20);
        ++count;
    });
    if (failure) count = 0;
    return failure;
}

}  // namespace chihaya::http
