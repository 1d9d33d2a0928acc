// rows.hpp: a row of users / torrents / client_whitelist as the ABI struct, or why it is refused.
#pragma once

#include <chihaya/abi.h>

#include <libpq-fe.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace chihaya::postgres {

inline constexpr uint32_t kMaxMultiplier = 100000;  // 100x; larger values are clamped
inline constexpr size_t kMaxPasskey = 64;
inline constexpr size_t kMaxPrefix = 20;

// Columns as selected by sql.hpp (kDeclareUsers / kUsersById):
//   id, passkey, enabled, upload_multiplier, download_multiplier, leech_slots
// On success fills `user` (its passkey points into `result`) and returns nullptr; otherwise
// returns why, in words that never include the passkey.
const char* read_user(const PGresult* result, int row, chihaya_user& user);

// id, encode(info_hash, 'hex'), enabled, upload_multiplier, download_multiplier
const char* read_torrent(const PGresult* result, int row, chihaya_torrent& torrent);

// id, prefix. The duplicate check is the caller's (it needs the other rows).
const char* read_client(const PGresult* result, int row, uint64_t& id, std::string_view& prefix);

uint64_t read_id(const PGresult* result, int row);

}  // namespace chihaya::postgres
