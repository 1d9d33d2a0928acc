// The admin listener over Boost.Asio: three GET routes, plain text answers, one thread of its own.
//
// It was Poco::Net::HTTPServer. Only linking libPocoNet cost every tracker 1.3 MB of RSS at start
// (the library's pages mapped and relocated at load: 6.2 against 4.9 MB for a program that only
// logs through PocoFoundation), whether [admin] listen was set or not. That was a sixth of the
// tracker's start and what kept its whole-process RSS per peer above opentracker's (bench/run,
// issue 12). The frontends already run on Asio, and the HTTP frontend's request-head parser
// (fuzzed) reads these heads as well as tracker requests.
#include "frontend/admin/admin_server.hpp"

#include "frontend/http/request_head.hpp"
#include "log/log.hpp"
#include "net/address.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace chihaya {
namespace {

using boost::asio::ip::tcp;
using boost::system::error_code;

// The text format's content type, as Prometheus' own client libraries send it.
constexpr const char* kExpositionType = "text/plain; version=0.0.4; charset=utf-8";
constexpr size_t kMaxHead = 8192;                  // a scraper's head is a few hundred bytes
// A request's head must arrive within this of the connection's last answer (or its start), and an
// answer must be taken within this once sent: an idle keep-alive connection closes then, as does
// one trickling a head a byte at a time or never reading what it asked for (32 of those would
// hold every place, and /healthz would go unanswered).
constexpr auto kDeadline = std::chrono::seconds(10);
constexpr auto kLinger = std::chrono::seconds(1);  // reading what is left before a close
constexpr size_t kMaxConnections = 32;             // more at once are closed as they come
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);  // after EMFILE and the like

struct Reply {
    int status;
    const char* reason;
    const char* type;
    std::string body;
    bool close = false;       // Connection: close, then close
    bool keep_alive = false;  // say Connection: keep-alive (HTTP/1.0 closes unless told)
};

Reply route(const AdminHandlers& handlers, const http::RequestHead& head) {
    const std::string_view target = head.target;
    const std::string_view path = target.substr(0, target.find('?'));
    if (head.method != "GET" && head.method != "HEAD")
        return {405, "Method Not Allowed", "text/plain", "only GET\n"};
    try {
        if (path == "/metrics") return {200, "OK", kExpositionType, handlers.metrics()};
        if (path == "/healthz") return {200, "OK", "text/plain", "ok\n"};
        if (path == "/readyz") {
            std::string why;
            const bool ready = handlers.ready(why);
            return {ready ? 200 : 503, ready ? "OK" : "Service Unavailable", "text/plain", why + "\n"};
        }
    } catch (const std::exception& e) {
        log::error("admin", std::string(path) + ": " + e.what());
        return {500, "Internal Server Error", "text/plain", "internal error\n"};
    }
    return {404, "Not Found", "text/plain", "not found: try /metrics, /healthz, /readyz\n"};
}

// One client connection: reads heads (keep-alive, pipelined ones in turn), answers each. Lives on
// the admin thread only; its handlers hold it (shared_from_this).
class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(tcp::socket socket, const AdminHandlers& handlers, size_t& open)
        : socket_(std::move(socket)), idle_(socket_.get_executor()), handlers_(handlers), open_(open) {
        ++open_;
    }
    ~Connection() { --open_; }

    void start() { serve(); }

private:
    // Answers every complete head in the buffer, then reads more.
    void serve() {
        const size_t head_size = scanner_.feed(std::string_view(buffer_.data(), filled_));
        if (head_size == 0) {
            if (filled_ == buffer_.size()) return answer({431, "Request Header Fields Too Large", "text/plain", "head too large\n", true}, false);
            return read();
        }
        http::RequestHead head;
        if (http::parse_request_head(std::string_view(buffer_.data(), head_size), {}, head) != http::HeadParse::Complete)
            return answer({400, "Bad Request", "text/plain", "bad request\n", true}, false);
        Reply reply = route(handlers_, head);
        // A body is never read: the next request's start is unknown, so the connection ends.
        reply.close = reply.close || !head.keep_alive || head.has_body;
        reply.keep_alive = !head.http11 && !reply.close;
        const bool head_only = head.method == "HEAD";
        std::memmove(buffer_.data(), buffer_.data() + head_size, filled_ - head_size);
        filled_ -= head_size;
        scanner_.reset();
        answer(std::move(reply), head_only);
    }

    // One timer bounds whatever the connection waits for: a head, or a reply's write. A wake that
    // was already queued when the deadline moved finds the new expiry in the future and stays.
    void arm(std::chrono::steady_clock::duration after) {
        idle_.expires_after(after);
        idle_.async_wait([self = shared_from_this()](const error_code& ec) {
            if (!ec && self->idle_.expiry() <= std::chrono::steady_clock::now()) self->close_now();
        });
    }

    void read() {
        if (!waiting_) {  // the next head's deadline starts
            waiting_ = true;
            arm(kDeadline);
        }
        socket_.async_read_some(boost::asio::buffer(buffer_.data() + filled_, buffer_.size() - filled_),
                                [self = shared_from_this()](const error_code& ec, size_t n) {
                                    if (ec) return self->close_now();
                                    self->filled_ += n;
                                    self->serve();
                                });
    }

    void answer(Reply reply, bool head_only) {
        out_ = "HTTP/1.1 " + std::to_string(reply.status) + " " + reply.reason + "\r\nContent-Type: " + reply.type +
               "\r\nContent-Length: " + std::to_string(reply.body.size()) + "\r\nCache-Control: no-store\r\n";
        if (reply.status == 405) out_ += "Allow: GET, HEAD\r\n";
        if (reply.close) out_ += "Connection: close\r\n";
        else if (reply.keep_alive) out_ += "Connection: keep-alive\r\n";
        out_ += "\r\n";
        if (!head_only) out_ += reply.body;
        waiting_ = false;  // the deadline now covers the write; the next head gets its own
        arm(kDeadline);
        boost::asio::async_write(socket_, boost::asio::buffer(out_),
                                 [self = shared_from_this(), close = reply.close](const error_code& ec, size_t) {
                                     if (ec) return self->close_now();
                                     if (close) return self->close_after_reply();
                                     self->serve();
                                 });
    }

    // Closing with unread bytes in the socket would send a reset, which may reach the client
    // before the answer it has not read yet (a 400 or 431 after a long head): the write side is
    // shut, and what the client still sends is read and dropped until it closes, for a second.
    void close_after_reply() {
        error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_send, ignored);
        arm(kLinger);
        drain();
    }
    void drain() {
        socket_.async_read_some(boost::asio::buffer(buffer_), [self = shared_from_this()](const error_code& ec, size_t) {
            if (ec) return self->close_now();
            self->drain();
        });
    }

    void close_now() {
        error_code ignored;
        idle_.cancel();
        socket_.close(ignored);
    }

    tcp::socket socket_;
    boost::asio::steady_timer idle_;
    const AdminHandlers& handlers_;
    size_t& open_;
    std::array<char, kMaxHead> buffer_{};
    size_t filled_ = 0;
    bool waiting_ = false;  // for a head, under kDeadline
    http::HeadScanner scanner_;
    std::string out_;
};

}  // namespace

struct AdminServer::Impl {
    explicit Impl(AdminHandlers h) : handlers(std::move(h)) {}

    void accept() {
        acceptor.async_accept([this](const error_code& ec, tcp::socket socket) {
            if (ec == boost::asio::error::operation_aborted || !acceptor.is_open()) return;
            if (ec) {  // out of descriptors and the like: pause rather than spin
                retry.expires_after(kAcceptRetry);
                retry.async_wait([this](const error_code& e) { if (!e) accept(); });
                return;
            }
            accept();  // first: a bad_alloc below must not leave the port unserved
            if (open < kMaxConnections) std::make_shared<Connection>(std::move(socket), handlers, open)->start();
        });
    }

    // Connections refer to `handlers` and `open` until the io_context destroys the last of them:
    // both are declared before it.
    AdminHandlers handlers;
    std::string listen;
    size_t open = 0;  // connections; the admin thread's alone
    boost::asio::io_context io{1};
    tcp::acceptor acceptor{io};
    boost::asio::steady_timer retry{io};
    std::thread thread;
};

AdminServer::AdminServer(const std::string& listen, AdminHandlers handlers)
    : impl_(std::make_unique<Impl>(std::move(handlers))) {
    impl_->listen = listen;
    auto where = parse_listen_address(listen);
    if (!where) throw std::runtime_error("admin: listen: not host:port or [v6]:port: '" + listen + "'");
    const tcp::endpoint endpoint(where->address, where->port);
    tcp::acceptor& acceptor = impl_->acceptor;
    error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && where->address.is_v6()) acceptor.set_option(boost::asio::ip::v6_only(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(64, ec);
    if (ec) throw std::runtime_error("admin: cannot listen on " + listen + ": " + ec.message());
}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() {
    Impl& impl = *impl_;
    impl.accept();
    impl.thread = std::thread([&impl] {
        for (;;) {
            try {
                impl.io.run();
                return;
            } catch (const std::exception& e) {  // a bad_alloc building an answer: keep serving
                log::error("admin", e.what());
            }
        }
    });
    log::info("admin", "serving /metrics, /healthz, /readyz on http://" + impl.listen);
}

// The request being answered finishes first: io_context::stop returns the thread from run()
// between handlers. Open connections go with the io_context.
void AdminServer::stop() {
    if (!impl_ || !impl_->thread.joinable()) return;
    boost::asio::post(impl_->io, [&impl = *impl_] {
        error_code ignored;
        impl.acceptor.close(ignored);
        impl.io.stop();
    });
    impl_->thread.join();
}

}  // namespace chihaya
