// batch_writer.hpp: apply: one batch of deltas, one transaction, set-based, at most once.
#pragma once

#include "connection.hpp"

#include <chihaya/driver.hpp>

#include <string>
#include <vector>

namespace chihaya::postgres {

// Runs on the host's flusher thread (one batch at a time, abi.h), synchronously, on its own
// connection: separate from the listener's, so a long batch never delays registry changes.
// Every statement is bounded by statement_timeout_ms (server side, plus a client-side deadline)
// and the connect by connect_timeout_ms. A failure closes the connection when its state is in
// doubt; the next apply reconnects.
//
// The transaction (sql.hpp has each statement and why):
//   lock this host's chihaya_batches row, read its sequence   -> already applied? commit, OK
//   COPY the deltas (binary, sorted by peer key) into a session temp table, and the torrent
//   stats into another
//   credit users by sum per user_id (credit + anchored part against chihaya_peers)
//   upsert chihaya_peers with the latest reports; delete the peers that stopped
//   insert snatches of COMPLETED deltas (ON CONFLICT DO NOTHING); write torrent stats
//   set the host's sequence; COMMIT
// A lost reply to COMMIT is safe: the host re-sends, the sequence check finds it applied.
class BatchWriter {
public:
    BatchWriter(const chihaya::Host& host, ConnectionOptions options);

    // CHIHAYA_OK, or UNAVAILABLE / INTERNAL / INVALID with why in `message`.
    chihaya_status apply(const chihaya_delta_batch& batch, std::string& message) noexcept;

private:
    void write(const chihaya_delta_batch& batch, int64_t sequence);
    void roll_back() noexcept;

    chihaya::Host host_;
    Connection conn_;
    bool staging_ready_ = false;  // temp tables exist in this session
    std::vector<uint32_t> order_;  // the batch's deltas in staging order (kept: no realloc per batch)
    std::string steps_;           // "copy 12, users 80, ..." of the last batch (debug log)
    LogLimiter failure_log_{std::chrono::seconds(10)};
};

}  // namespace chihaya::postgres
