// connection.hpp: one libpq connection whose every wait is bounded by a deadline and a stop fd.
#pragma once

#include <chihaya/abi.h>

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace chihaya::postgres {

using Clock = std::chrono::steady_clock;

struct ConnectionOptions {
    std::string conninfo;  // a secret: never logged, never put into a message
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds statement_timeout{10000};
    std::string application_name;  // fallback_application_name: pg_stat_activity shows who is who
};

// A failed call, with the ABI status it maps to: UNAVAILABLE for anything a retry may cure
// (connection lost or refused, a deadline, statement_timeout, deadlock, server shutting down),
// INTERNAL for the rest (a bug, a schema that does not match). The message never holds the
// conninfo, and holds only PostgreSQL's primary message, never its DETAIL (which can quote row
// values).
class PgError : public std::runtime_error {
public:
    PgError(chihaya_status status, const std::string& message)
        : std::runtime_error(message), status_(status) {}
    chihaya_status status() const noexcept { return status_; }

private:
    chihaya_status status_;
};

struct ResultDeleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// Text value of (row, column); "" for NULL (check is_null where it matters).
inline std::string_view text(const PGresult* r, int row, int column) noexcept {
    return {PQgetvalue(r, row, column), static_cast<size_t>(PQgetlength(r, row, column))};
}
inline bool is_null(const PGresult* r, int row, int column) noexcept {
    return PQgetisnull(r, row, column) != 0;
}

// libpq in non-blocking mode driven by poll(2), so that no call waits longer than its deadline:
// connect_timeout for the connection, statement_timeout + a margin for each statement (the
// server enforces statement_timeout itself; the client-side deadline catches a server that no
// longer answers at all). When `interrupt_fd` (an eventfd) becomes readable every wait ends with
// PgError(UNAVAILABLE, "stopping"): that is how destroy stops a thread blocked in a query.
//
// Not thread-safe: one thread uses a Connection at a time. A failure that may have left the
// session in an unknown state closes it; the next call reconnects (connect()).
class Connection {
public:
    Connection(ConnectionOptions options, int interrupt_fd = -1);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    bool connected() const noexcept;
    // Connects (bounded by connect_timeout) and sets statement_timeout. Throws PgError.
    void connect();
    void close() noexcept;

    // One statement (or several without parameters), text parameters, text results. Throws
    // PgError; returns the last result (TUPLES_OK or COMMAND_OK).
    Result exec(std::string_view sql, const std::vector<std::string>& params = {});
    // COPY ... FROM STDIN: `produce` is called repeatedly with a buffer to fill and returns
    // false when there is nothing more; each chunk is sent before the next is produced.
    template <class Produce>
    void copy_in(std::string_view sql, Produce&& produce) {
        begin_copy(sql);
        std::string chunk;
        bool more = true;
        while (more) {
            chunk.clear();
            more = produce(chunk);
            if (!chunk.empty()) put_copy(chunk);
        }
        end_copy();
    }

    // The socket, for a thread that waits for notifications between statements.
    int socket() const noexcept;
    // Reads what the server sent (after poll said readable) and drops any notifications;
    // returns how many there were. Throws PgError when the connection is gone.
    int drain_notifications();

private:
    void begin_copy(std::string_view sql);
    void put_copy(std::string_view data);
    void end_copy();
    Result collect(Clock::time_point deadline);
    void flush(Clock::time_point deadline);
    // Waits for `events` on the socket; throws on the deadline or the interrupt fd.
    void wait(short events, Clock::time_point deadline);
    Clock::time_point statement_deadline() const noexcept;
    [[noreturn]] void fail_connection(std::string_view what);
    [[noreturn]] void fail_result(const PGresult* result);

    ConnectionOptions options_;
    int interrupt_fd_;
    PGconn* conn_ = nullptr;
};

// At most one line per `interval` for a repeating failure, with the count of those skipped.
class LogLimiter {
public:
    explicit LogLimiter(std::chrono::milliseconds interval) : interval_(interval) {}
    // True when a line may be written now; `suppressed` is how many were skipped before it.
    bool allow(uint64_t& suppressed) noexcept {
        auto now = Clock::now();
        if (last_ != Clock::time_point{} && now - last_ < interval_) {
            ++suppressed_;
            return false;
        }
        last_ = now;
        suppressed = suppressed_;
        suppressed_ = 0;
        return true;
    }
    void reset() noexcept { last_ = {}; suppressed_ = 0; }

private:
    std::chrono::milliseconds interval_;
    Clock::time_point last_{};
    uint64_t suppressed_ = 0;
};

}  // namespace chihaya::postgres
