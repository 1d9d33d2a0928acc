// BEP 15 UDP frontend of one worker: its sockets on that worker's event loop.
#pragma once

#include "config/config.hpp"
#include "frontend/udp/connection_id.hpp"

#include <memory>

namespace boost::asio { class io_context; }

namespace chihaya {

class Tracker;

// `io` must be run by exactly one thread: the frontend takes no locks.
//
// Shutdown: post stop() to the worker's thread, then let io.run() return by itself (do not call
// io_context::stop()). Calls a driver still holds keep io.run() from returning until their
// completions have come back or their deadline ([tracker] driver_timeout_ms) has answered them.
// A call answered at its deadline may still be held by the driver, so destroy the drivers first
// (a driver completes what it holds in destroy) and this object after them; should a driver
// still hold a slot then, the destructor leaks the slots rather than free them under it.
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
    // Closes the sockets; must run on the worker's thread (post it there). Replies to calls still
    // in flight are not sent. Idempotent.
    void stop();

    // Live reload: connect_rate and connect_burst take effect for the next connect (listen,
    // enabled, receive_buffer and connection_id_secret are restart settings and are ignored
    // here). Must run on the worker's thread (post it there).
    void reconfigure(const UdpConfig& config);

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace chihaya
