// sql.hpp: every statement the "postgres" driver sends; the tables are etc/postgres/schema.sql.
#pragma once

namespace chihaya::postgres::sql {

// ---- registry: the full load (registry_sync.cpp) -----------------------------------------------

// The snapshot is read before any row: every change committed after it is then seen later as
// "not visible in the snapshot" (that ordering is what makes nothing go missing). REPEATABLE READ
// makes the load one consistent picture taken at that same snapshot, so such a change is
// delivered once, after the load, rather than in the load and again after it.
inline constexpr const char* kBeginLoad =
    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
inline constexpr const char* kLoadSnapshot = "SELECT pg_current_snapshot()::text";
inline constexpr const char* kDeclareUsers =
    "DECLARE chihaya_load_users NO SCROLL CURSOR FOR "
    "SELECT id, passkey, enabled, upload_multiplier, download_multiplier, leech_slots FROM users";
inline constexpr const char* kFetchUsers = "FETCH 10000 FROM chihaya_load_users";
inline constexpr const char* kDeclareTorrents =
    "DECLARE chihaya_load_torrents NO SCROLL CURSOR FOR "
    "SELECT id, encode(info_hash, 'hex'), enabled, upload_multiplier, download_multiplier "
    "FROM torrents";
inline constexpr const char* kFetchTorrents = "FETCH 10000 FROM chihaya_load_torrents";
inline constexpr const char* kCommit = "COMMIT";
inline constexpr const char* kRollback = "ROLLBACK";

// The whitelist is small: read whole, in id order (the lower id keeps a duplicated prefix).
inline constexpr const char* kSelectClients = "SELECT id, prefix FROM client_whitelist ORDER BY id";

// ---- registry: following the change log -------------------------------------------------------

// The listener's session: no JIT. Its poll (below) runs every poll_interval_ms, and after a bulk
// import by the web application (200,000 rows in chihaya_changes until they are pruned) the
// planner's estimate for it passed jit_above_cost: every poll then compiled LLVM code, about
// 1-2 % of a core for as long as the rows stayed (perf, bench/private.py's 100,000 users and
// torrents), for a query that returns nothing.
inline constexpr const char* kListen = "SET jit = off; LISTEN chihaya_changes";

// The change rows committed since snapshot $1 (visible now, invisible then), the snapshot they
// were read in, and whether pruning may have removed rows that $1 had not seen yet (then the
// reader cannot tell what it missed and reloads everything). One statement, one snapshot:
// pg_current_snapshot() is the statement's own. The LEFT JOIN yields one row even when nothing
// changed. Rows of a transaction still running when $1 was taken have txid >= xmin($1).
inline constexpr const char* kPollChanges =
    "WITH now_ AS (SELECT pg_current_snapshot() AS snapshot) "
    "SELECT now_.snapshot::text, h.pruned_max_txid >= pg_snapshot_xmin($1::pg_snapshot), "
    "       c.kind, c.id "
    "FROM now_ CROSS JOIN chihaya_changes_horizon h "
    "LEFT JOIN chihaya_changes c "
    "  ON c.txid >= pg_snapshot_xmin($1::pg_snapshot) "
    " AND NOT pg_visible_in_snapshot(c.txid, $1::pg_snapshot) "
    "ORDER BY c.seq";

// Re-reading changed rows by id ($1 a bigint[] literal); an id not returned is gone.
inline constexpr const char* kUsersById =
    "SELECT id, passkey, enabled, upload_multiplier, download_multiplier, leech_slots "
    "FROM users WHERE id = ANY($1::bigint[])";
inline constexpr const char* kTorrentsById =
    "SELECT id, encode(info_hash, 'hex'), enabled, upload_multiplier, download_multiplier "
    "FROM torrents WHERE id = ANY($1::bigint[])";

// ---- housekeeping (listener thread, about once a minute) -------------------------------------

inline constexpr const char* kPruneChanges =
    "SELECT chihaya_prune_changes(make_interval(secs => $1::bigint))";
// In slices, skipping rows a batch holds locked: the pruner never waits on apply, so the two
// cannot deadlock. Returns the number of rows deleted.
inline constexpr const char* kPrunePeers =
    "DELETE FROM chihaya_peers WHERE ctid = ANY(ARRAY("
    "  SELECT ctid FROM chihaya_peers"
    "  WHERE updated_at < now() - make_interval(secs => $1::bigint)"
    "  LIMIT 10000 FOR UPDATE SKIP LOCKED))";

// ---- accounting: one batch, one transaction (batch_writer.cpp) --------------------------------

// Session settings of the apply connection, before its first temp table: the staging table of a
// 100,000-delta batch (about 18 MB) and the sorts over it then stay in memory (the defaults,
// 8 MB and 4 MB, spill them to disk). No JIT: the users update of a large batch costs more than
// jit_above_cost, and compiling it took 150-200 ms of a 100,000-delta batch's ~1 s (perf: a third
// of the statement in libLLVM) for expressions that run once per row.
inline constexpr const char* kApplySession =
    "SET temp_buffers = '256MB'; SET work_mem = '64MB'; SET jit = off";

// Staging tables of the session, emptied by every commit. Column order is the binary COPY's.
// The deltas arrive sorted by (user_id, torrent_id, peer_id) (batch_writer.cpp), so the sorts
// below find them in order, and the rows they write are visited in index order. reported_at is
// sent as a binary timestamptz: to_timestamp(ms / 1000.0) per row (numeric, then a float) took
// 15-20 ms at 100,000 deltas.
inline constexpr const char* kCreateStaging =
    "CREATE TEMP TABLE IF NOT EXISTS chihaya_batch_deltas ("
    "  user_id bigint, torrent_id bigint, peer_id bytea, flags integer,"
    "  upload_multiplier integer, download_multiplier integer,"
    "  user_credit_uploaded bigint, user_credit_downloaded bigint,"
    "  anchor_uploaded bigint, anchor_downloaded bigint,"
    "  uploaded bigint, downloaded bigint, \"left\" bigint, reported_at timestamptz"
    ") ON COMMIT DELETE ROWS; "
    "CREATE TEMP TABLE IF NOT EXISTS chihaya_batch_torrents ("
    "  torrent_id bigint, seeders integer, leechers integer, snatched integer"
    ") ON COMMIT DELETE ROWS";

inline constexpr const char* kBegin = "BEGIN";

// Locks this host's row (inserting it the first time) and returns the last applied sequence:
// a second flusher of the same host_id, or a re-sent batch, waits here and then finds it done.
inline constexpr const char* kLockBatchRow =
    "INSERT INTO chihaya_batches AS b (host_id, sequence) VALUES ($1, -1) "
    "ON CONFLICT (host_id) DO UPDATE SET host_id = b.host_id RETURNING sequence";

inline constexpr const char* kCopyDeltas =
    "COPY chihaya_batch_deltas FROM STDIN (FORMAT binary)";
inline constexpr const char* kCopyTorrents =
    "COPY chihaya_batch_torrents FROM STDIN (FORMAT binary)";

// Planner statistics for the staging table: without them the users update is planned for a
// table of unknown shape (measured: twice as slow at 100,000 deltas). Only the columns the
// plans depend on (user_credit_uploaded: how many rows are users' first), from a sample of
// 3,000 rows (statistics target 10) rather than 30,000: the plans need the row counts and
// whether user_id is about unique, not a fine histogram. Analyzing all columns took 150 ms at
// 100,000 deltas, these three at the default target 25 ms, at target 10 4 ms.
inline constexpr const char* kAnalyzeDeltas =
    "SET LOCAL default_statistics_target = 10; "
    "ANALYZE chihaya_batch_deltas (user_id, flags, user_credit_uploaded)";

// Per user: credit_* (multipliers already applied by the host) plus, for ANCHORED deltas, the
// anchor against the stored report (abi.h, chihaya_peer_delta):
//   stored ? (anchor >= stored ? anchor - stored : anchor) : 0, times multiplier / 1000,
// truncated, totals capped at bigint's maximum. Read before the upsert below replaces the
// stored reports (a later statement of the same transaction).
//
// Measured at 100,000 deltas on 1,000,000 users and 1,000,000 stored peers:
//   - credit_* is summed per user by the driver (capped at 2^63-1) and staged on the user's
//     first delta (user_credit_*, NULL on the others), so the update reads one staged row per
//     user in id order with no aggregate over all deltas; the total is added in bigint with a
//     cap. Summing and finishing it in numeric here took ~70 ms more. (The one difference: a
//     user whose total is negative, which only the web application can write, and whose
//     batch credits exceed 2^63-1, ends up to 2^63-1 lower than an exact sum. Such credits
//     are not traffic.)
//   - only ANCHORED deltas probe the stored report (LATERAL ... LIMIT 1, which keeps the
//     subquery from being flattened into a join that scans chihaya_peers), in numeric (no
//     overflow), summed per user;
//   - hash joins are off for this one statement: with them the planner hashes all of users and
//     updates in hash order (~950 ms); the merge join walks users_pkey in id order, or for a
//     batch of ids spread thinly over a large table the planner probes users_pkey per user, in
//     id order either way (sequential pages, and two batches lock users in the same order).
inline constexpr const char* kCreditUsers =
    "SET LOCAL enable_hashjoin = off; "
    "UPDATE users u "
    "SET uploaded = CASE"
    "      WHEN c.anchored_up IS NOT NULL"
    "        THEN least(u.uploaded::numeric + c.up + c.anchored_up, 9223372036854775807)::bigint"
    "      WHEN u.uploaded < 0 THEN u.uploaded + c.up"  // WHENs in order: no overflow below
    "      WHEN c.up <= 9223372036854775807 - u.uploaded THEN u.uploaded + c.up"
    "      ELSE 9223372036854775807 END,"
    "    downloaded = CASE"
    "      WHEN c.anchored_down IS NOT NULL"
    "        THEN least(u.downloaded::numeric + c.down + c.anchored_down, 9223372036854775807)::bigint"
    "      WHEN u.downloaded < 0 THEN u.downloaded + c.down"
    "      WHEN c.down <= 9223372036854775807 - u.downloaded THEN u.downloaded + c.down"
    "      ELSE 9223372036854775807 END "
    "FROM ("
    "  SELECT d.user_id, d.user_credit_uploaded AS up, d.user_credit_downloaded AS down,"
    "    a.up AS anchored_up, a.down AS anchored_down"
    "  FROM chihaya_batch_deltas d"
    "  LEFT JOIN ("
    "    SELECT d.user_id,"
    "      sum(div(CASE WHEN d.anchor_uploaded >= p.uploaded THEN d.anchor_uploaded - p.uploaded"
    "                   ELSE d.anchor_uploaded END::numeric * d.upload_multiplier, 1000)) AS up,"
    "      sum(div(CASE WHEN d.anchor_downloaded >= p.downloaded"
    "                   THEN d.anchor_downloaded - p.downloaded"
    "                   ELSE d.anchor_downloaded END::numeric * d.download_multiplier, 1000)) AS down"
    "    FROM chihaya_batch_deltas d"
    "    CROSS JOIN LATERAL ("
    "      SELECT p.uploaded, p.downloaded FROM chihaya_peers p"
    "      WHERE p.user_id = d.user_id AND p.torrent_id = d.torrent_id AND p.peer_id = d.peer_id"
    "      LIMIT 1"
    "    ) p"
    "    WHERE d.flags & 1 <> 0"
    "    GROUP BY d.user_id"
    "  ) a ON a.user_id = d.user_id"
    "  WHERE d.user_credit_uploaded IS NOT NULL"
    ") c "
    "WHERE u.id = c.user_id"
    "  AND (c.up <> 0 OR c.down <> 0 OR c.anchored_up <> 0 OR c.anchored_down <> 0); "
    "SET LOCAL enable_hashjoin = on";

// The latest report of every peer that did not stop (one per key even if a host sent two).
inline constexpr const char* kUpsertPeers =
    "INSERT INTO chihaya_peers AS p"
    "  (user_id, torrent_id, peer_id, uploaded, downloaded, \"left\", seeder, updated_at) "
    "SELECT DISTINCT ON (user_id, torrent_id, peer_id)"
    "  user_id, torrent_id, peer_id, uploaded, downloaded, \"left\", flags & 8 <> 0, reported_at "
    "FROM chihaya_batch_deltas WHERE flags & 4 = 0 "
    "ORDER BY user_id, torrent_id, peer_id, reported_at DESC "
    "ON CONFLICT (user_id, torrent_id, peer_id) DO UPDATE SET"
    "  uploaded = EXCLUDED.uploaded, downloaded = EXCLUDED.downloaded, \"left\" = EXCLUDED.\"left\","
    "  seeder = EXCLUDED.seeder, updated_at = EXCLUDED.updated_at "
    // Two hosts' batches can apply out of report order (each catches up at its own pace after
    // an outage): an older report must not replace a newer one, or the next anchored delta
    // would credit the gap twice.
    "WHERE EXCLUDED.updated_at >= p.updated_at";

// Probed per stopped peer: with merge joins allowed the planner walked chihaya_peers_pkey over
// the whole key range of the batch (200,000 entries for 5,000 stopped peers, ~130 ms).
inline constexpr const char* kDeleteStopped =
    "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "
    "DELETE FROM chihaya_peers p USING chihaya_batch_deltas d "
    "WHERE d.flags & 4 <> 0 "
    "  AND p.user_id = d.user_id AND p.torrent_id = d.torrent_id AND p.peer_id = d.peer_id"
    // A late STOPPED (another host's older batch) must not delete a peer that announced since.
    "  AND p.updated_at <= d.reported_at; "
    "SET LOCAL enable_hashjoin = on; SET LOCAL enable_mergejoin = on";

inline constexpr const char* kInsertSnatches =
    "INSERT INTO snatches (user_id, torrent_id, snatched_at) "
    "SELECT user_id, torrent_id, min(reported_at) "
    "FROM chihaya_batch_deltas WHERE flags & 2 <> 0 GROUP BY user_id, torrent_id "
    "ON CONFLICT (user_id, torrent_id) DO NOTHING";

inline constexpr const char* kUpdateTorrentStats =
    "UPDATE torrents t SET seeders = s.seeders, leechers = s.leechers, snatched = s.snatched,"
    "  stats_at = now() "
    "FROM chihaya_batch_torrents s WHERE t.id = s.torrent_id";

inline constexpr const char* kMarkBatchApplied =
    "UPDATE chihaya_batches SET sequence = $2::bigint, applied_at = now() WHERE host_id = $1";

}  // namespace chihaya::postgres::sql
