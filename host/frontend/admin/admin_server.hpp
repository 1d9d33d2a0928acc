// The admin listener: /metrics (Prometheus text), /healthz (alive), /readyz (drivers ready).
//
// Off the hot path by design: its own thread and io_context, never the workers' event loops, and
// its own address ([admin] listen), normally loopback. A scrape reads the workers' counters
// without stopping them (metrics/worker_metrics.hpp). At most 32 connections at once; a request
// head must arrive within 10 s (an idle keep-alive connection closes then).
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace chihaya {

struct AdminHandlers {
    std::function<std::string()> metrics;  // the exposition text
    // True when the drivers can serve; `why` says what is not ready (or "ready").
    std::function<bool(std::string& why)> ready;
};

class AdminServer {
public:
    // Binds `listen` (host:port or [v6]:port). Throws std::runtime_error naming it on failure.
    AdminServer(const std::string& listen, AdminHandlers handlers);
    ~AdminServer();  // stops, waiting for a request in progress
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    void start();  // serves from a thread of its own
    void stop();   // lets the answer in progress finish, then closes every connection

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace chihaya
