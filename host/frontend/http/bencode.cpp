// Bencoded tracker responses (BEP 3, 23, 7, 48) written into a caller-owned buffer.
#include "frontend/http/bencode.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace chihaya::http {
namespace {

// Appends into a fixed span; the first write that does not fit poisons the rest, so callers
// check once at the end instead of after every token.
class Writer {
public:
    explicit Writer(std::span<char> out) : out_(out) {}

    void raw(std::string_view s) { bytes(s.data(), s.size()); }
    void bytes(const void* p, size_t n) {
        if (!ok_ || out_.size() - pos_ < n) { ok_ = false; return; }
        if (n == 0) return;  // p may be null for an empty peer list
        std::memcpy(out_.data() + pos_, p, n);
        pos_ += n;
    }
    void number(uint64_t v) {
        char digits[20];
        auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
        bytes(digits, static_cast<size_t>(end - digits));
    }
    void integer(uint64_t v) { raw("i"); number(v); raw("e"); }
    void string(const void* p, size_t n) { number(n); raw(":"); bytes(p, n); }
    void string(std::string_view s) { string(s.data(), s.size()); }

    size_t finish() const { return ok_ ? pos_ : 0; }

private:
    std::span<char> out_;
    size_t pos_ = 0;
    bool ok_ = true;
};

// Dictionary keys must be written in byte order: complete < downloaded < incomplete < interval <
// min interval < peers < peers6. Announce and scrape share the first three.
void write_swarm_counts(Writer& w, uint32_t complete, uint32_t downloaded, uint32_t incomplete) {
    w.raw("8:complete");
    w.integer(complete);
    w.raw("10:downloaded");
    w.integer(downloaded);
    w.raw("10:incomplete");
    w.integer(incomplete);
}

}  // namespace

size_t write_announce(std::span<char> out, const AnnounceResponse& response, chihaya_family family,
                      const uint8_t* peers, bool compact) {
    Writer w(out);
    w.raw("d");
    write_swarm_counts(w, response.complete, response.downloaded, response.incomplete);
    w.raw("8:interval");
    w.integer(response.interval);
    w.raw("12:min interval");
    w.integer(response.min_interval);
    const size_t entry = Endpoint::compact_size(family);
    if (compact) {
        w.raw(family == CHIHAYA_IPV4 ? "5:peers" : "6:peers6");
        w.string(peers, entry * response.peer_count);
    } else {
        w.raw("5:peersl");
        const size_t addr_len = entry - 2;
        for (uint32_t i = 0; i < response.peer_count; ++i) {
            const uint8_t* p = peers + i * entry;
            char text[INET6_ADDRSTRLEN];
            inet_ntop(family == CHIHAYA_IPV4 ? AF_INET : AF_INET6, p, text, sizeof text);
            w.raw("d2:ip");
            w.string(std::string_view(text));
            w.raw("4:port");
            w.integer(static_cast<uint16_t>(p[addr_len] << 8 | p[addr_len + 1]));
            w.raw("e");
        }
        w.raw("e");
    }
    if (response.warning) {  // keys stay sorted: "warning message" sorts after "peers"/"peers6"
        w.raw("15:warning message");
        w.string(std::string_view(response.warning));
    }
    w.raw("e");
    return w.finish();
}

size_t write_failure(std::span<char> out, std::string_view reason) {
    Writer w(out);
    w.raw("d14:failure reason");
    w.string(reason);
    w.raw("e");
    return w.finish();
}

size_t write_scrape(std::span<char> out, std::span<const chihaya_scrape_entry> entries) {
    Writer w(out);
    w.raw("d5:filesd");
    for (const chihaya_scrape_entry& e : entries) {
        w.string(e.info_hash, sizeof e.info_hash);
        w.raw("d");
        write_swarm_counts(w, e.complete, e.downloaded, e.incomplete);
        w.raw("e");
    }
    w.raw("ee");
    return w.finish();
}

}  // namespace chihaya::http
