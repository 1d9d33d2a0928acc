// BEP 15 wire format: pure parse/encode functions over byte spans, no I/O and no allocation.
//
// Every integer on the wire is big-endian. Layouts (byte offsets):
//   request header   0 connection_id u64 | 8 action u32 | 12 transaction_id u32         (16)
//   connect reply    0 action=0 | 4 transaction_id | 8 connection_id u64                (16)
//   announce request header | 16 info_hash[20] | 36 peer_id[20] | 56 downloaded u64 |
//                    64 left u64 | 72 uploaded u64 | 80 event u32 | 84 ip u32 | 88 key u32 |
//                    92 num_want i32 | 96 port u16                                      (98)
//   announce reply   0 action=1 | 4 transaction_id | 8 interval | 12 leechers | 16 seeders |
//                    20 peers: 6 bytes each (IPv4 addr + port) or 18 (IPv6 addr + port)
//   scrape request   header | 16 info_hash[20] * N
//   scrape reply     0 action=2 | 4 transaction_id | 8 (seeders, completed, leechers) * N
//   error reply      0 action=3 | 4 transaction_id | 8 message (no terminator)
#pragma once

#include "tracker/types.hpp"

#include <chihaya/abi.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace chihaya::udp {

using Bytes = std::span<const uint8_t>;
using MutableBytes = std::span<uint8_t>;

inline constexpr uint64_t protocol_id = 0x41727101980ULL;  // a connect's connection_id field

enum class Action : uint32_t { Connect = 0, Announce = 1, Scrape = 2, Error = 3 };

inline constexpr size_t header_size = 16;
inline constexpr size_t connect_reply_size = 16;
inline constexpr size_t announce_request_size = 98;
inline constexpr size_t announce_reply_header_size = 20;
inline constexpr size_t scrape_reply_header_size = 8;
inline constexpr size_t scrape_reply_entry_size = 12;
inline constexpr size_t error_header_size = 8;
// The usual BEP 15 ceiling: 74 hashes make a 1496-byte request, about what one MTU carries.
inline constexpr uint32_t max_scrape_hashes = 74;

struct RequestHeader {
    uint64_t connection_id = 0;
    uint32_t action = 0;  // raw: an unknown value must still be answered with an error
    uint32_t transaction_id = 0;
};

// Why a request is refused; each has a client-visible message (fault_message).
enum class Fault : uint8_t {
    None,
    BadProtocolId,     // connect without the magic 0x41727101980
    ShortAnnounce,     // fewer than 98 bytes
    NoInfoHash,        // scrape with no whole info_hash
    UnknownAction,
    BadConnectionId,   // forged, expired, or issued to another address
};
std::string_view fault_message(Fault fault);

// The 16-byte header, or nothing when the packet is shorter: without a transaction id there is
// no one to answer, so such packets are dropped silently.
std::optional<RequestHeader> parse_header(Bytes packet);

Fault check_connect(const RequestHeader& header);

// Fills `out` from an announce packet. The peer is `source` (the datagram's sender) with the
// packet's port: the packet's IP field is ignored, because believing it would let anyone add a
// victim's address to swarms. Bytes past 98 (BEP 41 options) are ignored.
Fault parse_announce(Bytes packet, const Endpoint& source, AnnounceRequest& out);

// BEP 41 URL data of an announce (the options after byte 98): the URLData payloads concatenated
// into out[0..cap), e.g. "/<passkey>/announce?x=y". Empty when there is none; options beyond
// `cap` bytes are cut. Malformed options end the parse (what was read so far is kept).
std::string_view announce_url_data(Bytes packet, char* out, size_t cap);

// The info_hashes of a scrape, a view into the packet: at most `cap` (and never more than
// max_scrape_hashes); further hashes and a trailing partial hash are ignored.
struct ScrapeHashes {
    const uint8_t* first = nullptr;
    uint32_t count = 0;
    void copy_to(uint32_t i, uint8_t (&out)[20]) const;
};
Fault parse_scrape(Bytes packet, uint32_t cap, ScrapeHashes& out);

// Encoders return the bytes written, or 0 when `out` is too small.
size_t encode_connect(MutableBytes out, uint32_t transaction_id, uint64_t connection_id);
// The 20-byte header in front of peers the driver already wrote at out[20...].
size_t encode_announce_header(MutableBytes out, uint32_t transaction_id,
                              const AnnounceResponse& response);
constexpr size_t announce_reply_size(chihaya_family family, uint32_t peer_count) {
    return announce_reply_header_size + size_t{peer_count} * Endpoint::compact_size(family);
}
// Peers of `family` that fit behind the header in a reply of `reply_cap` bytes.
constexpr uint32_t announce_peer_capacity(size_t reply_cap, chihaya_family family) {
    return reply_cap < announce_reply_header_size
               ? 0
               : uint32_t((reply_cap - announce_reply_header_size) / Endpoint::compact_size(family));
}
size_t encode_scrape_reply(MutableBytes out, uint32_t transaction_id,
                           const chihaya_scrape_entry* entries, uint32_t count);
// An error reply no longer than min(out.size(), max_size): the message is cut to fit, so an
// unauthenticated sender never gets back more bytes than it sent. 0 when even the header does
// not fit.
size_t encode_error(MutableBytes out, uint32_t transaction_id, std::string_view message,
                    size_t max_size);

}  // namespace chihaya::udp
