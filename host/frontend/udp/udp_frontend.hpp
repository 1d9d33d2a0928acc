// BEP 15 UDP frontend of one worker: its sockets on that worker's event loop.
#pragma once

#include "config/config.hpp"
#include "frontend/udp/connection_id.hpp"

#include <memory>

namespace boost::asio { class io_context; }

namespace chihaya {

class Tracker;

class UdpFrontend {
public:
    // Opens one SO_REUSEPORT socket per configured listen address on `io` (IPv6 sockets are
    // IPV6_V6ONLY). Throws std::runtime_error naming the address when one cannot be bound.
    // `tracker` and `key` must outlive this object.
    UdpFrontend(boost::asio::io_context& io, const UdpConfig& config, const Tracker& tracker,
                const ConnectionIdKey& key);
    ~UdpFrontend();
    UdpFrontend(const UdpFrontend&) = delete;
    UdpFrontend& operator=(const UdpFrontend&) = delete;

    void start();  // begins receiving; call from any thread before io.run()
    void stop();   // closes the sockets; must run on the worker's thread (post it there)

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace chihaya
