// Parsing of an HTTP tracker request target: route, and the announce / scrape query parameters.
#pragma once

#include "tracker/types.hpp"

#include <chihaya/abi.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace chihaya::http {

enum class Route : uint8_t { Announce, Scrape, NotFound };

// Splits a request target ("/announce?x=y", or absolute-form "http://host/announce?x=y") into its
// route and the raw query (the text after '?', empty when there is none). Private trackers put
// the passkey in the path, "/<passkey>/announce": `passkey` is then that segment, else empty.
Route route_target(std::string_view target, std::string_view& query, std::string_view& passkey);
inline Route route_target(std::string_view target, std::string_view& query) {
    std::string_view passkey;
    return route_target(target, query, passkey);
}

// One announce as the client sent it (BEP 3, BEP 23, BEP 7). The address to hand out is decided
// later (socket, trusted proxy header, or `ip` when allowed), so only the parsed `ip` lives here.
struct AnnounceQuery {
    InfoHash info_hash;
    PeerId peer_id;
    uint16_t port = 0;
    uint64_t uploaded = 0;
    uint64_t downloaded = 0;
    uint64_t left = 0;
    Event event = Event::None;
    int32_t numwant = -1;    // -1: absent; larger values saturate at INT32_MAX (the tracker caps)
    uint32_t key = 0;
    bool has_key = false;
    bool compact = true;     // BEP 23 is the default: every client in use asks for it anyway
    bool no_peer_id = false;
    bool has_ip = false;     // `ip` was present and is a numeric address; `ip.port` stays 0
    Endpoint ip;
};

// Parses the query of an /announce. Returns null on success, otherwise a static client-visible
// failure reason; `out` is then unspecified. Never throws, never allocates.
[[nodiscard]] const char* parse_announce(std::string_view query, AnnounceQuery& out);

// Parses the info_hash parameters of a /scrape into entries[0..count), sorted by hash and without
// duplicates (a bencoded dictionary needs sorted, unique keys). count == 0 asks for a full scrape.
// Returns null on success, otherwise a static client-visible failure reason (more than `capacity`
// distinct hashes is one).
[[nodiscard]] const char* parse_scrape(std::string_view query, chihaya_scrape_entry* entries,
                                       uint32_t capacity, uint32_t& count);

// Percent-decodes `in` (with '+' as a space, as in form encoding) into out[0..cap). Returns the
// decoded length, or -1 on a malformed escape or when the result does not fit in `cap`.
ptrdiff_t percent_decode(std::string_view in, uint8_t* out, size_t cap);

}  // namespace chihaya::http
