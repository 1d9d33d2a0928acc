// BEP 15 codec: byte layouts of every request and reply, and refusal of malformed packets.
#include "frontend/udp/codec.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

using namespace chihaya;
using namespace chihaya::udp;

namespace {

struct Writer {
    std::vector<uint8_t> bytes;
    Writer& u16(uint16_t v) { return put(v, 2); }
    Writer& u32(uint32_t v) { return put(v, 4); }
    Writer& u64(uint64_t v) { return put(v, 8); }
    Writer& fill(uint8_t first, size_t n) {
        for (size_t i = 0; i < n; ++i) bytes.push_back(uint8_t(first + i));
        return *this;
    }
    Writer& put(uint64_t v, int n) {
        for (int i = n - 1; i >= 0; --i) bytes.push_back(uint8_t(v >> (8 * i)));
        return *this;
    }
};

uint32_t be32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint64_t be64(const uint8_t* p) { return (uint64_t{be32(p)} << 32) | be32(p + 4); }

Endpoint v4_source() {
    Endpoint e;
    e.family = CHIHAYA_IPV4;
    e.addr[0] = 192, e.addr[1] = 0, e.addr[2] = 2, e.addr[3] = 7;
    e.port = 51413;
    return e;
}

std::vector<uint8_t> announce_packet() {
    Writer w;
    w.u64(0x1122334455667788ULL).u32(1).u32(0xCAFEBABE);
    w.fill(0x10, 20);                 // info_hash 0x10..0x23
    w.fill(0x40, 20);                 // peer_id   0x40..0x53
    w.u64(0x0000000100000002ULL);     // downloaded
    w.u64(0x0000000300000004ULL);     // left
    w.u64(0x0000000500000006ULL);     // uploaded
    w.u32(2);                         // event: started
    w.u32(0x0A000001);                // ip 10.0.0.1: must be ignored
    w.u32(0xDEADBEEF);                // key
    w.u32(0xFFFFFFFF);                // num_want -1
    w.u16(6881);                      // port
    return w.bytes;
}

}  // namespace

TEST_CASE("connect request and reply round trip") {
    Writer w;
    w.u64(protocol_id).u32(0).u32(0x01020304);
    REQUIRE(w.bytes.size() == 16);
    auto header = parse_header(w.bytes);
    REQUIRE(header);
    CHECK(header->connection_id == 0x41727101980ULL);
    CHECK(header->action == 0);
    CHECK(header->transaction_id == 0x01020304);
    CHECK(check_connect(*header) == Fault::None);

    // Room to spare: the reply must still be exactly as large as the request (a connect
    // cannot amplify), and nothing past it may be written.
    uint8_t out[32];
    std::memset(out, 0xEE, sizeof out);
    CHECK(encode_connect(out, header->transaction_id, 0xA1B2C3D4E5F60718ULL) == w.bytes.size());
    CHECK(be32(out) == 0);
    CHECK(be32(out + 4) == 0x01020304);
    CHECK(be64(out + 8) == 0xA1B2C3D4E5F60718ULL);
    for (size_t i = 16; i < sizeof out; ++i) CHECK(out[i] == 0xEE);
    uint8_t small[15];
    CHECK(encode_connect(small, 1, 2) == 0);
}

TEST_CASE("wrong protocol magic is refused") {
    Writer w;
    w.u64(protocol_id ^ 1).u32(0).u32(7);
    auto header = parse_header(w.bytes);
    REQUIRE(header);
    CHECK(check_connect(*header) == Fault::BadProtocolId);
}

TEST_CASE("packets shorter than a header are dropped") {
    std::vector<uint8_t> packet(15, 0);
    CHECK_FALSE(parse_header(packet));
    CHECK_FALSE(parse_header(Bytes{}));
    packet.push_back(0);
    CHECK(parse_header(packet));
}

TEST_CASE("announce parse reads every field big-endian and ignores the IP field") {
    auto packet = announce_packet();
    REQUIRE(packet.size() == 98);
    auto header = parse_header(packet);
    REQUIRE(header);
    CHECK(header->connection_id == 0x1122334455667788ULL);
    CHECK(header->action == 1);
    CHECK(header->transaction_id == 0xCAFEBABE);

    AnnounceRequest r;
    REQUIRE(parse_announce(packet, v4_source(), r) == Fault::None);
    for (int i = 0; i < 20; ++i) {
        CHECK(r.info_hash.bytes[i] == 0x10 + i);
        CHECK(r.peer_id.bytes[i] == 0x40 + i);
    }
    CHECK(r.downloaded == 0x0000000100000002ULL);
    CHECK(r.left == 0x0000000300000004ULL);
    CHECK(r.uploaded == 0x0000000500000006ULL);
    CHECK(r.event == Event::Started);
    CHECK(r.key == 0xDEADBEEF);
    CHECK(r.numwant == -1);
    CHECK(r.peer.family == CHIHAYA_IPV4);
    CHECK(r.peer.addr[0] == 192);  // the sender's address, not 10.0.0.1
    CHECK(r.peer.addr[3] == 7);
    CHECK(r.peer.port == 6881);    // the packet's port, not the sender's
}

TEST_CASE("announce numwant and event edge values") {
    auto packet = announce_packet();
    AnnounceRequest r;
    packet[92] = 0, packet[93] = 0, packet[94] = 0, packet[95] = 30;
    REQUIRE(parse_announce(packet, v4_source(), r) == Fault::None);
    CHECK(r.numwant == 30);
    packet[92] = 0x80, packet[95] = 0;  // INT32_MIN
    REQUIRE(parse_announce(packet, v4_source(), r) == Fault::None);
    CHECK(r.numwant == -1);
    packet[83] = 9;  // unknown event
    REQUIRE(parse_announce(packet, v4_source(), r) == Fault::None);
    CHECK(r.event == Event::None);
    packet[83] = 3;
    REQUIRE(parse_announce(packet, v4_source(), r) == Fault::None);
    CHECK(r.event == Event::Stopped);
}

TEST_CASE("truncated announce is refused, longer one (BEP 41 options) accepted") {
    auto packet = announce_packet();
    AnnounceRequest r;
    for (size_t size : {16u, 20u, 97u}) {
        CHECK(parse_announce(Bytes(packet.data(), size), v4_source(), r) == Fault::ShortAnnounce);
    }
    packet.push_back(2);  // an option byte
    CHECK(parse_announce(packet, v4_source(), r) == Fault::None);
}

TEST_CASE("IPv4 announce reply layout") {
    std::vector<uint8_t> out(1452, 0xEE);
    AnnounceResponse response;
    response.interval = 1800;
    response.complete = 5;    // seeders
    response.incomplete = 9;  // leechers
    // The driver would have written two peers at out[20...].
    const uint8_t peers[12] = {1, 2, 3, 4, 0x1A, 0xE1, 5, 6, 7, 8, 0x00, 0x50};
    std::memcpy(out.data() + 20, peers, sizeof peers);
    REQUIRE(encode_announce_header(out, 0x55AA55AA, response) == 20);
    CHECK(be32(out.data()) == 1);
    CHECK(be32(out.data() + 4) == 0x55AA55AA);
    CHECK(be32(out.data() + 8) == 1800);
    CHECK(be32(out.data() + 12) == 9);
    CHECK(be32(out.data() + 16) == 5);
    CHECK(std::memcmp(out.data() + 20, peers, sizeof peers) == 0);  // untouched
    CHECK(announce_reply_size(CHIHAYA_IPV4, 2) == 32);
    CHECK(announce_peer_capacity(1452, CHIHAYA_IPV4) == 238);
    CHECK(announce_peer_capacity(19, CHIHAYA_IPV4) == 0);
}

TEST_CASE("IPv6 announce reply layout") {
    CHECK(announce_reply_size(CHIHAYA_IPV6, 0) == 20);
    CHECK(announce_reply_size(CHIHAYA_IPV6, 3) == 20 + 3 * 18);
    CHECK(announce_peer_capacity(1452, CHIHAYA_IPV6) == 79);
    CHECK(announce_reply_size(CHIHAYA_IPV6, 79) <= 1452);
    CHECK(announce_reply_size(CHIHAYA_IPV6, 80) > 1452);

    Endpoint v6;
    v6.family = CHIHAYA_IPV6;
    v6.addr[0] = 0x20, v6.addr[1] = 0x01, v6.addr[15] = 1;
    auto packet = announce_packet();
    AnnounceRequest r;
    REQUIRE(parse_announce(packet, v6, r) == Fault::None);
    CHECK(r.peer.family == CHIHAYA_IPV6);
    CHECK(r.peer.addr == v6.addr);
    CHECK(r.peer.port == 6881);
}

TEST_CASE("scrape with N hashes, the cap and the reply layout") {
    Writer w;
    w.u64(42).u32(2).u32(0x0BADF00D);
    for (int h = 0; h < 3; ++h) w.fill(uint8_t(h * 20), 20);
    ScrapeHashes hashes;
    REQUIRE(parse_scrape(w.bytes, 74, hashes) == Fault::None);
    REQUIRE(hashes.count == 3);
    chihaya_scrape_entry entries[3]{};
    for (uint32_t i = 0; i < 3; ++i) hashes.copy_to(i, entries[i].info_hash);
    CHECK(entries[0].info_hash[0] == 0);
    CHECK(entries[1].info_hash[0] == 20);
    CHECK(entries[2].info_hash[19] == 59);

    // A trailing partial hash is ignored; a lower cap truncates.
    w.fill(0, 7);
    REQUIRE(parse_scrape(w.bytes, 74, hashes) == Fault::None);
    CHECK(hashes.count == 3);
    REQUIRE(parse_scrape(w.bytes, 2, hashes) == Fault::None);
    CHECK(hashes.count == 2);

    for (uint32_t i = 0; i < 3; ++i) {
        entries[i].complete = 10 + i;
        entries[i].downloaded = 20 + i;
        entries[i].incomplete = 30 + i;
    }
    uint8_t out[8 + 3 * 12];
    REQUIRE(encode_scrape_reply(out, 0x0BADF00D, entries, 3) == sizeof out);
    CHECK(be32(out) == 2);
    CHECK(be32(out + 4) == 0x0BADF00D);
    for (uint32_t i = 0; i < 3; ++i) {
        CHECK(be32(out + 8 + 12 * i) == 10 + i);      // seeders
        CHECK(be32(out + 8 + 12 * i + 4) == 20 + i);  // completed
        CHECK(be32(out + 8 + 12 * i + 8) == 30 + i);  // leechers
    }
    CHECK(encode_scrape_reply(std::span<uint8_t>(out, sizeof out - 1), 1, entries, 3) == 0);
}

TEST_CASE("scrape never reads more than 74 hashes and refuses none") {
    Writer w;
    w.u64(42).u32(2).u32(1);
    w.bytes.resize(16 + 200 * 20);  // far more hashes than the cap
    ScrapeHashes hashes;
    REQUIRE(parse_scrape(w.bytes, 1000, hashes) == Fault::None);
    CHECK(hashes.count == max_scrape_hashes);
    // The reply to the most hashes read fits one datagram and is smaller than the request that
    // asked for them: a scrape cannot amplify either.
    std::vector<chihaya_scrape_entry> entries(hashes.count);
    std::vector<uint8_t> reply(65536);
    size_t reply_size = encode_scrape_reply(reply, 1, entries.data(), hashes.count);
    CHECK(reply_size == 8 + 12 * size_t(hashes.count));
    CHECK(reply_size <= 1452);
    CHECK(reply_size < 16 + 20 * size_t(hashes.count));

    w.bytes.resize(16 + 19);
    CHECK(parse_scrape(w.bytes, 74, hashes) == Fault::NoInfoHash);
    w.bytes.resize(16);
    CHECK(parse_scrape(w.bytes, 74, hashes) == Fault::NoInfoHash);
    w.bytes.resize(36);
    CHECK(parse_scrape(w.bytes, 0, hashes) == Fault::NoInfoHash);
}

TEST_CASE("error packet layout and never larger than the request") {
    std::vector<uint8_t> out(1452);
    std::string_view message = fault_message(Fault::BadConnectionId);
    REQUIRE(message.size() > 8);

    size_t n = encode_error(out, 0x77777777, message, 1452);
    REQUIRE(n == 8 + message.size());
    CHECK(be32(out.data()) == 3);
    CHECK(be32(out.data() + 4) == 0x77777777);
    CHECK(std::string_view(reinterpret_cast<char*>(out.data()) + 8, n - 8) == message);

    // A 16-byte request (the smallest answered) gets at most 16 bytes back.
    for (size_t request : {16u, 17u, 20u, 98u}) {
        size_t size = encode_error(out, 1, message, request);
        CHECK(size <= request);
        CHECK(size == std::min(request, 8 + message.size()));
        CHECK(std::memcmp(out.data() + 8, message.data(), size - 8) == 0);
    }
    CHECK(encode_error(out, 1, message, 7) == 0);
    CHECK(encode_error(std::span<uint8_t>(out.data(), 10), 1, message, 98) == 10);
    for (auto fault : {Fault::BadProtocolId, Fault::ShortAnnounce, Fault::NoInfoHash,
                       Fault::UnknownAction, Fault::BadConnectionId})
        CHECK_FALSE(fault_message(fault).empty());
}
