// Which address an HTTP client is: numeric address parsing, trusted proxies, X-Forwarded-For.
#pragma once

#include "tracker/types.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace chihaya::http {

// A numeric IPv4 or IPv6 address ("1.2.3.4", "::1", "[::1]"); IPv4-mapped IPv6 becomes IPv4, as in
// make_endpoint. Sets family and addr only. False (out untouched) for anything else, hostnames too.
bool parse_address(std::string_view text, Endpoint& out);

// One trusted_proxies entry: an address, or a network in CIDR notation ("10.0.0.0/8").
struct TrustedProxy {
    chihaya_family family = CHIHAYA_IPV4;
    std::array<uint8_t, 16> addr{};
    uint8_t prefix_bits = 32;
};
std::optional<TrustedProxy> parse_trusted_proxy(std::string_view text);
bool is_trusted(std::span<const TrustedProxy> proxies, const Endpoint& peer);

// The client a proxy vouches for: the last element of a comma-separated header such as
// X-Forwarded-For (earlier ones were written by whoever the client is, so they prove nothing).
// False when the header is empty or its last element is not a numeric address.
bool last_forwarded_address(std::string_view header_value, Endpoint& out);

}  // namespace chihaya::http
