// Fuzz target: bytes as an HTTP client sends them, through the head scanner (fed in two pieces,
// as TCP may split them), the head parser, the route (passkey), the announce and scrape query
// parsers, and the trusted-proxy header reader.
#include "frontend/http/client_address.hpp"
#include "frontend/http/query.hpp"
#include "frontend/http/request_head.hpp"

#include <cstdlib>
#include <vector>

using namespace chihaya;
using namespace chihaya::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    HeadScanner scanner;
    const size_t half = size / 2;
    size_t end = scanner.feed(bytes.substr(0, half));
    if (end == 0) end = scanner.feed(bytes);
    if (end > size) std::abort();
    RequestHead head;
    if (parse_request_head(bytes, "X-Forwarded-For", head) != HeadParse::Complete) return 0;
    if (head.size > size) std::abort();
    std::string_view query, passkey;
    Route route = route_target(head.target, query, passkey);
    if (route == Route::Announce) {
        AnnounceQuery q;
        (void)parse_announce(query, q);
    } else if (route == Route::Scrape) {
        std::vector<chihaya_scrape_entry> entries(64);
        uint32_t count = 0;
        if (!parse_scrape(query, entries.data(), 64, count) && count > 64) std::abort();
    }
    Endpoint client;
    (void)last_forwarded_address(head.real_ip, client);
    return 0;
}
