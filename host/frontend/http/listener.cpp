// The HTTP frontend of one worker: an acceptor per listen address, sessions, and stop().
#include "frontend/http/http_frontend.hpp"

#include "net/address.hpp"
#include "frontend/http/session.hpp"
#include "log/log.hpp"
#include "metrics/worker_metrics.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace chihaya {
namespace {

using boost::asio::ip::tcp;
using http::Session;
using http::WorkerState;

// Out of descriptors (EMFILE/ENFILE) the accept fails at once, again and again: pause instead
// of spinning, and log once per streak rather than once per attempt.
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);

class Listener : public std::enable_shared_from_this<Listener> {
public:
    Listener(std::shared_ptr<WorkerState> worker, const ListenAddress& where, std::string text)
        : worker_(std::move(worker)), acceptor_(worker_->io), retry_(worker_->io), text_(std::move(text)) {
        const tcp::endpoint endpoint(where.address, where.port);
        boost::system::error_code ec;
        acceptor_.open(endpoint.protocol(), ec);
        if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) {
            // Every worker binds the same address; the kernel spreads connections among them.
            const int one = 1;
            if (::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
                ec.assign(errno, boost::system::system_category());
        }
        // Without V6ONLY, [::] would also take IPv4 and collide with a 0.0.0.0 listener.
        if (!ec && where.address.is_v6()) acceptor_.set_option(boost::asio::ip::v6_only(true), ec);
        if (!ec) acceptor_.bind(endpoint, ec);
        if (!ec) acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
        if (ec) throw std::runtime_error("http: cannot listen on " + text_ + ": " + ec.message());
    }

    void start() {
        log::debug("http", "listening on " + text_);  // main logs the set once
        accept();
    }

    void stop() {
        boost::system::error_code ec;
        acceptor_.close(ec);
        retry_.cancel();
    }

private:
    void accept() {
        acceptor_.async_accept([self = shared_from_this()](const boost::system::error_code& ec, tcp::socket socket) {
            self->on_accept(ec, std::move(socket));
        });
    }

    void on_accept(const boost::system::error_code& ec, tcp::socket socket) {
        if (!acceptor_.is_open() || worker_->stopping) return;
        if (ec) {
            if (ec == boost::asio::error::operation_aborted) return;
            if (!accept_failing_) log::warning("http", "accept on " + text_ + " failed: " + ec.message());
            accept_failing_ = true;
            retry_.expires_after(kAcceptRetry);
            retry_.async_wait([self = shared_from_this()](const boost::system::error_code& wait_ec) {
                if (!wait_ec) self->accept();
            });
            return;
        }
        accept_failing_ = false;
        admit(std::move(socket));
        accept();
    }

    // Sheds the newest connection when the worker is full (max_connections) or its address
    // already holds its share (max_connections_per_address; trusted proxies are exempt, they
    // speak for many clients). Shedding is a close: no bytes are spent on who is refused.
    void admit(tcp::socket socket) {
        boost::system::error_code ec;
        const auto remote = socket.remote_endpoint(ec);
        if (ec || worker_->sessions.size() >= worker_->config.max_connections) {
            if (!ec) metrics::current().limit(metrics::Limit::HttpConnections);
            socket.close(ec);  // reset before we saw it, or over max_connections
            return;
        }
        const Endpoint client = make_endpoint(remote.address(), remote.port());
        bool counted = false;
        if (!is_trusted(worker_->trusted_proxies, client)) {
            if (!worker_->limits->try_open(client)) {
                metrics::current().limit(metrics::Limit::HttpConnections);
                socket.close(ec);
                return;
            }
            counted = true;
        }
        std::make_shared<Session>(worker_, std::move(socket), client, counted)->start();
    }

    std::shared_ptr<WorkerState> worker_;
    tcp::acceptor acceptor_;
    boost::asio::steady_timer retry_;
    std::string text_;
    bool accept_failing_ = false;
};

}  // namespace

struct HttpFrontend::Impl {
    std::shared_ptr<WorkerState> worker;
    std::vector<std::shared_ptr<Listener>> listeners;
};

std::shared_ptr<http::ConnectionLimits> make_connection_limits(const HttpConfig& config) {
    return std::make_shared<http::ConnectionLimits>(config.max_connections_per_address);
}

HttpFrontend::HttpFrontend(boost::asio::io_context& io, const HttpConfig& config, const Tracker& tracker,
                           std::shared_ptr<http::ConnectionLimits> limits)
    : impl_(std::make_unique<Impl>()) {
    std::vector<TrustedProxy> trusted;
    for (const std::string& text : config.trusted_proxies) {
        auto proxy = parse_trusted_proxy(text);
        if (!proxy) throw std::runtime_error("http: trusted_proxies: not an address or CIDR network: '" + text + "'");
        trusted.push_back(*proxy);
    }
    if (!limits) limits = make_connection_limits(config);
    impl_->worker = std::make_shared<WorkerState>(io, config, tracker, std::move(trusted), std::move(limits));
    for (const std::string& text : config.listen) {
        auto where = parse_listen_address(text);
        if (!where) throw std::runtime_error("http: listen: not host:port or [v6]:port: '" + text + "'");
        impl_->listeners.push_back(std::make_shared<Listener>(impl_->worker, *where, text));
    }
}

HttpFrontend::~HttpFrontend() {
    // Sessions may outlive this (they share WorkerState); acceptors must not keep accepting.
    for (auto& listener : impl_->listeners) listener->stop();
}

void HttpFrontend::start() {
    for (auto& listener : impl_->listeners) listener->start();
}

void HttpFrontend::reconfigure(const HttpConfig& config) {
    std::vector<TrustedProxy> trusted;
    for (const std::string& text : config.trusted_proxies)
        if (auto proxy = parse_trusted_proxy(text)) trusted.push_back(*proxy);
    WorkerState& worker = *impl_->worker;
    const std::vector<std::string> listen = worker.config.listen;
    const bool enabled = worker.config.enabled;
    worker.config = config;
    worker.config.listen = listen;
    worker.config.enabled = enabled;
    worker.trusted_proxies = std::move(trusted);
}

void HttpFrontend::stop() {
    WorkerState& worker = *impl_->worker;
    worker.stopping = true;
    for (auto& listener : impl_->listeners) listener->stop();
    // Closing a socket only queues its handlers, so no session leaves the set during this loop;
    // the copy guards against that changing.
    const std::vector<Session*> sessions(worker.sessions.begin(), worker.sessions.end());
    for (Session* session : sessions) session->shutdown();
}

}  // namespace chihaya
