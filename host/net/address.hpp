// Addresses as the tracker sees them: Asio addresses to Endpoints, numeric address parsing, listen
// addresses and trusted-proxy networks. Neutral ground: the frontends, the tracker and the config
// loader all use it, so the config accepts exactly what start-up accepts.
#pragma once

#include "tracker/types.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/basic_endpoint.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace chihaya {


// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) become IPv4, so one peer has one identity.
inline Endpoint make_endpoint(const boost::asio::ip::address& address, uint16_t port) {
    Endpoint e;
    e.port = port;
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        auto v4 = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6()).to_bytes();
        std::memcpy(e.addr.data(), v4.data(), 4);
    } else if (address.is_v4()) {
        auto v4 = address.to_v4().to_bytes();
        std::memcpy(e.addr.data(), v4.data(), 4);
    } else {
        e.family = CHIHAYA_IPV6;
        auto v6 = address.to_v6().to_bytes();
        std::memcpy(e.addr.data(), v6.data(), 16);
    }
    return e;
}

// "host:port" or "[v6]:port" with a numeric address. Empty optional when malformed.
struct ListenAddress {
    boost::asio::ip::address address;
    uint16_t port;
};
std::optional<ListenAddress> parse_listen_address(std::string_view text);


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

// A per-client limit's key: the address (an IPv6 client by its /64, since one host holds a whole
// /64) hashed under `seed`, a per-process secret, so nobody can aim two clients at one slot of a
// table keyed by it. Never 0, which tables may use for "unused".
inline uint64_t client_key(const Endpoint& client, uint64_t seed) noexcept {
    auto mix = [](uint64_t x) {  // splitmix64's finalizer
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9ull;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebull;
        return x ^ (x >> 31);
    };
    uint64_t a = 0, b = 0;
    if (client.family == CHIHAYA_IPV4) {
        std::memcpy(&a, client.addr.data(), 4);
    } else {
        std::memcpy(&a, client.addr.data(), 8);  // the /64
        b = 6;
    }
    const uint64_t k = mix(mix(a ^ seed) ^ b);
    return k ? k : 1;
}

}  // namespace chihaya
