// plugin.cpp: the "postgres" storage driver: its config keys and registration line.
#include "batch_writer.hpp"
#include "registry_sync.hpp"

#include <chihaya/driver.hpp>

#include <libpq-fe.h>

#include <stdexcept>

namespace {

using namespace chihaya::postgres;

class PostgresStorage {
public:
    static constexpr chihaya_config_key config_keys[] = {
        chihaya::config_secret("conninfo", "\"\"",
            "libpq connection string or postgresql:// URI (\"\" = libpq defaults, PG* environment); "
            "never printed"),
        chihaya::config_int("connect_timeout_ms", "2000", 100, 600000,
            "deadline of a connect; apply completes UNAVAILABLE after it"),
        chihaya::config_int("statement_timeout_ms", "10000", 100, 3600000,
            "statement_timeout of every session; also the client-side deadline of each statement "
            "(plus 1 s)"),
        chihaya::config_int("poll_interval_ms", "1000", 50, 60000,
            "read chihaya_changes this often even without a notification"),
        chihaya::config_int("changes_retention_s", "86400", 0, INT32_MAX,
            "prune chihaya_changes rows older than this (0 = never)"),
        chihaya::config_int("peers_retention_s", "172800", 0, INT32_MAX,
            "prune chihaya_peers rows not updated for this long (0 = never)"),
    };

    PostgresStorage(const chihaya::Host& host, const chihaya::Config& config)
        : registry_(host, sync_options(config)),
          writer_(host, connection_options(config, "chihaya apply")) {}

    void subscribe(const chihaya::RegistrySink& sink) { registry_.subscribe(sink); }

    // /readyz (ABI 2.2): the change listener's last contact. It reads the database at least every
    // poll_interval_ms whatever the traffic, so the answer is never older than that (plus a
    // statement deadline when the server stops answering without closing the connection).
    chihaya_status health(std::string& why) { return registry_.health(why); }

    void apply(chihaya_delta_batch& batch, chihaya::Completion done) {
        std::string message;
        chihaya_status status = writer_.apply(batch, message);
        if (status != CHIHAYA_OK) chihaya::write_message(batch.message, CHIHAYA_MESSAGE_CAP, message);
        done(status);
    }

private:
    static ConnectionOptions connection_options(const chihaya::Config& config, const char* name) {
        ConnectionOptions o;
        o.conninfo = std::string(config.string("conninfo"));
        // Refuse a malformed conninfo here, without libpq's message: it can quote the text
        // around the error, which may be the password.
        char* error = nullptr;
        PQconninfoOption* parsed = PQconninfoParse(o.conninfo.c_str(), &error);
        if (error) PQfreemem(error);
        if (!parsed)
            throw std::invalid_argument(
                "postgres: conninfo is not a valid libpq connection string or URI");
        PQconninfoFree(parsed);
        o.connect_timeout = std::chrono::milliseconds(config.integer("connect_timeout_ms"));
        o.statement_timeout = std::chrono::milliseconds(config.integer("statement_timeout_ms"));
        o.application_name = name;
        return o;
    }

    static SyncOptions sync_options(const chihaya::Config& config) {
        SyncOptions o;
        o.connection = connection_options(config, "chihaya listener");
        o.poll_interval = std::chrono::milliseconds(config.integer("poll_interval_ms"));
        o.changes_retention_s = config.integer("changes_retention_s");
        o.peers_retention_s = config.integer("peers_retention_s");
        return o;
    }

    RegistrySync registry_;  // subscribe + the listener thread
    BatchWriter writer_;     // apply, on the host's flusher thread
};

}  // namespace

CHIHAYA_REGISTER_STORAGE("postgres", PostgresStorage)
