// BEP 15 parse/encode over byte spans; the layouts are drawn in codec.hpp.
#include "frontend/udp/codec.hpp"

#include <algorithm>
#include <cstring>

namespace chihaya::udp {
namespace {

uint16_t load16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }
uint32_t load32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint64_t load64(const uint8_t* p) { return (uint64_t{load32(p)} << 32) | load32(p + 4); }

void store32(uint8_t* p, uint32_t v) {
    p[0] = uint8_t(v >> 24);
    p[1] = uint8_t(v >> 16);
    p[2] = uint8_t(v >> 8);
    p[3] = uint8_t(v);
}
void store64(uint8_t* p, uint64_t v) {
    store32(p, uint32_t(v >> 32));
    store32(p + 4, uint32_t(v));
}

}  // namespace

std::string_view fault_message(Fault fault) {
    switch (fault) {
    case Fault::None: return "";
    case Fault::BadProtocolId: return "bad protocol id";
    case Fault::ShortAnnounce: return "malformed announce";
    case Fault::NoInfoHash: return "scrape without info_hash";
    case Fault::UnknownAction: return "unknown action";
    case Fault::BadConnectionId: return "invalid connection id";
    }
    return "malformed packet";
}

std::optional<RequestHeader> parse_header(Bytes packet) {
    if (packet.size() < header_size) return std::nullopt;
    const uint8_t* p = packet.data();
    return RequestHeader{load64(p), load32(p + 8), load32(p + 12)};
}

Fault check_connect(const RequestHeader& header) {
    return header.connection_id == protocol_id ? Fault::None : Fault::BadProtocolId;
}

Fault parse_announce(Bytes packet, const Endpoint& source, AnnounceRequest& out) {
    if (packet.size() < announce_request_size) return Fault::ShortAnnounce;
    const uint8_t* p = packet.data();
    std::memcpy(out.info_hash.bytes.data(), p + 16, 20);
    std::memcpy(out.peer_id.bytes.data(), p + 36, 20);
    out.downloaded = load64(p + 56);
    out.left = load64(p + 64);
    out.uploaded = load64(p + 72);
    // Unknown events count as regular announces (as aquatic does): refusing them would only
    // make a sloppy client retry without telling anyone anything useful.
    uint32_t event = load32(p + 80);
    out.event = event <= CHIHAYA_EVENT_STOPPED ? Event(event) : Event::None;
    // p + 84, the IP field, is deliberately not read (see the header).
    out.key = load32(p + 88);
    out.has_key = out.key != 0;  // the field is always there; clients that have no key send 0
    // -1 is BEP 15's "default"; any other negative value is as meaningless, so it means the same.
    int32_t numwant = int32_t(load32(p + 92));
    out.numwant = numwant < 0 ? -1 : numwant;
    out.peer = source;
    out.peer.port = load16(p + 96);
    out.client = source;
    return Fault::None;
}

std::string_view announce_url_data(Bytes packet, char* out, size_t cap) {
    enum : uint8_t { kEndOfOptions = 0, kNop = 1, kUrlData = 2 };
    size_t n = 0;
    size_t at = announce_request_size;
    while (at < packet.size()) {
        const uint8_t type = packet[at++];
        if (type == kEndOfOptions) break;
        if (type == kNop) continue;
        // URLData and every later option type carry a length byte (BEP 41).
        if (at >= packet.size()) break;
        const size_t len = packet[at++];
        if (len > packet.size() - at) break;
        if (type == kUrlData) {
            const size_t take = std::min(len, cap - n);
            std::memcpy(out + n, packet.data() + at, take);
            n += take;
        }
        at += len;
    }
    return {out, n};
}

void ScrapeHashes::copy_to(uint32_t i, uint8_t (&out)[20]) const {
    std::memcpy(out, first + size_t{i} * 20, 20);
}

Fault parse_scrape(Bytes packet, uint32_t cap, ScrapeHashes& out) {
    size_t whole = packet.size() < header_size ? 0 : (packet.size() - header_size) / 20;
    if (whole == 0) return Fault::NoInfoHash;
    out.first = packet.data() + header_size;
    out.count = uint32_t(std::min<size_t>({whole, cap, max_scrape_hashes}));
    return out.count == 0 ? Fault::NoInfoHash : Fault::None;
}

size_t encode_connect(MutableBytes out, uint32_t transaction_id, uint64_t connection_id) {
    if (out.size() < connect_reply_size) return 0;
    store32(out.data(), uint32_t(Action::Connect));
    store32(out.data() + 4, transaction_id);
    store64(out.data() + 8, connection_id);
    return connect_reply_size;
}

size_t encode_announce_header(MutableBytes out, uint32_t transaction_id,
                              const AnnounceResponse& response) {
    if (out.size() < announce_reply_header_size) return 0;
    uint8_t* p = out.data();
    store32(p, uint32_t(Action::Announce));
    store32(p + 4, transaction_id);
    store32(p + 8, response.interval);
    store32(p + 12, response.incomplete);  // leechers come before seeders on the wire
    store32(p + 16, response.complete);
    return announce_reply_header_size;
}

size_t encode_scrape_reply(MutableBytes out, uint32_t transaction_id,
                           const chihaya_scrape_entry* entries, uint32_t count) {
    size_t size = scrape_reply_header_size + size_t{count} * scrape_reply_entry_size;
    if (out.size() < size) return 0;
    uint8_t* p = out.data();
    store32(p, uint32_t(Action::Scrape));
    store32(p + 4, transaction_id);
    p += scrape_reply_header_size;
    for (uint32_t i = 0; i < count; ++i, p += scrape_reply_entry_size) {
        store32(p, entries[i].complete);
        store32(p + 4, entries[i].downloaded);
        store32(p + 8, entries[i].incomplete);
    }
    return size;
}

size_t encode_error(MutableBytes out, uint32_t transaction_id, std::string_view message,
                    size_t max_size) {
    size_t limit = std::min(out.size(), max_size);
    if (limit < error_header_size) return 0;
    store32(out.data(), uint32_t(Action::Error));
    store32(out.data() + 4, transaction_id);
    size_t text = std::min(message.size(), limit - error_header_size);
    std::memcpy(out.data() + error_header_size, message.data(), text);
    return error_header_size + text;
}

}  // namespace chihaya::udp
