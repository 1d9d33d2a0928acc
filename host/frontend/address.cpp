// Listen-address parsing for the frontends' configuration.
#include "frontend/address.hpp"

#include <charconv>

namespace chihaya {

std::optional<ListenAddress> parse_listen_address(std::string_view text) {
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return std::nullopt;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return std::nullopt;
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) return std::nullopt;  // v6 needs brackets
    }
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value > 65535) return std::nullopt;
    boost::system::error_code error;
    auto address = boost::asio::ip::make_address(std::string(host), error);
    if (error) return std::nullopt;
    if (text.front() == '[' && !address.is_v6()) return std::nullopt;
    return ListenAddress{address, static_cast<uint16_t>(value)};
}

}  // namespace chihaya
