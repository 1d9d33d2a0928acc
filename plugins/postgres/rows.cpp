// rows.cpp: row validation: a bad row is refused with a reason, never a crash or a clamp to junk.
#include "rows.hpp"

#include "connection.hpp"

#include <charconv>

namespace chihaya::postgres {

namespace {

int64_t to_int(std::string_view text) {
    int64_t v = 0;
    std::from_chars(text.data(), text.data() + text.size(), v);
    return v;
}

// Multipliers are per mille; negative ones mean nothing, above 100x is almost certainly a typo
// but still clamped rather than refused: the row is otherwise fine.
uint32_t multiplier(std::string_view text) {
    int64_t v = to_int(text);
    if (v < 0) return 0;
    if (v > kMaxMultiplier) return kMaxMultiplier;
    return static_cast<uint32_t>(v);
}

bool passkey_char(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-';
}

int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

uint64_t read_id(const PGresult* result, int row) {
    return static_cast<uint64_t>(to_int(text(result, row, 0)));
}

const char* read_user(const PGresult* r, int row, chihaya_user& user) {
    user = {};
    user.struct_size = sizeof user;
    user.id = read_id(r, row);
    if (is_null(r, row, 1)) return "passkey is NULL";
    std::string_view passkey = text(r, row, 1);
    if (passkey.empty()) return "passkey is empty";
    if (passkey.size() > kMaxPasskey) return "passkey is longer than 64 bytes";
    for (char c : passkey)
        if (!passkey_char(c)) return "passkey has a character outside [0-9A-Za-z_-]";
    user.passkey = {passkey.data(), passkey.size()};
    user.flags = text(r, row, 2) == "t" ? CHIHAYA_ENABLED : 0;
    user.upload_multiplier = multiplier(text(r, row, 3));
    user.download_multiplier = multiplier(text(r, row, 4));
    int64_t slots = to_int(text(r, row, 5));
    user.leech_slots = slots < 0 ? 0 : slots > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(slots);
    return nullptr;
}

const char* read_torrent(const PGresult* r, int row, chihaya_torrent& torrent) {
    torrent = {};
    torrent.struct_size = sizeof torrent;
    torrent.id = read_id(r, row);
    if (is_null(r, row, 1)) return "info_hash is NULL";
    std::string_view h = text(r, row, 1);  // encode(info_hash, 'hex'): whatever bytea_output is
    if (h.size() != 40) return "info_hash is not 20 bytes";
    for (size_t i = 0; i < 20; ++i) {
        int hi = hex(h[2 * i]), lo = hex(h[2 * i + 1]);
        if (hi < 0 || lo < 0) return "info_hash is not hex-encoded";
        torrent.info_hash[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    torrent.flags = text(r, row, 2) == "t" ? CHIHAYA_ENABLED : 0;
    torrent.upload_multiplier = multiplier(text(r, row, 3));
    torrent.download_multiplier = multiplier(text(r, row, 4));
    return nullptr;
}

const char* read_client(const PGresult* r, int row, uint64_t& id, std::string_view& prefix) {
    id = read_id(r, row);
    if (is_null(r, row, 1)) return "prefix is NULL";
    prefix = text(r, row, 1);
    if (prefix.empty()) return "prefix is empty";
    if (prefix.size() > kMaxPrefix) return "prefix is longer than 20 bytes";
    return nullptr;
}

}  // namespace chihaya::postgres
