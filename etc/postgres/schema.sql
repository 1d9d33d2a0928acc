-- etc/postgres/schema.sql: the tables chihaya's "postgres" storage driver reads and writes.
--
-- Idempotent: run it again (psql -v ON_ERROR_STOP=1 -f schema.sql) after an upgrade and it only
-- adds what is missing; it never drops a table or a row.
--
-- Who writes what:
--   users, torrents, client_whitelist   the web application (the tracker only adds traffic to
--                                       users.uploaded/downloaded and counts to torrents)
--   snatches                            the tracker (one row per completed user and torrent)
--   chihaya_peers, chihaya_batches      the tracker only
--   chihaya_changes                     the triggers below; the tracker reads and prunes it
-- There is deliberately no foreign key from a tracker table to a web table: a user or torrent
-- the web application deletes must never make a batch of traffic fail.
--
-- Needs PostgreSQL 13 or later (xid8, pg_current_xact_id, pg_visible_in_snapshot).

-- ---- the web application's tables ------------------------------------------------------------

CREATE TABLE IF NOT EXISTS users (
    id                  bigint PRIMARY KEY,
    passkey             text UNIQUE,                      -- 1..64 of [0-9A-Za-z_-]; NULL = cannot announce
    enabled             boolean NOT NULL DEFAULT true,
    uploaded            bigint  NOT NULL DEFAULT 0,       -- bytes, multipliers applied (tracker adds)
    downloaded          bigint  NOT NULL DEFAULT 0,
    upload_multiplier   integer NOT NULL DEFAULT 1000,    -- per mille: 1000 = 1x
    download_multiplier integer NOT NULL DEFAULT 1000,    -- per mille: 0 = downloads not counted
    leech_slots         integer NOT NULL DEFAULT 0        -- torrents leeched at once; 0 = no limit
) WITH (fillfactor = 50);
-- fillfactor 50 (users, chihaya_peers; torrents 90): see "fillfactor" at the end of this file.

CREATE TABLE IF NOT EXISTS torrents (
    id                  bigint PRIMARY KEY,
    info_hash           bytea UNIQUE,                     -- exactly 20 bytes (SHA-1 of the info dict)
    enabled             boolean NOT NULL DEFAULT true,
    upload_multiplier   integer NOT NULL DEFAULT 1000,
    download_multiplier integer NOT NULL DEFAULT 1000,    -- 0 = freeleech
    seeders             integer NOT NULL DEFAULT 0,       -- written by the tracker
    leechers            integer NOT NULL DEFAULT 0,       -- written by the tracker
    snatched            integer NOT NULL DEFAULT 0,       -- written by the tracker
    stats_at            timestamptz                       -- when the tracker last wrote the three
) WITH (fillfactor = 90);  -- room for HOT updates of the stats

-- peer_id prefixes of allowed clients ("-qB4", "-lt20"); empty = any client.
CREATE TABLE IF NOT EXISTS client_whitelist (
    id     bigserial PRIMARY KEY,
    prefix text NOT NULL                                  -- 1..20 bytes
);

CREATE TABLE IF NOT EXISTS snatches (
    user_id     bigint NOT NULL,
    torrent_id  bigint NOT NULL,
    snatched_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, torrent_id)
);

-- ---- the tracker's own tables ----------------------------------------------------------------

-- The last cumulative report accounted for each peer: an ANCHORED delta (a peer the tracker's
-- cache did not know, e.g. after a tracker restart) is credited against it.
CREATE TABLE IF NOT EXISTS chihaya_peers (
    user_id    bigint      NOT NULL,
    torrent_id bigint      NOT NULL,
    peer_id    bytea       NOT NULL,
    uploaded   bigint      NOT NULL,
    downloaded bigint      NOT NULL,
    "left"     bigint      NOT NULL,
    seeder     boolean     NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, torrent_id, peer_id)
) WITH (fillfactor = 50);
-- Deliberately no index on updated_at: every batch rewrites it, and an index on it would make
-- each of those updates a non-HOT one. Pruning (once a minute) scans the table instead.

-- The last batch applied per tracker host: a batch is applied at most once.
CREATE TABLE IF NOT EXISTS chihaya_batches (
    host_id    text PRIMARY KEY,
    sequence   bigint NOT NULL,
    applied_at timestamptz
);

-- The change log the triggers append to and every tracker host follows.
--   kind: 'u' users, 't' torrents, 'c' client_whitelist (id = the row's id);
--         'r' a table was truncated: reload everything (id = 0).
--   txid: the writing transaction. seq is allocated before commit, so commit order is not seq
--         order; a reader asks "which rows became visible since my last snapshot"
--         (pg_visible_in_snapshot), which misses nothing, instead of "seq > last".
CREATE TABLE IF NOT EXISTS chihaya_changes (
    seq        bigserial PRIMARY KEY,
    kind       "char" NOT NULL,
    id         bigint NOT NULL,
    txid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS chihaya_changes_txid ON chihaya_changes (txid);
CREATE INDEX IF NOT EXISTS chihaya_changes_changed_at ON chihaya_changes (changed_at);

-- One row: the newest transaction whose change rows were pruned. A reader whose last snapshot
-- may not have seen that transaction lost changes and reloads everything.
CREATE TABLE IF NOT EXISTS chihaya_changes_horizon (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pruned_max_txid xid8 NOT NULL DEFAULT '0'
);
INSERT INTO chihaya_changes_horizon (singleton) VALUES (true) ON CONFLICT DO NOTHING;

-- Deletes change rows older than `older_than` and moves the horizon. The only supported way to
-- shorten the log (a plain DELETE would let readers miss changes unnoticed).
CREATE OR REPLACE FUNCTION chihaya_prune_changes(older_than interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    newest xid8;
    n bigint;
BEGIN
    WITH gone AS (
        DELETE FROM chihaya_changes WHERE changed_at < now() - older_than RETURNING txid
    )
    SELECT max(txid), count(*) INTO newest, n FROM gone;
    IF newest IS NOT NULL THEN
        UPDATE chihaya_changes_horizon SET pruned_max_txid = greatest(pruned_max_txid, newest);
    END IF;
    RETURN n;
END $$;

-- ---- triggers: every tracker-relevant change of a web table lands in chihaya_changes --------

CREATE OR REPLACE FUNCTION chihaya_log_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    k "char" := TG_ARGV[0];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO chihaya_changes (kind, id) VALUES ('r', 0);
    ELSE
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            INSERT INTO chihaya_changes (kind, id) VALUES (k, OLD.id);
        END IF;
        IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id) THEN
            INSERT INTO chihaya_changes (kind, id) VALUES (k, NEW.id);
        END IF;
    END IF;
    -- Identical notifications of one transaction are folded into one by PostgreSQL.
    PERFORM pg_notify('chihaya_changes', '');
    RETURN NULL;
END $$;

-- users: only the columns the tracker holds. The tracker's own writes (uploaded, downloaded)
-- must not fire, or every flush would flood the log.
DROP TRIGGER IF EXISTS chihaya_users_insert_delete ON users;
CREATE TRIGGER chihaya_users_insert_delete AFTER INSERT OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION chihaya_log_change('u');
DROP TRIGGER IF EXISTS chihaya_users_update ON users;
CREATE TRIGGER chihaya_users_update AFTER UPDATE ON users
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id
                       OR OLD.passkey IS DISTINCT FROM NEW.passkey
                       OR OLD.enabled IS DISTINCT FROM NEW.enabled
                       OR OLD.upload_multiplier IS DISTINCT FROM NEW.upload_multiplier
                       OR OLD.download_multiplier IS DISTINCT FROM NEW.download_multiplier
                       OR OLD.leech_slots IS DISTINCT FROM NEW.leech_slots)
    EXECUTE FUNCTION chihaya_log_change('u');
DROP TRIGGER IF EXISTS chihaya_users_truncate ON users;
CREATE TRIGGER chihaya_users_truncate AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION chihaya_log_change('u');

-- torrents: not seeders, leechers, snatched, stats_at (the tracker's own writes).
DROP TRIGGER IF EXISTS chihaya_torrents_insert_delete ON torrents;
CREATE TRIGGER chihaya_torrents_insert_delete AFTER INSERT OR DELETE ON torrents
    FOR EACH ROW EXECUTE FUNCTION chihaya_log_change('t');
DROP TRIGGER IF EXISTS chihaya_torrents_update ON torrents;
CREATE TRIGGER chihaya_torrents_update AFTER UPDATE ON torrents
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id
                       OR OLD.info_hash IS DISTINCT FROM NEW.info_hash
                       OR OLD.enabled IS DISTINCT FROM NEW.enabled
                       OR OLD.upload_multiplier IS DISTINCT FROM NEW.upload_multiplier
                       OR OLD.download_multiplier IS DISTINCT FROM NEW.download_multiplier)
    EXECUTE FUNCTION chihaya_log_change('t');
DROP TRIGGER IF EXISTS chihaya_torrents_truncate ON torrents;
CREATE TRIGGER chihaya_torrents_truncate AFTER TRUNCATE ON torrents
    FOR EACH STATEMENT EXECUTE FUNCTION chihaya_log_change('t');

DROP TRIGGER IF EXISTS chihaya_client_whitelist_change ON client_whitelist;
CREATE TRIGGER chihaya_client_whitelist_change AFTER INSERT OR UPDATE OR DELETE ON client_whitelist
    FOR EACH ROW EXECUTE FUNCTION chihaya_log_change('c');
DROP TRIGGER IF EXISTS chihaya_client_whitelist_truncate ON client_whitelist;
CREATE TRIGGER chihaya_client_whitelist_truncate AFTER TRUNCATE ON client_whitelist
    FOR EACH STATEMENT EXECUTE FUNCTION chihaya_log_change('c');

-- ---- fillfactor: room for the tracker's updates to stay HOT ------------------------------------
--
-- Every batch rewrites users.uploaded/downloaded of its users and the chihaya_peers row of each
-- peer. Neither touches an indexed column, so the new version can be a HOT update (no index
-- entry written) if it fits on the same page. The old versions of this batch are reclaimed only
-- by a later one, so a page needs free room for the new version of every row the batch writes
-- there: at fillfactor 50 a batch may rewrite every row of a page and stay HOT. Batches do:
-- a page of users filled by consecutive ids, or a page of chihaya_peers filled by peers that
-- started together (and so announce again together). Measured at 100,000 deltas
-- (bench/README.md): the users update took 540 ms at fillfactor 90 (17 % HOT), 460 ms at 70 and
-- 250 ms at 50 (98 % HOT); the chihaya_peers upsert of the same peers 400 ms at 90, 240 ms at 50.
-- The price is tables about twice as large.
--
-- An existing table is set to 50 unless its fillfactor was chosen by hand: a value other than
-- 90 (what this file used to create them with) is left alone. SET (fillfactor) takes a SHARE
-- UPDATE EXCLUSIVE lock, so the web application's reads and writes go on. It applies to pages
-- filled from then on; rows move there as non-HOT updates touch them, or at once with
-- pg_repack (or VACUUM FULL, which locks the table).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'chihaya_peers'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_class c, pg_options_to_table(c.reloptions) o
                       WHERE c.oid = t::regclass AND o.option_name = 'fillfactor'
                         AND o.option_value <> '90') THEN
            EXECUTE format('ALTER TABLE %I SET (fillfactor = 50)', t);
        END IF;
    END LOOP;
END $$;
