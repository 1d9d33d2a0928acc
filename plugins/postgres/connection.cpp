// connection.cpp: libpq in non-blocking mode, every wait bounded (see connection.hpp).
#include "connection.hpp"

#include <poll.h>

#include <cerrno>
#include <cstring>

namespace chihaya::postgres {

namespace {

// A session stuck inside a transaction (a client that vanished mid-batch) must not hold the
// batch row lock for ever.
constexpr int kIdleInTransactionTimeoutMs = 60000;
// The server enforces statement_timeout itself; this margin is for the client-side deadline that
// catches a server that does not answer at all (stopped, partitioned).
constexpr std::chrono::milliseconds kDeadlineMargin{1000};

// libpq's messages span lines ("...failed: Connection refused\n\tIs the server running...");
// a log line is one line.
std::string one_line(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    bool space = false;
    for (char c : text) {
        if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
            space = !out.empty();
            continue;
        }
        if (space) out.push_back(' ');
        space = false;
        out.push_back(c);
    }
    return out;
}

// SQLSTATE classes a retry may cure: 08 connection exception, 40 transaction rollback
// (deadlock, serialization), 53 insufficient resources, 57 operator intervention (57014 is
// statement_timeout, 57P01-03 a server shutting down or starting).
bool transient(const char* sqlstate) {
    if (!sqlstate || std::strlen(sqlstate) != 5) return false;
    return std::strncmp(sqlstate, "08", 2) == 0 || std::strncmp(sqlstate, "40", 2) == 0 ||
           std::strncmp(sqlstate, "53", 2) == 0 || std::strncmp(sqlstate, "57", 2) == 0;
}

}  // namespace

Connection::Connection(ConnectionOptions options, int interrupt_fd)
    : options_(std::move(options)), interrupt_fd_(interrupt_fd) {}

Connection::~Connection() { close(); }

bool Connection::connected() const noexcept {
    return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK;
}

void Connection::close() noexcept {
    if (conn_) PQfinish(conn_);
    conn_ = nullptr;
}

int Connection::socket() const noexcept { return conn_ ? PQsocket(conn_) : -1; }

Clock::time_point Connection::statement_deadline() const noexcept {
    return Clock::now() + options_.statement_timeout + kDeadlineMargin;
}

void Connection::connect() {
    close();
    // The conninfo is expanded from "dbname" (expand_dbname = 1), so it may be a key=value
    // string or a postgresql:// URI; it was checked with PQconninfoParse at create.
    const char* keys[] = {"dbname", "fallback_application_name", nullptr};
    const char* values[] = {options_.conninfo.c_str(), options_.application_name.c_str(), nullptr};
    conn_ = PQconnectStartParams(keys, values, 1);
    if (!conn_) throw PgError(CHIHAYA_UNAVAILABLE, "postgres: connect: out of memory");
    if (PQstatus(conn_) == CONNECTION_BAD) fail_connection("connect");
    const auto deadline = Clock::now() + options_.connect_timeout;
    PostgresPollingStatusType state = PGRES_POLLING_WRITING;
    while (state != PGRES_POLLING_OK) {
        if (state == PGRES_POLLING_FAILED) fail_connection("connect");
        try {
            wait(state == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
        } catch (const PgError& e) {
            throw PgError(e.status(), std::string("postgres: connect: ") +
                                          (std::strstr(e.what(), "stopping")
                                               ? "stopping"
                                               : "no answer within " +
                                                     std::to_string(options_.connect_timeout.count()) +
                                                     " ms (connect_timeout_ms)"));
        }
        state = PQconnectPoll(conn_);
    }
    if (PQsetnonblocking(conn_, 1) != 0) fail_connection("connect");
    exec("SET statement_timeout = " + std::to_string(options_.statement_timeout.count()) +
         "; SET idle_in_transaction_session_timeout = " +
         std::to_string(kIdleInTransactionTimeoutMs));
}

void Connection::wait(short events, Clock::time_point deadline) {
    for (;;) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            close();
            throw PgError(CHIHAYA_UNAVAILABLE,
                          "postgres: no answer within " +
                              std::to_string(options_.statement_timeout.count()) +
                              " ms (statement_timeout_ms) plus " +
                              std::to_string(kDeadlineMargin.count()) + " ms");
        }
        pollfd fds[2] = {{PQsocket(conn_), events, 0}, {interrupt_fd_, POLLIN, 0}};
        int n = ::poll(fds, interrupt_fd_ >= 0 ? 2 : 1, static_cast<int>(left.count()));
        if (n < 0) {
            if (errno == EINTR) continue;
            close();
            throw PgError(CHIHAYA_UNAVAILABLE, std::string("postgres: poll: ") + std::strerror(errno));
        }
        if (interrupt_fd_ >= 0 && (fds[1].revents & POLLIN)) {
            close();
            throw PgError(CHIHAYA_UNAVAILABLE, "postgres: stopping");
        }
        if (fds[0].revents) return;
    }
}

void Connection::flush(Clock::time_point deadline) {
    for (;;) {
        int r = PQflush(conn_);
        if (r == 0) return;
        if (r < 0) fail_connection("send");
        wait(POLLIN | POLLOUT, deadline);
        if (!PQconsumeInput(conn_)) fail_connection("receive");
    }
}

Result Connection::collect(Clock::time_point deadline) {
    Result last, error;
    for (;;) {
        while (PQisBusy(conn_)) {
            wait(POLLIN, deadline);
            if (!PQconsumeInput(conn_)) fail_connection("receive");
        }
        Result r(PQgetResult(conn_));
        if (!r) break;
        ExecStatusType status = PQresultStatus(r.get());
        if (status == PGRES_COPY_IN) return r;  // the caller streams the data now
        if (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE ||
            status == PGRES_NONFATAL_ERROR) {
            if (!error) error = std::move(r);
            continue;
        }
        last = std::move(r);
    }
    if (error) fail_result(error.get());
    if (!connected()) fail_connection("receive");
    return last;
}

Result Connection::exec(std::string_view sql, const std::vector<std::string>& params) {
    if (!connected()) throw PgError(CHIHAYA_UNAVAILABLE, "postgres: not connected");
    std::string query(sql);
    int sent;
    if (params.empty()) {
        sent = PQsendQuery(conn_, query.c_str());
    } else {
        std::vector<const char*> values;
        values.reserve(params.size());
        for (const auto& p : params) values.push_back(p.c_str());
        sent = PQsendQueryParams(conn_, query.c_str(), static_cast<int>(values.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0);
    }
    if (!sent) fail_connection("send");
    const auto deadline = statement_deadline();
    flush(deadline);
    Result r = collect(deadline);
    if (r && PQresultStatus(r.get()) == PGRES_COPY_IN) {
        close();  // a COPY through exec() is a programming error; the session is unusable
        throw PgError(CHIHAYA_INTERNAL, "postgres: COPY sent through exec()");
    }
    return r;
}

void Connection::begin_copy(std::string_view sql) {
    if (!connected()) throw PgError(CHIHAYA_UNAVAILABLE, "postgres: not connected");
    std::string query(sql);
    if (!PQsendQuery(conn_, query.c_str())) fail_connection("send");
    const auto deadline = statement_deadline();
    flush(deadline);
    Result r = collect(deadline);
    if (!r || PQresultStatus(r.get()) != PGRES_COPY_IN) {
        close();
        throw PgError(CHIHAYA_INTERNAL, "postgres: expected COPY FROM STDIN");
    }
}

void Connection::put_copy(std::string_view data) {
    const auto deadline = statement_deadline();
    for (;;) {
        int r = PQputCopyData(conn_, data.data(), static_cast<int>(data.size()));
        if (r < 0) fail_connection("COPY");
        if (r == 1) break;
        wait(POLLOUT, deadline);  // non-blocking and libpq's buffer is full
        if (PQflush(conn_) < 0) fail_connection("COPY");
    }
    flush(deadline);
}

void Connection::end_copy() {
    const auto deadline = statement_deadline();
    for (;;) {
        int r = PQputCopyEnd(conn_, nullptr);
        if (r < 0) fail_connection("COPY");
        if (r == 1) break;
        wait(POLLOUT, deadline);
        if (PQflush(conn_) < 0) fail_connection("COPY");
    }
    flush(deadline);
    collect(deadline);
}

int Connection::drain_notifications() {
    if (!conn_) throw PgError(CHIHAYA_UNAVAILABLE, "postgres: not connected");
    if (!PQconsumeInput(conn_) || PQstatus(conn_) != CONNECTION_OK) fail_connection("receive");
    int n = 0;
    while (PGnotify* note = PQnotifies(conn_)) {
        PQfreemem(note);
        ++n;
    }
    return n;
}

void Connection::fail_connection(std::string_view what) {
    std::string message = "postgres: " + std::string(what) + ": " +
                          one_line(conn_ ? PQerrorMessage(conn_) : "not connected");
    close();
    throw PgError(CHIHAYA_UNAVAILABLE, message);
}

void Connection::fail_result(const PGresult* result) {
    const char* sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
    const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
    std::string message = "postgres: " + one_line(primary ? primary : PQresultErrorMessage(result));
    if (sqlstate) message += std::string(" (SQLSTATE ") + sqlstate + ")";
    bool lost = !connected();
    if (lost) close();
    throw PgError(lost || transient(sqlstate) ? CHIHAYA_UNAVAILABLE : CHIHAYA_INTERNAL, message);
}

}  // namespace chihaya::postgres
