// Bencoded tracker responses (BEP 3, 23, 7, 48) written into a caller-owned buffer.
#pragma once

#include "tracker/types.hpp"

#include <chihaya/abi.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace chihaya::http {

// Every writer returns the bytes written, or 0 when `out` is too small (then the content of `out`
// is unspecified). No valid bencoded response is empty, so 0 is never ambiguous.

// Announce success. `peers` holds response.peer_count compact entries of `family` (6 bytes for
// IPv4, 18 for IPv6), as the driver wrote them. compact: BEP 23 byte string under "peers" for an
// IPv4 requester, BEP 7 "peers6" for an IPv6 one. Otherwise the BEP 3 dictionary model: "peers"
// as a list of {"ip", "port"} ("peer id" is omitted: the driver hands out compact entries only).
// A non-null response.warning adds "warning message" (its length counts against `out`).
size_t write_announce(std::span<char> out, const AnnounceResponse& response, chihaya_family family,
                      const uint8_t* peers, bool compact);

// d14:failure reason<len>:<reason>e
size_t write_failure(std::span<char> out, std::string_view reason);

// BEP 48: d5:filesd<20-byte hash>d8:completei..e10:downloadedi..e10:incompletei..eee...ee.
// `entries` must be sorted by info_hash without duplicates (bencoded dictionaries require it).
size_t write_scrape(std::span<char> out, std::span<const chihaya_scrape_entry> entries);

// Upper bounds for sizing buffers once, up front.
constexpr size_t kAnnounceFixedBound = 160;  // the dictionary without peers, all numbers at max
constexpr size_t kDictPeerBound = 72;        // d2:ip<len>:<text>4:porti65535ee, longest IPv6 text
constexpr size_t kScrapeEntryBound = 100;    // 20:<hash>d8:complete...e with 32-bit counts
constexpr size_t kScrapeFixedBound = 16;
constexpr size_t announce_bound(uint32_t peer_count) {
    return kAnnounceFixedBound + size_t{peer_count} * kDictPeerBound;
}
constexpr size_t scrape_bound(size_t count) { return kScrapeFixedBound + count * kScrapeEntryBound; }
constexpr size_t failure_bound(size_t reason_len) { return 32 + reason_len; }
constexpr size_t warning_bound(size_t warning_len) { return 24 + warning_len; }  // on top of announce_bound

}  // namespace chihaya::http
