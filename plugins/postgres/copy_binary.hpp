// copy_binary.hpp: PostgreSQL's binary COPY format, just the field types the batch tables use.
#pragma once

#include <cstdint>
#include <string>

namespace chihaya::postgres::copy_binary {

// Layout (PostgreSQL docs, "COPY ... Binary Format"), all integers big-endian:
//   header   "PGCOPY\n\377\r\n\0", int32 flags = 0, int32 header extension length = 0
//   tuple    int16 field count, then per field int32 byte length (-1 = NULL) and the bytes
//            (int8: 8 bytes, int4: 4 bytes, bytea: raw, timestamptz: int8 microseconds since
//            2000-01-01 00:00 UTC, integer datetimes being the only kind since PostgreSQL 10)
//   trailer  int16 -1
inline void be(std::string& out, uint64_t v, int bytes) {
    for (int shift = (bytes - 1) * 8; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}
inline void header(std::string& out) {
    out.append("PGCOPY\n\377\r\n\0", 11);
    be(out, 0, 4);
    be(out, 0, 4);
}
inline void trailer(std::string& out) { be(out, 0xffff, 2); }
inline void tuple(std::string& out, uint16_t fields) { be(out, fields, 2); }
inline void null(std::string& out) { be(out, 0xffffffff, 4); }
inline void int8(std::string& out, int64_t v) {
    be(out, 8, 4);
    be(out, static_cast<uint64_t>(v), 8);
}
inline void int4(std::string& out, int32_t v) {
    be(out, 4, 4);
    be(out, static_cast<uint32_t>(v), 4);
}
inline void bytea(std::string& out, const uint8_t* data, uint32_t size) {
    be(out, size, 4);
    out.append(reinterpret_cast<const char*>(data), size);
}

// Milliseconds since the Unix epoch, clamped to 9999-12-31 23:59:59.999 UTC: far inside
// timestamptz's range, so a wild clock value is stored as a far future instead of failing the
// batch (and every retry of it) with "timestamp out of range".
inline constexpr uint64_t kMaxUnixMs = 253402300799999;
inline constexpr int64_t kUnixToPostgresEpochMs = 946684800000;  // 1970-01-01 to 2000-01-01
inline void timestamptz(std::string& out, uint64_t unix_ms) {
    const auto ms = static_cast<int64_t>(unix_ms < kMaxUnixMs ? unix_ms : kMaxUnixMs);
    int8(out, (ms - kUnixToPostgresEpochMs) * 1000);
}

}  // namespace chihaya::postgres::copy_binary
