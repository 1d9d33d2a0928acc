"""Private mode end to end: the real chihaya, a real PostgreSQL with etc/postgres/schema.sql, and
simulated clients whose every transferred byte is known, so the database's totals can be held to
exactly what the clients reported, through outages, SIGTERM and SIGKILL."""

import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracker_fixture import (V4, V6, HttpConn, Tracker, UdpClient, UdpError, unittest_main,  # noqa: E402
                             announce_path, bdecode, peer_id, random_hash, scrape_path)
import postgres_fixture  # noqa: E402
import redis_fixture  # noqa: E402

FLUSH_MS = 200
SETTLE_S = 10.0  # bounded wait for the database to show what the tracker accepted
# Never in any log line: every passkey the tests hand out, and the database password (the
# fixture's server demands it: scram over TCP).
DB_PASSWORD = postgres_fixture.PASSWORD


def sql_bytes(b):
    return "decode('%s', 'hex')" % b.hex()


class Registry:
    """The web application's side: rows in users / torrents / client_whitelist."""

    def __init__(self, pg):
        self.pg = pg
        self.next_user = 1
        self.next_torrent = 1
        self.passkeys = []

    def user(self, enabled=True, slots=0, up=1000, down=1000):
        uid = self.next_user
        self.next_user += 1
        passkey = "pk%030x" % int.from_bytes(os.urandom(15), "big")
        self.passkeys.append(passkey)
        self.pg.sql("INSERT INTO users (id, passkey, enabled, leech_slots, upload_multiplier, "
                    "download_multiplier) VALUES (%d, '%s', %s, %d, %d, %d)"
                    % (uid, passkey, "true" if enabled else "false", slots, up, down))
        return uid, passkey

    def torrent(self, enabled=True, up=1000, down=1000):
        tid = self.next_torrent
        self.next_torrent += 1
        h = random_hash()
        self.pg.sql("INSERT INTO torrents (id, info_hash, enabled, upload_multiplier, "
                    "download_multiplier) VALUES (%d, %s, %s, %d, %d)"
                    % (tid, sql_bytes(h), "true" if enabled else "false", up, down))
        return tid, h

    def totals(self):
        rows = self.pg.sql("SELECT id, uploaded, downloaded FROM users ORDER BY id")
        out = {}
        for line in rows.splitlines():
            uid, up, down = line.split("|")
            out[int(uid)] = (int(up), int(down))
        return out


class Client:
    """One simulated BitTorrent client in one swarm: it 'transfers' bytes and reports its
    cumulative counters as a real client does (from zero at every 'started')."""

    def __init__(self, user, passkey, info_hash, port, proto="http", host=V4):
        self.user, self.passkey, self.info_hash = user, passkey, info_hash
        self.port, self.proto, self.host = port, proto, host
        self.peer_id = peer_id(b"-lt2000-")
        self.up = self.down = 0  # what the client reports: bytes since its session started
        self.left = 1 << 30
        self.session_open = False

    def transfer(self, up, down):
        self.up += up
        self.down += down

    def restart(self):
        """The client restarts: counters back to zero, and its next announce says started."""
        self.up = self.down = 0
        self.session_open = False

    def announce(self, tracker, event=None):
        if not self.session_open and event is None:
            event = "started"
        if self.proto == "http":
            with tracker.http(self.host) as c:
                body = c.get(announce_path(self.info_hash, self.peer_id, self.port, event=event,
                                           left=self.left, uploaded=self.up,
                                           downloaded=self.down, passkey=self.passkey)).bencoded()
            if b"failure reason" in body:
                raise AssertionError(body[b"failure reason"].decode())
        else:
            with tracker.udp(self.host) as u:
                u.announce(self.info_hash, self.peer_id, self.port, event=event, left=self.left,
                           uploaded=self.up, downloaded=self.down,
                           url_data="/%s/announce" % self.passkey)
        self.session_open = event != "stopped"
        return event


class Sessions:
    """What the clients reported, per user: the sum of every session's last report. This is the
    truth the database must equal."""

    def __init__(self, clients):
        self.clients = clients
        self.closed = {id(c): (0, 0) for c in clients}

    def close(self, client):
        up, down = self.closed[id(client)]
        self.closed[id(client)] = (up + client.up, down + client.down)
        client.up = client.down = 0

    def restart(self, client):
        self.close(client)
        client.restart()

    def expected(self):
        out = {}
        for c in self.clients:
            up, down = self.closed[id(c)]
            u, d = out.get(c.user, (0, 0))
            out[c.user] = (u + up + c.up, d + down + c.down)
        return out


class PrivateTest(unittest.TestCase):
    """A fresh database per test class; a spool directory per tracker host."""

    @classmethod
    def setUpClass(cls):
        cls.pg = postgres_fixture.PostgresServer()
        cls.pg.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.pg.__exit__(None, None, None)

    def setUp(self):
        self.pg.sql("TRUNCATE users, torrents, client_whitelist, snatches, chihaya_peers, "
                    "chihaya_batches, chihaya_changes")
        self.reg = Registry(self.pg)
        self.trackers = []

    def tearDown(self):
        for t in self.trackers:
            t.cleanup()

    def spool(self):
        d = tempfile.mkdtemp(prefix="chihaya-spool-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def tracker(self, spool, cache=None, flush_ms=FLUSH_MS, start=True, admin=False, **extra):
        overrides = {
            "tracker": {"mode": "private", "announce_interval": 60, "min_interval": 30},
            "storage": {"driver": "postgres", "flush_interval_ms": flush_ms, "spool_dir": spool},
            "storage.postgres": {"conninfo": self.pg.conninfo},
        }
        if cache:
            overrides["cache"] = {"driver": cache[0]}
            overrides["cache." + cache[0]] = cache[1]
        for k, v in extra.items():
            overrides.setdefault(k, {}).update(v)
        t = Tracker(overrides, admin=admin)
        self.trackers.append(t)
        if start:
            t.start()
        return t

    def assert_no_secrets(self, tracker):
        """No passkey and no database password anywhere in the tracker's whole log (also in hex
        or percent-encoded form)."""
        tracker.assert_log_free_of(self.reg.passkeys + [DB_PASSWORD])

    def wait_totals(self, expected, stable_s=3 * FLUSH_MS / 1000.0 + 0.5):
        """The database's per-user totals equal `expected`, and still do a few flushes later
        (equality passed on the way to a double count would otherwise go unnoticed)."""
        deadline = time.monotonic() + SETTLE_S
        got = None
        while time.monotonic() < deadline:
            got = {u: v for u, v in self.reg.totals().items() if u in expected}
            if got == expected:
                break
            time.sleep(0.1)
        self.assertEqual(got, expected)
        time.sleep(stable_s)
        got = {u: v for u, v in self.reg.totals().items() if u in expected}
        self.assertEqual(got, expected, "totals moved after they matched: counted twice")


class Admission(PrivateTest):
    def test_every_rule_is_named_and_changes_nothing(self):
        uid, passkey = self.reg.user()
        _, off = self.reg.user(enabled=False)
        _, h = self.reg.torrent()
        _, h_off = self.reg.torrent(enabled=False)
        self.pg.sql("INSERT INTO client_whitelist (prefix) VALUES ('-lt20')")
        t = self.tracker(self.spool())
        pid = peer_id(b"-lt2000-")
        cases = [
            (None, h, pid, "passkey required"),
            ("nosuchpasskey0000000000000000000", h, pid, "unknown passkey"),
            (off, h, pid, "account disabled"),
            (passkey, random_hash(), pid, "unregistered torrent"),
            (passkey, h_off, pid, "torrent disabled"),
            (passkey, h, peer_id(b"-XX0001-"), "client not allowed"),
        ]
        for key, info_hash, p, reason in cases:
            with t.http() as c:
                body = c.get(announce_path(info_hash, p, 7000, event="started", left=5,
                                           passkey=key)).bencoded()
            self.assertIn(reason, body.get(b"failure reason", b"").decode(), (key, reason))
            with t.udp() as u:
                with self.assertRaises(UdpError) as e:
                    u.announce(info_hash, p, 7001, event="started", left=5,
                               url_data=None if key is None else "/%s/announce" % key)
                self.assertIn(reason, str(e.exception))
        # None of the refused announces reached the swarm.
        with t.http() as c:
            files = c.get("/%s/scrape?info_hash=%s" % (passkey, "".join("%%%02x" % b for b in h))
                          ).bencoded()[b"files"]
        self.assertEqual(files[h][b"incomplete"] + files[h][b"complete"], 0)
        # The admitted one does, over both protocols.
        Client(uid, passkey, h, 7002).announce(t)
        Client(uid, passkey, h, 7003, proto="udp").announce(t)
        with t.http() as c:
            body = c.get("/%s/scrape?info_hash=%s" % (passkey, "".join("%%%02x" % b for b in h))
                         ).bencoded()
        self.assertEqual(body[b"files"][h][b"incomplete"], 2)
        with t.http() as c:  # a scrape needs a passkey too
            body = c.get(scrape_path([h])).bencoded()
        self.assertIn(b"passkey required", body[b"failure reason"])
        t.stop_checked()
        self.assert_no_secrets(t)

    def test_registry_changes_reach_the_tracker_within_two_seconds(self):
        uid, passkey = self.reg.user()
        tid, h = self.reg.torrent()
        t = self.tracker(self.spool())
        c = Client(uid, passkey, h, 7000)
        c.announce(t)

        def within_2s(check):
            deadline = time.monotonic() + 2.0
            while True:
                try:
                    check()
                    return
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

        def fails_with(client, reason):
            def check():
                try:
                    client.announce(t)
                except AssertionError as e:
                    self.assertIn(reason, str(e))
                    return
                raise AssertionError("announce still accepted")
            return check

        self.pg.sql("UPDATE users SET enabled = false WHERE id = %d" % uid)
        within_2s(fails_with(c, "account disabled"))
        self.pg.sql("UPDATE users SET enabled = true, passkey = 'pk-rotated-000000000000000000000' "
                    "WHERE id = %d" % uid)
        self.reg.passkeys.append("pk-rotated-000000000000000000000")
        within_2s(fails_with(c, "unknown passkey"))  # the old passkey is revoked
        c.passkey = "pk-rotated-000000000000000000000"
        within_2s(lambda: c.announce(t))
        new_tid, new_h = self.reg.torrent()
        within_2s(lambda: Client(uid, c.passkey, new_h, 7001).announce(t))
        self.pg.sql("DELETE FROM torrents WHERE id = %d" % tid)
        within_2s(fails_with(c, "unregistered torrent"))
        new_uid, new_key = self.reg.user()
        within_2s(lambda: Client(new_uid, new_key, new_h, 7002).announce(t))
        t.stop_checked()
        self.assert_no_secrets(t)


class Accounting(PrivateTest):
    def traffic(self, tracker, clients, sessions, rounds=3):
        for r in range(rounds):
            for i, c in enumerate(clients):
                c.transfer(1000 * (i + 1) + r, 300 * (i + 1) + r)
                c.announce(tracker)

    def test_totals_equal_what_the_clients_reported(self):
        u1, k1 = self.reg.user()
        u2, k2 = self.reg.user()
        _, h1 = self.reg.torrent()
        _, h2 = self.reg.torrent()
        t = self.tracker(self.spool())
        clients = [Client(u1, k1, h1, 7000), Client(u1, k1, h2, 7001, proto="udp"),
                   Client(u2, k2, h1, 7002, host=V6), Client(u2, k2, h2, 7003, proto="udp", host=V6)]
        sessions = Sessions(clients)
        self.traffic(t, clients, sessions)
        # A client restarts (counters from zero again), another one drops its counters without
        # saying started (a value lower than the last is a new session), one stops and returns.
        sessions.restart(clients[0])
        clients[0].transfer(50, 60)
        clients[0].announce(t)
        sessions.close(clients[1])
        clients[1].transfer(7, 8)
        clients[1].announce(t)
        clients[2].transfer(10, 10)
        clients[2].announce(t, "stopped")
        sessions.restart(clients[2])
        clients[2].transfer(5, 5)
        clients[2].announce(t)
        self.wait_totals(sessions.expected())
        t.stop_checked()
        self.assert_no_secrets(t)

    def test_completed_twice_is_one_snatch_and_multipliers_apply(self):
        uid, key = self.reg.user(up=2000)       # double upload for this user
        tid, h = self.reg.torrent(down=0)       # freeleech torrent
        t = self.tracker(self.spool())
        c = Client(uid, key, h, 7000)
        c.announce(t)
        c.transfer(1000, 4000)
        c.left = 0
        c.announce(t, "completed")
        c.transfer(500, 0)
        c.announce(t, "completed")
        self.wait_totals({uid: (3000, 0)})
        self.assertEqual(self.pg.sql("SELECT count(*) FROM snatches WHERE user_id = %d AND "
                                     "torrent_id = %d" % (uid, tid)).strip(), "1")
        t.stop_checked()

    def test_postgres_outage_loses_nothing(self):
        uid, key = self.reg.user()
        _, h = self.reg.torrent()
        t = self.tracker(self.spool())
        clients = [Client(uid, key, h, 7000 + i, proto="udp" if i % 2 else "http") for i in range(4)]
        sessions = Sessions(clients)
        self.traffic(t, clients, sessions, rounds=1)
        self.pg.stop()
        try:
            self.traffic(t, clients, sessions, rounds=3)  # answered from the cache meanwhile
            time.sleep(4 * FLUSH_MS / 1000.0)
        finally:
            self.pg.start()
        self.wait_totals(sessions.expected())
        t.stop_checked()

    def test_sigterm_applies_everything_accepted(self):
        uid, key = self.reg.user()
        _, h = self.reg.torrent()
        t = self.tracker(self.spool(), flush_ms=600000)  # nothing is flushed by the timer
        clients = [Client(uid, key, h, 7000 + i) for i in range(3)]
        sessions = Sessions(clients)
        self.traffic(t, clients, sessions)
        t.stop_checked()
        got = self.reg.totals()[uid]
        self.assertEqual(got, sessions.expected()[uid])

    def sigkill_mid_traffic(self, cache=None):
        uid, key = self.reg.user()
        _, h = self.reg.torrent()
        spool = self.spool()
        t = self.tracker(spool, cache=cache, flush_ms=600000)
        clients = [Client(uid, key, h, 7000 + i, proto="udp" if i % 2 else "http") for i in range(4)]
        sessions = Sessions(clients)
        self.traffic(t, clients, sessions)
        t.proc.send_signal(signal.SIGKILL)
        t.proc.wait()
        self.assertEqual(self.reg.totals()[uid], (0, 0))  # nothing had been flushed
        # The next run recovers the journal first: the totals are there before any client
        # announces again ...
        t2 = self.tracker(spool, cache=cache)
        self.wait_totals(sessions.expected())
        # ... and announcing again adds only what was transferred since.
        self.traffic(t2, clients, sessions, rounds=2)
        self.wait_totals(sessions.expected())
        t2.stop_checked()
        self.assert_no_secrets(t2)

    def test_sigkill_mid_traffic_memory_cache(self):
        self.sigkill_mid_traffic()

    def test_sigkill_mid_traffic_redis_cache(self):
        with redis_fixture.RedisServer() as redis:
            self.sigkill_mid_traffic(("redis", {"addresses": redis.address}))

    def test_sigkill_between_spool_and_apply(self):
        uid, key = self.reg.user()
        _, h = self.reg.torrent()
        spool = self.spool()
        t = self.tracker(spool)
        clients = [Client(uid, key, h, 7000 + i) for i in range(3)]
        sessions = Sessions(clients)
        self.pg.stop()
        try:
            self.traffic(t, clients, sessions)
            deadline = time.monotonic() + SETTLE_S
            while not [f for f in os.listdir(spool) if f.endswith(".chb")]:
                self.assertLess(time.monotonic(), deadline, "no batch was spooled")
                time.sleep(0.05)
            t.proc.send_signal(signal.SIGKILL)
            t.proc.wait()
        finally:
            self.pg.start()
        t2 = self.tracker(spool)
        self.wait_totals(sessions.expected())
        t2.stop_checked()

    def test_two_hosts_on_one_redis_share_the_counters(self):
        u1, k1 = self.reg.user()
        _, h = self.reg.torrent()
        with redis_fixture.RedisServer() as redis:
            cache = ("redis", {"addresses": redis.address})
            a = self.tracker(self.spool(), cache=cache)
            b = self.tracker(self.spool(), cache=cache)
            clients = [Client(u1, k1, h, 7000 + i, proto="udp" if i % 2 else "http") for i in range(4)]
            sessions = Sessions(clients)
            for r in range(6):  # every client alternates between the hosts
                for i, c in enumerate(clients):
                    c.transfer(100 * (i + 1) + r, 10 * (i + 1))
                    c.announce(a if (r + i) % 2 else b)
            self.wait_totals(sessions.expected())
            a.stop_checked()
            b.stop_checked()


class Readiness(PrivateTest):
    def wait_readyz(self, t, status, within_s, why):
        deadline = time.monotonic() + within_s
        got = t.admin_get("/readyz")
        while got[0] != status:
            self.assertLess(time.monotonic(), deadline, "%s: /readyz still %r" % (why, got))
            time.sleep(0.2)
            got = t.admin_get("/readyz")
        return got

    def test_readyz_follows_postgres_without_traffic(self):
        """Nothing is announced: no flush fails, so only the storage's own word on its connection
        (ABI 2.2 health) can take /readyz down, and bring it back."""
        t = self.tracker(self.spool(), admin=True)
        self.wait_readyz(t, 200, 5, "after start-up")
        self.pg.stop()
        try:
            t0 = time.monotonic()
            status, body = self.wait_readyz(t, 503, 5, "PostgreSQL stopped")
            self.assertIn('storage driver "postgres" not ready', body)
            self.assertIn("unavailable", body)
            self.assertEqual(t.admin_get("/healthz")[0], 200)  # alive all the same
            # It stays down while PostgreSQL does (the listener's retries fail too).
            time.sleep(max(0.0, 2.5 - (time.monotonic() - t0)))
            self.assertEqual(t.admin_get("/readyz")[0], 503)
        finally:
            self.pg.start()
        # The listener reconnects within its backoff (at most 5 s) and /readyz follows.
        self.wait_readyz(t, 200, 15, "PostgreSQL back")
        self.assert_no_secrets(t)
        t.stop_checked()


class StartUp(PrivateTest):
    def test_bad_rows_are_named_and_skipped(self):
        uid, key = self.reg.user()
        _, h = self.reg.torrent()
        self.pg.sql("INSERT INTO users (id, passkey) VALUES (900, NULL)")
        self.pg.sql("INSERT INTO torrents (id, info_hash) VALUES (901, %s)" % sql_bytes(b"\x01" * 19))
        self.pg.sql("INSERT INTO client_whitelist (id, prefix) VALUES (902, '-lt'), (903, '-lt')")
        t = self.tracker(self.spool())
        log = t.log_text(full=True)
        for table, row in (("users", 900), ("torrents", 901), ("client_whitelist", 903)):
            self.assertIn("%s row id=%d skipped" % (table, row), log)
        self.assertNotIn("client_whitelist row id=902 skipped", log)  # the first '-lt' stays
        Client(uid, key, h, 7000).announce(t)
        t.stop_checked()

    def test_unusable_spool_dir_stops_start_up_with_the_reason(self):
        d = self.spool()
        blocker = os.path.join(d, "file")
        with open(blocker, "w") as f:
            f.write("x")
        t = self.tracker(os.path.join(blocker, "spool"), start=False)
        with self.assertRaises(RuntimeError) as e:
            t.start()
        self.assertIn("spool_dir", str(e.exception))
        self.assertIn(blocker, str(e.exception))

    def test_private_mode_needs_a_storage_that_can_serve_it(self):
        t = Tracker({"tracker": {"mode": "private"}})
        self.trackers.append(t)
        with self.assertRaises(RuntimeError) as e:
            t.start()
        self.assertIn('storage driver "none" cannot serve private mode', str(e.exception))

    @unittest.skipUnless(os.geteuid() == 0, "dropping privileges needs root")
    def test_dropped_privileges_keep_the_spool_writable(self):
        """[process] user: the spool made at start-up (as root) is handed to the user, so batches
        are still sealed and applied after the drop."""
        uid, key = self.reg.user()
        _, h = self.reg.torrent()
        spool = self.spool()  # under /tmp (1777): the dropped user reaches it once it owns it
        t = self.tracker(spool, process={"user": "nobody"})
        c = Client(uid, key, h, 7000)
        c.announce(t)
        c.transfer(1234, 567)
        c.announce(t)
        self.wait_totals({uid: (1234, 567)})
        t.stop_checked()
        self.assertEqual(os.stat(spool).st_uid, 65534)

    def test_leech_slots(self):
        uid, key = self.reg.user(slots=1)
        _, h1 = self.reg.torrent()
        _, h2 = self.reg.torrent()
        t = self.tracker(self.spool())
        Client(uid, key, h1, 7000).announce(t)
        with self.assertRaises(AssertionError) as e:
            Client(uid, key, h2, 7001).announce(t)
        self.assertIn("leeching slot limit reached", str(e.exception))
        seeding = Client(uid, key, h2, 7002)
        seeding.left = 0
        seeding.announce(t)  # seeding takes no slot
        t.stop_checked()


if __name__ == "__main__":
    unittest_main()
