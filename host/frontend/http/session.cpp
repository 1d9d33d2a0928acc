// One HTTP connection of a worker: read request heads, call the tracker, write responses, keep-alive.
#include "frontend/http/session.hpp"

#include "net/address.hpp"
#include "frontend/http/bencode.hpp"
#include "frontend/kept_for_driver.hpp"
#include "frontend/http/query.hpp"
#include "frontend/http/request_head.hpp"
#include "log/access_log.hpp"
#include "tracker/tracker.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <sys/ioctl.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <new>
#include <utility>

namespace chihaya::http {
namespace {

constexpr size_t kHeadRoom = 256;            // longest status line + headers we write, with margin
constexpr size_t kInitialReadBuffer = 1024;  // a typical announce head is 300-600 bytes
constexpr size_t kMinHeadCap = 64;
constexpr size_t kShrinkAbove = 256 * 1024;  // a full scrape may grow out_; give that back after
constexpr auto kLingerTimeout = std::chrono::seconds(2);

std::string_view status_line(HttpStatus status) {
    switch (status) {
        case HttpStatus::Ok: return "HTTP/1.1 200 OK\r\n";
        case HttpStatus::BadRequest: return "HTTP/1.1 400 Bad Request\r\n";
        case HttpStatus::NotFound: return "HTTP/1.1 404 Not Found\r\n";
        case HttpStatus::MethodNotAllowed: return "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n";
        case HttpStatus::HeadTooLarge: break;
    }
    return "HTTP/1.1 431 Request Header Fields Too Large\r\n";
}

int status_code(HttpStatus status) {
    switch (status) {
        case HttpStatus::Ok: return 200;
        case HttpStatus::BadRequest: return 400;
        case HttpStatus::NotFound: return 404;
        case HttpStatus::MethodNotAllowed: return 405;
        case HttpStatus::HeadTooLarge: break;
    }
    return 431;
}

// True when the socket's receive queue is empty.
bool nothing_pending(int fd) {
    int pending = 0;
    return ::ioctl(fd, FIONREAD, &pending) == 0 && pending == 0;
}

bool hash_less(const chihaya_scrape_entry& a, const chihaya_scrape_entry& b) {
    return std::memcmp(a.info_hash, b.info_hash, sizeof a.info_hash) < 0;
}

}  // namespace

WorkerState::WorkerState(boost::asio::io_context& io_, const HttpConfig& config_, const Tracker& tracker_,
                         std::vector<TrustedProxy> trusted_proxies_, std::shared_ptr<ConnectionLimits> limits_)
    : io(io_), config(config_), tracker(tracker_), trusted_proxies(std::move(trusted_proxies_)),
      limits(std::move(limits_)) {}

Session::Session(std::shared_ptr<WorkerState> worker, boost::asio::ip::tcp::socket socket, const Endpoint& remote,
                 bool counted)
    : worker_(std::move(worker)),
      executor_(worker_->io.get_executor()),
      socket_(std::move(socket)),
      timer_(worker_->io),
      remote_(remote),
      counted_(counted) {
    worker_->sessions.insert(this);
    remote_is_proxy_ = is_trusted(worker_->trusted_proxies, remote_);
    boost::system::error_code ec;
    // One write per response: Nagle would only delay pipelined answers behind delayed ACKs.
    socket_.set_option(boost::asio::ip::tcp::no_delay(true), ec);
    in_.resize(std::min(kInitialReadBuffer, head_cap()));
}

Session::~Session() {
    worker_->sessions.erase(this);
    if (counted_) worker_->limits->close(remote_);
}

size_t Session::head_cap() const { return std::max<size_t>(worker_->config.max_request_head, kMinHeadCap); }

void Session::start() {
    if (state_ == State::Closed) {
        boost::system::error_code ec;
        socket_.close(ec);
        return;
    }
    next_request();
}

void Session::shutdown() {
    switch (state_) {
        case State::Reading:
        case State::Draining:
            close();
            break;
        case State::Calling:
        case State::Writing:
            keep_alive_ = false;  // answered, then closed by on_write
            break;
        case State::Closed:
            break;
    }
}

// ---- reading --------------------------------------------------------------------------------

void Session::next_request() {
    if (state_ == State::Closed) return;
    // Only bytes not seen before are scanned for the head's end; the head is parsed once, whole.
    const std::string_view bytes(in_.data(), in_len_);
    if (const size_t head_size = scanner_.feed(bytes)) {
        RequestHead head;
        if (parse_request_head(bytes.substr(0, head_size), worker_->config.real_ip_header, head) ==
                HeadParse::Complete &&
            head.size == head_size) {
            consumed_ = head.size;
            handle(head);
            return;
        }
        http11_ = true;
        keep_alive_ = false;
        consumed_ = in_len_;
        respond_text(Status::BadRequest, "malformed request\n");
        return;
    }
    if (worker_->stopping) {
        close();
        return;
    }
    if (in_len_ == in_.size()) {
        if (in_.size() >= head_cap()) {
            http11_ = true;
            keep_alive_ = false;
            consumed_ = in_len_;
            respond_text(Status::HeadTooLarge, "request head too large\n");
            return;
        }
        in_.resize(std::min(in_.size() * 2, head_cap()));
    }
    read();
}

void Session::read() {
    state_ = State::Reading;
    // request_timeout bounds a whole head, counted from its first byte (or from accept for a new
    // connection) and never moved by later reads, so trickling a byte at a time does not keep a
    // connection open (slowloris); idle_timeout is the keep-alive gap between requests.
    if (!head_started_ && (in_len_ > 0 || !served_any_)) {
        head_started_ = true;
        arm_deadline(std::chrono::seconds(worker_->config.request_timeout));
    } else if (!head_started_) {
        arm_deadline(std::chrono::seconds(worker_->config.idle_timeout));
    }
    socket_.async_read_some(boost::asio::buffer(in_.data() + in_len_, in_.size() - in_len_),
                            [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                                self->on_read(ec, n);
                            });
}

void Session::on_read(const boost::system::error_code& ec, size_t n) {
    if (ec || state_ == State::Closed) {
        close();
        return;
    }
    in_len_ += n;
    next_request();
}

// ---- requests -------------------------------------------------------------------------------

void Session::handle(const RequestHead& head) {
    head_started_ = false;  // the next head gets its own request_timeout
    action_ = metrics::Action::Other;
    started_ns_ = metrics::now_ns();
    http11_ = head.http11;
    keep_alive_ = head.keep_alive && !worker_->stopping;
    if (head.has_body) {
        // We do not read bodies, so the next request's start is unknown: close after answering.
        keep_alive_ = false;
        respond_text(Status::BadRequest, "request bodies are not accepted\n");
        return;
    }
    if (head.method != "GET") {
        respond_text(Status::MethodNotAllowed, "only GET is served\n");
        return;
    }
    std::string_view query, passkey;
    switch (route_target(head.target, query, passkey)) {
        case Route::Announce: announce(query, passkey, head); return;
        case Route::Scrape: scrape(query, passkey); return;
        case Route::NotFound: respond_text(Status::NotFound, "not found\n"); return;
    }
}

void Session::announce(std::string_view query, std::string_view passkey, const RequestHead& head) {
    action_ = metrics::Action::Announce;
    worker_->tracker.prefetch_passkey(passkey);  // the user's slot loads while the query is parsed
    AnnounceQuery q;
    if (const char* failure = parse_announce(query, q)) {
        respond_failure(failure);
        return;
    }
    Endpoint peer = remote_;
    if (remote_is_proxy_ && !head.real_ip.empty() && !last_forwarded_address(head.real_ip, peer)) {
        // Going on would put the proxy's own address in the swarm under the client's port.
        respond_failure("unreadable client address from the proxy");
        return;
    }
    const Endpoint client = peer;  // before ip=: what per-client limits key on
    warning_ = nullptr;
    if (worker_->config.allow_ip_param && q.has_ip) {
        peer.family = q.ip.family;
        peer.addr = q.ip.addr;
    } else if (q.has_ip) {
        // Believing ip= would let anyone add any address to a swarm; say why it had no effect.
        warning_ = "ip parameter ignored: peers get the address this request came from";
    }
    peer.port = q.port;

    const TrackerConfig& tc = worker_->tracker.config();
    const uint32_t capacity = std::max<uint32_t>(tc.max_numwant, 1);
    if (peers_.size() < size_t{capacity} * 18) peers_.resize(size_t{capacity} * 18);

    AnnounceRequest& r = announce_call_.request;
    r = AnnounceRequest{};
    r.info_hash = q.info_hash;
    r.peer_id = q.peer_id;
    r.peer = peer;
    r.client = client;
    r.uploaded = q.uploaded;
    r.downloaded = q.downloaded;
    r.left = q.left;
    r.event = q.event;
    r.numwant = q.numwant;
    r.key = q.key;
    r.has_key = q.has_key;
    r.passkey = passkey;
    announce_call_.peers = peers_.data();
    announce_call_.peers_capacity = capacity;
    announce_call_.response = AnnounceResponse{};
    announce_call_.complete = &Session::on_announce_complete;
    announce_call_.owner = this;
    compact_ = q.compact;

    begin_call();
    worker_->tracker.announce(announce_call_);
    await_driver(Awaiting::Announce);
}

void Session::scrape(std::string_view query, std::string_view passkey) {
    action_ = metrics::Action::Scrape;
    const TrackerConfig& tc = worker_->tracker.config();
    if (scrape_entries_.size() < tc.max_scrape_torrents) scrape_entries_.resize(tc.max_scrape_torrents);
    uint32_t count = 0;
    if (const char* failure = parse_scrape(query, scrape_entries_.data(), tc.max_scrape_torrents, count)) {
        respond_failure(failure);
        return;
    }
    if (count == 0) {
        // Full scrape; the tracker refuses it with a failure unless allow_full_scrape.
        full_scrape_.clear();
        full_scrape_failed_ = false;
        begin_call();
        worker_->tracker.scrape_all(&Session::on_full_scrape_visit, this, &Session::on_full_scrape_done, this);
        return;
    }
    // Field by field, not a fresh ScrapeCall{}: its guard's generation tells this scrape's done
    // from a stray one of the previous scrape on this connection (call_guard.hpp).
    scrape_call_.failure = nullptr;
    scrape_call_.entries = scrape_entries_.data();
    scrape_call_.count = count;
    scrape_call_.passkey = passkey;
    scrape_call_.complete = &Session::on_scrape_complete;
    scrape_call_.owner = this;
    begin_call();
    worker_->tracker.scrape(scrape_call_);
    await_driver(Awaiting::Scrape);
}

// ---- completions ----------------------------------------------------------------------------
//
// A tracker call completes exactly once, either inline (memory driver: on_caller_thread, still
// inside Tracker::announce) or from a driver thread. In the second case nothing of the session
// may be touched there except handing the completion to our executor; the call's memory stays
// valid because self_in_call_ keeps the session alive, and work_ keeps io_context::run() from
// returning while the answer is outstanding (stop() relies on that to answer it).
//
// The per-call deadline ([tracker] driver_timeout_ms) is the session's own timer, armed only
// when the call did not complete inline. When it fires first (Tracker::expire), the client gets
// "unavailable" and the connection closes after that answer: the call's memory (announce_call_,
// scrape_call_, peers_, scrape_entries_) stays the driver's until its late done, so it cannot
// serve a next request. self_in_call_ keeps the session (its socket closed) until then; work_ is
// released, the client being answered. Such a session still counts against max_connections and
// its address's share: that bounds what a driver that never completes can pin. A full scrape
// has no deadline: walking every swarm may rightly take long.

void Session::begin_call() {
    state_ = State::Calling;
    disarm_deadline();  // no read or write timeout while the driver holds the call
    self_in_call_ = shared_from_this();
    work_.emplace(executor_);
}

// After the tracker call returned: still Calling means the driver completes later (or already
// did from its thread, and the completion is queued here; expire then says so).
void Session::await_driver(Awaiting call) {
    if (state_ != State::Calling) return;
    awaiting_ = call;
    arm_deadline(std::chrono::milliseconds(worker_->tracker.config().driver_timeout_ms));
}

void Session::on_driver_deadline() {
    disarm_deadline();
    const Awaiting call = std::exchange(awaiting_, Awaiting::Nothing);
    const bool expired = call == Awaiting::Announce ? worker_->tracker.expire(announce_call_)
                         : call == Awaiting::Scrape ? worker_->tracker.expire(scrape_call_)
                                                    : false;
    if (!expired) return;  // the done won: finish_* is queued and answers
    answered_at_deadline_ = true;
    kept_for_driver(this);  // freed by the late done, if one comes
    work_.reset();
    keep_alive_ = false;
    respond_failure(call == Awaiting::Announce ? announce_call_.response.failure : scrape_call_.failure);
}

void Session::complete_on_worker(bool on_caller_thread, void (Session::*finish)()) {
    if (on_caller_thread) {
        (this->*finish)();
        return;
    }
    boost::asio::post(executor_, [self = std::move(self_in_call_), finish] { ((*self).*finish)(); });
}

void Session::on_announce_complete(AnnounceCall* call, bool on_caller_thread) {
    auto* s = static_cast<Session*>(call->owner);
    s->complete_on_worker(on_caller_thread, &Session::finish_announce);
}

void Session::on_scrape_complete(ScrapeCall* call, bool on_caller_thread) {
    auto* s = static_cast<Session*>(call->owner);
    s->complete_on_worker(on_caller_thread, &Session::finish_scrape);
}

int Session::on_full_scrape_visit(void* ctx, const chihaya_scrape_entry* entry) {
    auto* s = static_cast<Session*>(ctx);
    // Called through the driver's C boundary: no exception may escape.
    try {
        // The driver's entry may be of an older (smaller) layout: copy what it covers.
        chihaya_scrape_entry& copy = s->full_scrape_.emplace_back();
        std::memcpy(&copy, entry, std::min<size_t>(entry->struct_size, sizeof copy));
        copy.struct_size = sizeof copy;
        return 1;
    } catch (const std::bad_alloc&) {
        std::strncpy(s->full_scrape_failure_, "full scrape too large", sizeof s->full_scrape_failure_ - 1);
        s->full_scrape_failed_ = true;
        return 0;
    }
}

void Session::on_full_scrape_done(void* ctx, const char* failure, bool on_caller_thread) {
    auto* s = static_cast<Session*>(ctx);
    // The failure text's lifetime is the driver's; copy it while the call is still ours.
    if (failure && !s->full_scrape_failed_) {
        std::strncpy(s->full_scrape_failure_, failure, sizeof s->full_scrape_failure_ - 1);
        s->full_scrape_failed_ = true;
    }
    s->complete_on_worker(on_caller_thread, &Session::finish_full_scrape);
}

void Session::finish_announce() {
    const std::shared_ptr<Session> keep = std::move(self_in_call_);
    work_.reset();
    awaiting_ = Awaiting::Nothing;
    if (std::exchange(answered_at_deadline_, false)) return;  // the late done: nothing to answer
    if (state_ == State::Closed) return;
    AnnounceResponse r = announce_call_.response;
    if (r.failure) {
        respond_failure(r.failure);
        return;
    }
    r.peer_count = std::min(r.peer_count, announce_call_.peers_capacity);
    r.warning = warning_;
    const size_t bound =
        announce_bound(r.peer_count) + (r.warning ? warning_bound(std::strlen(r.warning)) : 0);
    const size_t n = write_announce(body_area(bound), r,
                                    announce_call_.request.peer.family, peers_.data(), compact_);
    send(Status::Ok, n, metrics::Result::Ok);
}

void Session::finish_scrape() {
    const std::shared_ptr<Session> keep = std::move(self_in_call_);
    work_.reset();
    awaiting_ = Awaiting::Nothing;
    if (std::exchange(answered_at_deadline_, false)) return;  // the late done: nothing to answer
    if (state_ == State::Closed) return;
    if (scrape_call_.failure) {
        respond_failure(scrape_call_.failure);
        return;
    }
    const std::span<const chihaya_scrape_entry> entries(scrape_call_.entries, scrape_call_.count);
    send(Status::Ok, write_scrape(body_area(scrape_bound(entries.size())), entries), metrics::Result::Ok);
}

void Session::finish_full_scrape() {
    const std::shared_ptr<Session> keep = std::move(self_in_call_);
    work_.reset();
    if (state_ == State::Closed) return;
    if (full_scrape_failed_) {
        respond_failure(full_scrape_failure_);
    } else {
        std::sort(full_scrape_.begin(), full_scrape_.end(), hash_less);
        send(Status::Ok, write_scrape(body_area(scrape_bound(full_scrape_.size())), full_scrape_),
             metrics::Result::Ok);
    }
    std::vector<chihaya_scrape_entry>().swap(full_scrape_);  // rare and possibly huge: give it back
}

// ---- writing --------------------------------------------------------------------------------

std::span<char> Session::body_area(size_t bound) {
    if (out_.size() < kHeadRoom + bound) out_.resize(kHeadRoom + bound);
    return std::span<char>(out_.data() + kHeadRoom, out_.size() - kHeadRoom);
}

void Session::respond_failure(std::string_view reason) {
    // Only failures pay for classifying (a few string compares).
    const metrics::Result result = failure_class(reason);
    send(Status::Ok, write_failure(body_area(failure_bound(reason.size())), reason), result);
}

void Session::respond_text(Status status, std::string_view text) {
    std::span<char> body = body_area(text.size());
    std::memcpy(body.data(), text.data(), text.size());
    metrics::Result result = metrics::Result::Malformed;
    if (status == Status::NotFound) result = metrics::Result::NotFound;
    if (status == Status::HeadTooLarge) result = metrics::Result::TooLarge;
    send(status, text.size(), result);
}

// The body is already in place after kHeadRoom; the head is written right in front of it so the
// response leaves in one contiguous write.
void Session::send(Status status, size_t body_len, metrics::Result result) {
    {
        metrics::WorkerMetrics& m = metrics::current();
        m.request(metrics::Protocol::Http, action_, result);
        if (action_ == metrics::Action::Announce || action_ == metrics::Action::Scrape) {
            m.latency[size_t(metrics::Protocol::Http)][size_t(action_)].observe(metrics::now_ns() - started_ns_);
            if (result == metrics::Result::TooLarge) m.limit(metrics::Limit::ScrapeTorrents);
        }
        if (status == Status::HeadTooLarge) m.limit(metrics::Limit::RequestHead);
        if (access_log::enabled())
            access_log::request("http", remote_, metrics::name(action_), metrics::name(result), status_code(status));
        action_ = metrics::Action::Other;  // a malformed next head is counted as "other"
    }
    char head[kHeadRoom];
    size_t len = 0;
    auto put = [&](std::string_view s) {
        std::memcpy(head + len, s.data(), s.size());
        len += s.size();
    };
    put(status_line(status));
    put("Content-Type: text/plain\r\nContent-Length: ");
    len = static_cast<size_t>(std::to_chars(head + len, head + sizeof head, body_len).ptr - head);
    put("\r\n");
    if (!keep_alive_) put("Connection: close\r\n");
    else if (!http11_) put("Connection: keep-alive\r\n");
    put("\r\n");

    char* start = out_.data() + kHeadRoom - len;
    std::memcpy(start, head, len);
    state_ = State::Writing;
    served_any_ = true;
    arm_deadline(std::chrono::seconds(worker_->config.idle_timeout));  // a client that never reads
    boost::asio::async_write(socket_, boost::asio::buffer(start, len + body_len),
                             [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                                 self->on_write(ec);
                             });
}

void Session::on_write(const boost::system::error_code& ec) {
    if (ec || state_ == State::Closed) {
        close();
        return;
    }
    // Pipelined bytes after this request move to the front; usually there are none.
    if (consumed_ < in_len_) std::memmove(in_.data(), in_.data() + consumed_, in_len_ - consumed_);
    in_len_ -= std::min(consumed_, in_len_);
    consumed_ = 0;
    scanner_.reset();  // the next head starts at in_[0]
    if (out_.size() > kShrinkAbove) {
        out_.resize(kHeadRoom);
        out_.shrink_to_fit();
    }
    if (!keep_alive_ || worker_->stopping) {
        // Nothing unread, here or in the kernel: closing sends FIN after the response, never the
        // RST that linger() guards against, so its extra read, timer and wake-up are not needed.
        if (in_len_ <= consumed_ && nothing_pending(socket_.native_handle())) close();
        else linger();
        return;
    }
    next_request();
}

// Closing with unread input makes the kernel send RST, which can destroy the response still in
// flight. So: half-close, read and discard until the client closes, briefly.
void Session::linger() {
    state_ = State::Draining;
    boost::system::error_code ec;
    socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
    if (ec) {
        close();
        return;
    }
    arm_deadline(kLingerTimeout);
    drain();
}

void Session::drain() {
    socket_.async_read_some(boost::asio::buffer(in_.data(), in_.size()),
                            [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                                if (ec || self->state_ == State::Closed) self->close();
                                else self->drain();
                            });
}

void Session::close() {
    if (state_ == State::Closed) return;
    state_ = State::Closed;
    boost::system::error_code ec;
    socket_.close(ec);
    timer_.cancel();
}

// ---- timeouts -------------------------------------------------------------------------------
//
// One timer per session. Moving the deadline later (every keep-alive request) does not touch the
// timer: when it fires early it re-arms for the current deadline. Only an earlier deadline
// re-arms it at once.

void Session::arm_deadline(Clock::duration timeout) {
    deadline_ = Clock::now() + timeout;
    if (timer_waiting_ && timer_.expiry() <= deadline_) return;
    timer_.expires_at(deadline_);  // cancels a later wait; its handler sees operation_aborted
    wait_timer();
}

void Session::wait_timer() {
    timer_waiting_ = true;
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
        if (ec == boost::asio::error::operation_aborted) return;
        self->on_timer();
    });
}

void Session::on_timer() {
    if (state_ == State::Closed) {
        timer_waiting_ = false;
        return;
    }
    if (Clock::now() >= deadline_) {
        timer_waiting_ = false;
        if (state_ == State::Calling) on_driver_deadline();  // only armed by await_driver then
        else close();
        return;
    }
    timer_.expires_at(deadline_);
    wait_timer();
}

}  // namespace chihaya::http
