// The postgres driver's binary COPY encoding (plugins/postgres/copy_binary.hpp): exact bytes.
#include "copy_binary.hpp"

#include <doctest/doctest.h>

#include <string>

namespace cb = chihaya::postgres::copy_binary;

namespace {

std::string hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 15]);
    }
    return out;
}

}  // namespace

TEST_CASE("header, tuple and trailer are PostgreSQL's framing") {
    std::string out;
    cb::header(out);
    cb::tuple(out, 14);
    cb::trailer(out);
    CHECK(hex(out) == "5047434f50590aff0d0a00" "00000000" "00000000" "000e" "ffff");
}

TEST_CASE("integers are length-prefixed big-endian") {
    std::string out;
    cb::int8(out, -2);
    cb::int4(out, 0x01020304);
    CHECK(hex(out) == "00000008fffffffffffffffe" "0000000401020304");
}

TEST_CASE("NULL is a length of -1 and no bytes") {
    std::string out;
    cb::null(out);
    CHECK(hex(out) == "ffffffff");
}

TEST_CASE("bytea is its length and the raw bytes") {
    const uint8_t id[3] = {0x2d, 0x00, 0xff};
    std::string out;
    cb::bytea(out, id, 3);
    CHECK(hex(out) == "000000032d00ff");
}

TEST_CASE("timestamptz is microseconds since 2000-01-01 UTC, clamped to year 9999") {
    std::string out;
    cb::timestamptz(out, 946684800000);  // 2000-01-01 00:00:00 UTC
    CHECK(hex(out) == "000000080000000000000000");
    out.clear();
    cb::timestamptz(out, 946684800001);  // one millisecond later: 1000 us
    CHECK(hex(out) == "0000000800000000000003e8");
    out.clear();
    cb::timestamptz(out, 0);  // 1970: before PostgreSQL's epoch, negative
    CHECK(hex(out) == "00000008fffca2fec4c82000");  // -946684800000000
    out.clear();
    cb::timestamptz(out, UINT64_MAX);
    std::string max;
    cb::timestamptz(max, cb::kMaxUnixMs);
    CHECK(out == max);
    CHECK(hex(max) == "000000080380e70b913b7c18");  // 9999-12-31 23:59:59.999: 252455615999999000 us
}
