// Address parsing shared by the frontends, the tracker and the config loader.
#include "net/address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace chihaya {
namespace {

constexpr size_t kMaxAddressText = 46;  // INET6_ADDRSTRLEN: longest textual IPv6 address + NUL

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

bool parse_address(std::string_view text, Endpoint& out) {
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
    if (text.empty() || text.size() >= kMaxAddressText) return false;
    // inet_pton wants a NUL-terminated string; a stack copy keeps this allocation-free.
    char z[kMaxAddressText];
    std::memcpy(z, text.data(), text.size());
    z[text.size()] = '\0';

    Endpoint e;
    if (text.find(':') == std::string_view::npos) {
        if (inet_pton(AF_INET, z, e.addr.data()) != 1) return false;
        e.family = CHIHAYA_IPV4;
    } else {
        uint8_t v6[16];
        if (inet_pton(AF_INET6, z, v6) != 1) return false;
        static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::memcmp(v6, kMappedPrefix, 12) == 0) {
            e.family = CHIHAYA_IPV4;
            std::memcpy(e.addr.data(), v6 + 12, 4);
        } else {
            e.family = CHIHAYA_IPV6;
            std::memcpy(e.addr.data(), v6, 16);
        }
    }
    out.family = e.family;
    out.addr = e.addr;
    return true;
}

std::optional<TrustedProxy> parse_trusted_proxy(std::string_view text) {
    text = trim(text);
    std::string_view address = text;
    std::optional<unsigned> prefix;
    if (auto slash = text.find('/'); slash != std::string_view::npos) {
        address = text.substr(0, slash);
        std::string_view bits = text.substr(slash + 1);
        unsigned value = 0;
        auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), value);
        if (bits.empty() || ec != std::errc{} || end != bits.data() + bits.size()) return std::nullopt;
        prefix = value;
    }
    Endpoint e;
    if (!parse_address(address, e)) return std::nullopt;
    const unsigned full = e.family == CHIHAYA_IPV4 ? 32 : 128;
    if (prefix && *prefix > full) return std::nullopt;
    TrustedProxy p;
    p.family = e.family;
    p.addr = e.addr;
    p.prefix_bits = static_cast<uint8_t>(prefix.value_or(full));
    return p;
}

bool is_trusted(std::span<const TrustedProxy> proxies, const Endpoint& peer) {
    for (const TrustedProxy& p : proxies) {
        if (p.family != peer.family) continue;
        const unsigned whole = p.prefix_bits / 8;
        const unsigned rest = p.prefix_bits % 8;
        if (std::memcmp(p.addr.data(), peer.addr.data(), whole) != 0) continue;
        if (rest != 0) {
            const uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
            if ((p.addr[whole] & mask) != (peer.addr[whole] & mask)) continue;
        }
        return true;
    }
    return false;
}

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
