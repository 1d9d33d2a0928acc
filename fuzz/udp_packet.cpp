// Fuzz target: one BEP 15 datagram through every parser a worker runs on it (header, connect,
// announce with BEP 41 URL data and the passkey in it, scrape), and the error encoder's bound.
#include "frontend/udp/codec.hpp"
#include "tracker/passkey.hpp"

#include <cstdlib>

using namespace chihaya;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    udp::Bytes packet(data, size);
    auto header = udp::parse_header(packet);
    if (!header) return 0;
    (void)udp::check_connect(*header);
    Endpoint source;
    source.addr[0] = 127;
    AnnounceRequest request;
    if (udp::parse_announce(packet, source, request) == udp::Fault::None) {
        char url[256];
        std::string_view data_url = udp::announce_url_data(packet, url, sizeof url);
        if (data_url.size() > sizeof url) std::abort();
        std::string_view key = passkey_from_path(data_url.substr(0, data_url.find('?')), "/announce");
        if (key.size() > data_url.size()) std::abort();
    }
    udp::ScrapeHashes hashes;
    if (udp::parse_scrape(packet, udp::max_scrape_hashes, hashes) == udp::Fault::None &&
        hashes.count > udp::max_scrape_hashes)
        std::abort();
    // An error reply never exceeds the request it answers.
    uint8_t reply[1500];
    size_t n = udp::encode_error(reply, header->transaction_id, "invalid connection id", size);
    if (n > size) std::abort();
    return 0;
}
