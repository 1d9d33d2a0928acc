// Conversions between Asio addresses and the tracker's Endpoint, and listen-address parsing.
#pragma once

#include "tracker/types.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/basic_endpoint.hpp>

#include <optional>
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

}  // namespace chihaya
