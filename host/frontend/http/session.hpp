// One HTTP connection of a worker (keep-alive, head cap, timeouts), and the state its worker shares.
// Included only by listener.cpp and session.cpp: it is where Asio enters the HTTP frontend.
#pragma once

#include "config/config.hpp"
#include "frontend/http/client_address.hpp"
#include "metrics/worker_metrics.hpp"
#include "frontend/http/connection_limits.hpp"
#include "frontend/http/request_head.hpp"
#include "tracker/types.hpp"

#include <chihaya/abi.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace chihaya {
class Tracker;
}

namespace chihaya::http {

class Session;

// The statuses this frontend answers with; tracker-level failures are 200 with a bencoded reason.
enum class HttpStatus : uint8_t { Ok, BadRequest, NotFound, MethodNotAllowed, HeadTooLarge };

// Everything the sessions and acceptors of one worker share. Single-threaded: only the worker's
// thread touches it. Held by shared_ptr from every session so that a session whose completion is
// still queued when the HttpFrontend goes away stays safe.
struct WorkerState {
    WorkerState(boost::asio::io_context& io, const HttpConfig& config, const Tracker& tracker,
                std::vector<TrustedProxy> trusted_proxies, std::shared_ptr<ConnectionLimits> limits);

    boost::asio::io_context& io;
    HttpConfig config;
    const Tracker& tracker;
    std::vector<TrustedProxy> trusted_proxies;
    std::shared_ptr<ConnectionLimits> limits;  // per client address, shared by every worker
    std::unordered_set<Session*> sessions;  // live sessions: max_connections and stop()
    bool stopping = false;
};

class Session : public std::enable_shared_from_this<Session> {
public:
    // `counted`: the listener counted `remote` in worker->limits; the session gives it back.
    Session(std::shared_ptr<WorkerState> worker, boost::asio::ip::tcp::socket socket, const Endpoint& remote,
            bool counted);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    void start();
    // The frontend is stopping: close now when idle, or after answering the request in hand.
    void shutdown();

private:
    using Clock = std::chrono::steady_clock;
    enum class State : uint8_t { Reading, Calling, Writing, Draining, Closed };
    using Status = HttpStatus;

    void next_request();
    void read();
    void on_read(const boost::system::error_code& ec, size_t n);
    void handle(const RequestHead& head);
    void announce(std::string_view query, std::string_view passkey, const RequestHead& head);
    void scrape(std::string_view query, std::string_view passkey);

    static void on_announce_complete(AnnounceCall* call, bool on_caller_thread);
    static void on_scrape_complete(ScrapeCall* call, bool on_caller_thread);
    static int on_full_scrape_visit(void* ctx, const chihaya_scrape_entry* entry);
    static void on_full_scrape_done(void* ctx, const char* failure, bool on_caller_thread);
    enum class Awaiting : uint8_t { Nothing, Announce, Scrape };
    void begin_call();
    void await_driver(Awaiting call);
    void on_driver_deadline();
    void complete_on_worker(bool on_caller_thread, void (Session::*finish)());
    void finish_announce();
    void finish_scrape();
    void finish_full_scrape();

    size_t head_cap() const;
    std::span<char> body_area(size_t bound);
    void respond_failure(std::string_view reason);
    void respond_text(Status status, std::string_view text);
    void send(Status status, size_t body_len, metrics::Result result);
    void on_write(const boost::system::error_code& ec);
    void linger();
    void drain();
    void close();

    void arm_deadline(Clock::duration timeout);
    void disarm_deadline() { deadline_ = Clock::time_point::max(); }
    void wait_timer();
    void on_timer();

    std::shared_ptr<WorkerState> worker_;
    boost::asio::io_context::executor_type executor_;
    boost::asio::ip::tcp::socket socket_;
    boost::asio::steady_timer timer_;
    Clock::time_point deadline_ = Clock::time_point::max();
    bool timer_waiting_ = false;

    Endpoint remote_;               // socket address, v4-mapped already IPv4
    bool remote_is_proxy_ = false;  // remote_ is in trusted_proxies
    bool counted_ = false;          // remote_ holds one of its per-address connections
    State state_ = State::Reading;
    bool keep_alive_ = true;        // of the request being answered
    bool http11_ = true;
    bool head_started_ = false;     // a request head is being read; its deadline is fixed
    bool served_any_ = false;       // idle_timeout applies between requests, request_timeout before the first
    bool compact_ = true;
    const char* warning_ = nullptr;  // "warning message" for the announce in flight
    metrics::Action action_ = metrics::Action::Other;  // of the request being answered
    uint64_t started_ns_ = 0;       // when its head was complete
    size_t consumed_ = 0;           // bytes of in_ that belong to the request being answered
    HeadScanner scanner_;           // how far in_ has been searched for the end of the head

    // Buffers grow to what the connection needs once, then are reused for every request.
    std::vector<char> in_;
    size_t in_len_ = 0;
    std::vector<char> out_;         // kHeadRoom bytes for the status line and headers, then the body
    std::vector<uint8_t> peers_;    // max_numwant entries of 18 bytes
    std::vector<chihaya_scrape_entry> scrape_entries_;
    std::vector<chihaya_scrape_entry> full_scrape_;
    char full_scrape_failure_[CHIHAYA_MESSAGE_CAP] = {};
    bool full_scrape_failed_ = false;

    // A call in flight: the session keeps itself alive and the io_context running until the
    // completion has been handled on this worker's thread.
    Awaiting awaiting_ = Awaiting::Nothing;  // the call that went asynchronous, until it is answered
    bool answered_at_deadline_ = false;      // expired: its late completion only lets go
    AnnounceCall announce_call_;
    ScrapeCall scrape_call_;
    std::shared_ptr<Session> self_in_call_;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
};

}  // namespace chihaya::http
