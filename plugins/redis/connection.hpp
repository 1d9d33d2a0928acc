// connection.hpp: one pipelined hiredis connection to one Redis node, owned by one Asio thread.
#pragma once

#include <chihaya/driver.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <hiredis/async.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace chihaya::redis {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

// Where a node listens: "host:port", "[v6]:port" or "unix:/path".
struct Endpoint {
    std::string host;
    int port = 0;
    std::string unix_path;  // set for unix sockets
    std::string text;       // "host:port" as Redis and the operator spell it
};

// Throws std::invalid_argument naming the bad address.
Endpoint parse_endpoint(std::string_view text);

class Command;

// Merges requests bound for one connection into fewer Redis commands (the redis driver's
// announce batches). Called on the connection's thread with what was drained in one event-loop
// turn, in submission order; it may replace any commands by ones that carry them, whose
// `weight` is the sum of theirs, and fails itself whatever it cannot carry.
class Coalescer {
public:
    virtual ~Coalescer() = default;
    virtual void coalesce(std::vector<Command*>& commands) noexcept = 0;
};

struct ConnectionOptions {
    std::string user;      // "" = AUTH with the password only (or no AUTH at all)
    std::string password;  // "" = no AUTH
    int64_t database = 0;
    std::chrono::milliseconds connect_timeout{1000};
    std::chrono::milliseconds command_timeout{500};
    uint32_t max_in_flight = 4096;
    // Paced commands (announce batches) written and not yet answered beyond which new submissions
    // wait in the queue until a reply comes back, then go (coalesced) together; 0 = write at once.
    // See Connection.
    uint32_t max_unanswered = 0;
    std::vector<std::string> scripts;  // SCRIPT LOADed on every (re)connect
    Coalescer* coalescer = nullptr;    // none: every command is sent as it is
};

class Connection;

// A request on its way to Redis. For each submit exactly one of on_reply / on_failure runs:
// on the connection's thread, or inline inside submit when the connection refuses at once.
// on_reply may submit the command again (a redirect, a NOSCRIPT retry); nothing else may
// touch it after it has completed its caller.
class Command {
public:
    virtual ~Command() = default;
    virtual void on_reply(Connection& from, redisReply* reply) noexcept = 0;
    virtual void on_failure(const char* why) noexcept = 0;

    std::string wire;     // the command in RESP
    bool asking = false;  // precede it with ASKING (a cluster -ASK redirect), once
    uint32_t weight = 1;  // requests it carries: what max_in_flight counts
    bool paced = false;   // counts against max_unanswered (the announce batches; a scrape does not)
};

// States: down -> connecting (TCP + AUTH/SELECT/SCRIPT LOAD pipelined) -> ready -> down ...
// Only `ready` accepts commands: everything else fails at once (fail fast, no queue that grows
// while Redis is away). Any error, a command older than command_timeout or a connect slower
// than connect_timeout drops the connection: every pending command fails with its reason and
// a reconnect follows after a backoff of 100 ms doubling to 2 s.
//
// Threads: submit() and ready() from anywhere; everything else on the io_context's thread.
// Submissions go through a short mutex-guarded vector and one post per batch, so a burst of
// announces costs one wake-up of the I/O thread and one write() of many pipelined commands.
//
// With max_unanswered, a connection that has that many paced commands (announce batches) on the
// wire holds new submissions back until one is answered (or fails). A held command's
// command_timeout starts when it is written, so it may wait up to twice that in all. Redis runs scripts one at a time, so more on the wire would only
// queue in its socket; held back, they reach the coalescer together and leave as one bigger
// batch. Under light load nothing waits (the wire is empty); under heavy load batches grow with
// the load, and with them what a script call's fixed cost is shared by. Measured with bench/run
// (CACHE=redis, 100,000 x 5, one core for the tracker): Redis ran about 3.8 announces per call
// at 47 us a call with 128 requests in flight when every drain was written at once.
class Connection {
public:
    Connection(asio::io_context& io, Endpoint endpoint, const ConnectionOptions& options,
               const chihaya::Host& log);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    void start();  // any thread: connects in the background
    // Called on the I/O thread whenever the connection goes down (refused, closed, timed out):
    // a Cluster refreshes its slot map then. Set before start().
    void on_down(std::function<void()> listener) { on_down_ = std::move(listener); }
    void submit(Command* command) noexcept;
    bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }
    const Endpoint& endpoint() const noexcept { return endpoint_; }
    asio::io_context& io() noexcept { return io_; }

    // Any thread: closes for good on the I/O thread, failing everything pending.
    void shutdown();
    // After the I/O thread has stopped (or, on it, when a drop leaves held submissions no reply
    // will release): fails what was submitted but never picked up.
    void fail_unsent(const char* why) noexcept;

private:
    struct Pending {
        Command* command;
        Clock::time_point deadline;
    };

    void connect();                       // resolves a host name off this thread, then open()
    void open(const std::string& host);   // an address literal (or the unix path)
    void on_connected(int status);
    void on_disconnected();
    void on_handshake_reply(redisReply* reply);
    void on_command_reply(Command* command, redisReply* reply);
    void drain();
    bool holding() const noexcept;
    void fail_held(const char* why) noexcept;
    void send(Command* command);
    void arm_command_timer();
    void drop(const std::string& why, bool retry);
    void fail_pending(const char* why);
    void schedule_reconnect();

    static void hiredis_connect(const redisAsyncContext* ac, int status);
    static void hiredis_disconnect(const redisAsyncContext* ac, int status);
    static void hiredis_handshake(redisAsyncContext* ac, void* reply, void* privdata);
    static void hiredis_reply(redisAsyncContext* ac, void* reply, void* privdata);
    static void hiredis_ignore(redisAsyncContext* ac, void* reply, void* privdata);

    asio::io_context& io_;
    const Endpoint endpoint_;
    const ConnectionOptions& options_;
    chihaya::Host log_;
    std::string message_prefix_;  // "redis 127.0.0.1:6379: "

    // Any thread.
    std::atomic<bool> ready_{false};
    std::atomic<uint32_t> in_flight_{0};  // submitted and not yet completed
    std::mutex submit_mutex_;
    std::vector<Command*> submitted_;  // guarded by submit_mutex_
    bool drain_posted_ = false;        // guarded by submit_mutex_

    // I/O thread only.
    redisAsyncContext* ctx_ = nullptr;
    std::vector<Command*> draining_;
    std::deque<Pending> pending_;
    asio::steady_timer connect_timer_;
    asio::steady_timer command_timer_;
    asio::steady_timer retry_timer_;
    asio::ip::tcp::resolver resolver_;
    bool command_timer_armed_ = false;
    uint32_t handshake_left_ = 0;
    uint64_t generation_ = 0;  // connect attempts; a stale timer compares against it
    std::chrono::milliseconds backoff_{0};
    bool closing_ = false;
    bool held_ = false;          // a drain found the wire full: the next paced reply drains
    uint32_t paced_pending_ = 0;  // paced commands in pending_
    bool reported_down_ = false;  // log the first failure of an outage only
    std::function<void()> on_down_;
};

}  // namespace chihaya::redis
