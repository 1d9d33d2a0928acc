// HTTP frontend of one worker: acceptors and keep-alive sessions on that worker's event loop.
#pragma once

#include "config/config.hpp"

#include <memory>

namespace boost::asio { class io_context; }

namespace chihaya {

class Tracker;
namespace http { class ConnectionLimits; }

// The per-address connection count every worker's HttpFrontend shares (one per process).
std::shared_ptr<http::ConnectionLimits> make_connection_limits(const HttpConfig& config);

class HttpFrontend {
public:
    // Opens one SO_REUSEPORT acceptor per configured listen address on `io` (IPv6 ones are
    // IPV6_V6ONLY). Throws std::runtime_error naming the address when one cannot be bound.
    // `tracker` must outlive every connection: keep it until io.run() has returned.
    // `limits`: from make_connection_limits, the same for every worker (null: this worker's own).
    HttpFrontend(boost::asio::io_context& io, const HttpConfig& config, const Tracker& tracker,
                 std::shared_ptr<http::ConnectionLimits> limits = nullptr);
    // Closes the acceptors; run it on the worker's thread or after io.run() has returned. Sessions
    // still queued in `io` stay valid (they share their state), so `io` may be destroyed later.
    ~HttpFrontend();
    HttpFrontend(const HttpFrontend&) = delete;
    HttpFrontend& operator=(const HttpFrontend&) = delete;

    void start();  // begins accepting; call before io.run()
    // Stops accepting and closes idle connections; a request being answered is answered and then
    // its connection closed. Must run on the worker's thread (post it there). io.run() returns once
    // the last connection is gone: a tracker call still in flight holds work on `io` until its
    // answer is written, by its completion or at its deadline ([tracker] driver_timeout_ms). A
    // session answered at its deadline stays allocated, unreachable, until the driver's late done
    // (leaked if none comes): the driver may still write into it.
    void stop();

    // Live reload: timeouts, max_connections, max_request_head, trusted proxies and the real-IP
    // settings take effect for the next request (listen and enabled are restart settings and
    // are ignored here). Must run on the worker's thread (post it there); `config` is valid
    // (config/load.cpp checked it).
    void reconfigure(const HttpConfig& config);

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace chihaya
