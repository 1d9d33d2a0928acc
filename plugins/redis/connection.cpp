// connection.cpp: one hiredis async context on Asio: handshake, pipelining, timeouts, reconnect.
#include "connection.hpp"

#include "asio_adapter.hpp"
#include "resp.hpp"

#include <boost/asio/post.hpp>

#include <charconv>
#include <stdexcept>

namespace chihaya::redis {

namespace {

constexpr std::chrono::milliseconds kBackoffMin{100};
constexpr std::chrono::milliseconds kBackoffMax{2000};

Connection* owner(const redisAsyncContext* ac) { return static_cast<Connection*>(ac->data); }

}  // namespace

Endpoint parse_endpoint(std::string_view text) {
    Endpoint e;
    e.text = std::string(text);
    if (text.starts_with("unix:")) {
        e.unix_path = std::string(text.substr(5));
        if (e.unix_path.empty() || e.unix_path[0] != '/')
            throw std::invalid_argument("redis address \"" + e.text + "\": unix socket path must be absolute");
        return e;
    }
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
        throw std::invalid_argument("redis address \"" + e.text + "\": expected host:port or unix:/path");
    std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
    if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    int p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p <= 0 || p > 65535)
        throw std::invalid_argument("redis address \"" + e.text + "\": bad port");
    e.host = std::string(host);
    e.port = p;
    return e;
}

Connection::Connection(asio::io_context& io, Endpoint endpoint, const ConnectionOptions& options,
                       const chihaya::Host& log)
    : io_(io),
      endpoint_(std::move(endpoint)),
      options_(options),
      log_(log),
      message_prefix_("redis " + endpoint_.text + ": "),
      connect_timer_(io),
      command_timer_(io),
      retry_timer_(io),
      resolver_(io) {}

Connection::~Connection() {
    // shutdown() ran on the I/O thread before; this is the last line of defence.
    if (ctx_) {
        ctx_->data = nullptr;
        redisAsyncContext* c = ctx_;
        ctx_ = nullptr;
        c->onDisconnect = nullptr;
        redisAsyncFree(c);
    }
}

void Connection::start() {
    asio::post(io_, [this] { connect(); });
}

void Connection::submit(Command* command) noexcept {
    if (!ready()) {
        command->on_failure((message_prefix_ + "not connected").c_str());
        return;
    }
    const uint32_t weight = command->weight;
    if (in_flight_.fetch_add(weight, std::memory_order_acq_rel) + weight > options_.max_in_flight &&
        weight <= options_.max_in_flight) {
        in_flight_.fetch_sub(weight, std::memory_order_acq_rel);
        command->on_failure((message_prefix_ + "too many requests in flight").c_str());
        return;
    }
    bool post_now = false;
    try {
        std::lock_guard lock(submit_mutex_);
        submitted_.push_back(command);
        post_now = !drain_posted_;
        drain_posted_ = true;
    } catch (...) {
        in_flight_.fetch_sub(weight, std::memory_order_acq_rel);
        command->on_failure((message_prefix_ + "out of memory").c_str());
        return;
    }
    if (post_now) asio::post(io_, [this] { drain(); });
}

bool Connection::holding() const noexcept {
    return options_.max_unanswered != 0 && paced_pending_ >= options_.max_unanswered && ctx_ && ready() &&
           !closing_;
}

void Connection::drain() {
    // drain_posted_ stays set while held: submitters do not post, the next reply drains.
    if (holding()) {
        held_ = true;
        return;
    }
    held_ = false;
    {
        std::lock_guard lock(submit_mutex_);
        draining_.swap(submitted_);
        drain_posted_ = false;
    }
    if (options_.coalescer && !draining_.empty()) {
        // What the coalescer failed itself (or folded away) leaves the in-flight count here.
        uint64_t before = 0, after = 0;
        for (Command* c : draining_) before += c->weight;
        options_.coalescer->coalesce(draining_);
        for (Command* c : draining_) after += c->weight;
        if (before > after) in_flight_.fetch_sub(static_cast<uint32_t>(before - after), std::memory_order_acq_rel);
    }
    for (Command* c : draining_) send(c);
    draining_.clear();
}

void Connection::send(Command* command) {
    if (!ctx_ || !ready()) {
        in_flight_.fetch_sub(command->weight, std::memory_order_acq_rel);
        command->on_failure((message_prefix_ + "connection lost").c_str());
        return;
    }
    if (command->asking) {
        command->asking = false;
        static constexpr std::string_view kAsking = "*1\r\n$6\r\nASKING\r\n";
        redisAsyncFormattedCommand(ctx_, &hiredis_ignore, nullptr, kAsking.data(), kAsking.size());
    }
    if (redisAsyncFormattedCommand(ctx_, &hiredis_reply, command, command->wire.data(),
                                   command->wire.size()) != REDIS_OK) {
        in_flight_.fetch_sub(command->weight, std::memory_order_acq_rel);
        command->on_failure((message_prefix_ + "cannot queue the command").c_str());
        return;
    }
    pending_.push_back({command, Clock::now() + options_.command_timeout});
    if (command->paced) ++paced_pending_;
    arm_command_timer();
}

// One timer watches only the oldest command: replies come in order, so if the oldest is on
// time every later one is too.
void Connection::arm_command_timer() {
    if (command_timer_armed_ || pending_.empty()) return;
    command_timer_armed_ = true;
    command_timer_.expires_at(pending_.front().deadline);
    command_timer_.async_wait([this](const boost::system::error_code& ec) {
        command_timer_armed_ = false;
        if (ec == asio::error::operation_aborted || closing_) return;
        if (!pending_.empty() && pending_.front().deadline <= Clock::now()) {
            drop("no answer within " + std::to_string(options_.command_timeout.count()) + " ms", true);
            return;
        }
        arm_command_timer();
    });
}

void Connection::connect() {
    if (closing_ || ctx_) return;
    ++generation_;
    const uint64_t generation = generation_;
    // One deadline for resolving, connecting and the handshake.
    connect_timer_.expires_after(options_.connect_timeout);
    connect_timer_.async_wait([this, generation](const boost::system::error_code& ec) {
        if (ec == asio::error::operation_aborted || closing_) return;
        if (generation == generation_ && !ready())
            drop("not connected within " + std::to_string(options_.connect_timeout.count()) + " ms", true);
    });
    if (endpoint_.unix_path.empty()) {
        boost::system::error_code literal;
        asio::ip::make_address(endpoint_.host, literal);
        if (literal) {
            // A host name: getaddrinfo blocks (seconds, with a slow DNS), and this thread serves
            // every connection on it. Asio resolves on its own background thread instead; a
            // stale answer (the attempt timed out or was dropped meanwhile) is ignored.
            resolver_.async_resolve(
                endpoint_.host, std::to_string(endpoint_.port),
                [this, generation](const boost::system::error_code& ec,
                                   const asio::ip::tcp::resolver::results_type& results) {
                    if (closing_ || generation != generation_ || ec == asio::error::operation_aborted) return;
                    if (ec || results.empty()) {
                        drop("cannot resolve " + endpoint_.host + ": " + (ec ? ec.message() : "no address"), true);
                        return;
                    }
                    // The first IPv4 address if there is one ("localhost" often lists ::1 first
                    // while Redis listens on 127.0.0.1 only), else the first.
                    auto chosen = results.begin();
                    for (auto it = results.begin(); it != results.end(); ++it)
                        if (it->endpoint().address().is_v4()) {
                            chosen = it;
                            break;
                        }
                    open(chosen->endpoint().address().to_string());
                });
            return;
        }
    }
    open(endpoint_.host);
}

void Connection::open(const std::string& host) {
    redisAsyncContext* c = endpoint_.unix_path.empty()
                               ? redisAsyncConnect(host.c_str(), endpoint_.port)
                               : redisAsyncConnectUnix(endpoint_.unix_path.c_str());
    if (!c) {
        drop("out of memory", true);
        return;
    }
    if (c->err) {
        std::string why = c->errstr;
        redisAsyncFree(c);
        drop(why, true);
        return;
    }
    ctx_ = c;
    c->data = this;
    AsioEvents::attach(io_, c);
    redisAsyncSetConnectCallback(c, &hiredis_connect);
    redisAsyncSetDisconnectCallback(c, &hiredis_disconnect);

    // The handshake is pipelined behind the TCP connect: hiredis buffers it until connected.
    std::string cmd;
    handshake_left_ = 0;
    auto queue = [&](std::string& wire) {
        redisAsyncFormattedCommand(c, &hiredis_handshake, nullptr, wire.data(), wire.size());
        ++handshake_left_;
        wire.clear();
    };
    if (!options_.password.empty()) {
        resp::array(cmd, options_.user.empty() ? 2 : 3);
        resp::bulk(cmd, "AUTH");
        if (!options_.user.empty()) resp::bulk(cmd, options_.user);
        resp::bulk(cmd, options_.password);
        queue(cmd);
    }
    if (options_.database != 0) {
        resp::array(cmd, 2);
        resp::bulk(cmd, "SELECT");
        resp::bulk(cmd, uint64_t(options_.database));
        queue(cmd);
    }
    for (const std::string& script : options_.scripts) {
        resp::array(cmd, 3);
        resp::bulk(cmd, "SCRIPT");
        resp::bulk(cmd, "LOAD");
        resp::bulk(cmd, script);
        queue(cmd);
    }
    if (handshake_left_ == 0) {
        resp::array(cmd, 1);
        resp::bulk(cmd, "PING");
        queue(cmd);
    }

}

void Connection::hiredis_connect(const redisAsyncContext* ac, int status) {
    if (Connection* self = owner(ac)) self->on_connected(status);
}

void Connection::on_connected(int status) {
    if (status == REDIS_OK) return;  // the handshake replies decide when we are ready
    // hiredis frees the context itself after this callback: forget it, do not free it.
    std::string why = ctx_ && ctx_->errstr[0] ? ctx_->errstr : "connect failed";
    if (ctx_) ctx_->data = nullptr;
    ctx_ = nullptr;
    drop(why, true);
}

void Connection::hiredis_disconnect(const redisAsyncContext* ac, int) {
    if (Connection* self = owner(ac)) self->on_disconnected();
}

void Connection::on_disconnected() {
    // hiredis frees the context after this callback. A drop() we started ourselves cleared
    // ac->data first, so we only get here when Redis closed or the socket failed.
    std::string why = ctx_ && ctx_->errstr[0] ? ctx_->errstr : "connection closed by Redis";
    ctx_ = nullptr;
    drop(why, true);
}

void Connection::hiredis_handshake(redisAsyncContext* ac, void* reply, void*) {
    Connection* self = owner(ac);
    if (self && reply) self->on_handshake_reply(static_cast<redisReply*>(reply));
}

void Connection::on_handshake_reply(redisReply* reply) {
    if (reply->type == REDIS_REPLY_ERROR) {
        log_.error(endpoint_.text + ": refused the handshake: " + std::string(reply->str, reply->len));
        reported_down_ = true;
        drop(std::string("handshake refused: ") + std::string(reply->str, reply->len), true);
        return;
    }
    if (handshake_left_ > 0 && --handshake_left_ == 0) {
        connect_timer_.cancel();
        backoff_ = std::chrono::milliseconds{0};
        ready_.store(true, std::memory_order_release);
        if (reported_down_) log_.info(endpoint_.text + ": connected again");
        reported_down_ = false;
    }
}

void Connection::hiredis_reply(redisAsyncContext* ac, void* reply, void* privdata) {
    // A NULL reply means hiredis is freeing the context: drop() fails pending_ itself.
    Connection* self = owner(ac);
    if (self && reply) self->on_command_reply(static_cast<Command*>(privdata), static_cast<redisReply*>(reply));
}

void Connection::hiredis_ignore(redisAsyncContext*, void*, void*) {}

void Connection::on_command_reply(Command* command, redisReply* reply) {
    // Replies arrive in order, so the command is the oldest pending one.
    if (!pending_.empty() && pending_.front().command == command) {
        pending_.pop_front();
    } else {
        for (auto it = pending_.begin(); it != pending_.end(); ++it)
            if (it->command == command) {
                pending_.erase(it);
                break;
            }
    }
    in_flight_.fetch_sub(command->weight, std::memory_order_acq_rel);
    if (command->paced) --paced_pending_;
    command->on_reply(*this, reply);
    if (held_ && !holding()) drain();
}

void Connection::fail_pending(const char* why) {
    std::deque<Pending> failed;
    failed.swap(pending_);
    paced_pending_ = 0;
    uint64_t weight = 0;
    for (const Pending& p : failed) weight += p.command->weight;
    in_flight_.fetch_sub(static_cast<uint32_t>(weight), std::memory_order_acq_rel);
    for (const Pending& p : failed) p.command->on_failure(why);
}

void Connection::drop(const std::string& why, bool retry) {
    ready_.store(false, std::memory_order_release);
    ++generation_;  // a resolve or timer of the attempt just dropped finds itself stale
    connect_timer_.cancel();
    command_timer_.cancel();
    if (redisAsyncContext* c = ctx_) {
        ctx_ = nullptr;
        c->data = nullptr;  // its callbacks (NULL replies, disconnect) must not reach us now
        redisAsyncFree(c);  // deferred by hiredis when called from inside one of its callbacks
    }
    std::string message = message_prefix_ + why;
    if (!reported_down_ && retry && !closing_) {
        log_.warning(endpoint_.text + ": " + why + "; failing announces fast and reconnecting in the background");
        reported_down_ = true;
    }
    fail_pending(message.c_str());
    if (held_) fail_held(message.c_str());  // no reply will come to release them
    if (retry && !closing_) {
        schedule_reconnect();
        if (on_down_) on_down_();
    }
}

void Connection::schedule_reconnect() {
    backoff_ = backoff_.count() == 0 ? kBackoffMin : std::min(backoff_ * 2, kBackoffMax);
    retry_timer_.expires_after(backoff_);
    retry_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec == asio::error::operation_aborted || closing_) return;
        connect();
    });
}

void Connection::shutdown() {
    asio::post(io_, [this] {
        closing_ = true;
        retry_timer_.cancel();
        resolver_.cancel();
        drop("the redis driver is shutting down", false);
        drain();  // whatever was submitted meanwhile fails in send(): not ready
    });
}

void Connection::fail_held(const char* why) noexcept {
    held_ = false;
    fail_unsent(why);
}

void Connection::fail_unsent(const char* why) noexcept {
    std::vector<Command*> left;
    {
        std::lock_guard lock(submit_mutex_);
        left.swap(submitted_);
        drain_posted_ = false;  // nothing is left for a drain to take
    }
    for (Command* c : left) {
        in_flight_.fetch_sub(c->weight, std::memory_order_acq_rel);
        c->on_failure(why);
    }
}

}  // namespace chihaya::redis
