"""Operating the real binary: the admin listener (/metrics parsed by prometheus_client, /healthz,
/readyz), JSON logs, secrets kept out of the log, and SIGHUP reload under load."""

import json
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracker_fixture import (V4, V6, Tracker, UdpError, announce_path, is_rejection, peer_id,
                             random_hash, scrape_path)


def sample(families, name, **labels):
    """The value of one sample (name with its suffix, e.g. x_total) whose labels include `labels`;
    0 when the family exists but no such sample; KeyError when the family is missing."""
    family = name
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if name.endswith(suffix) and name[:-len(suffix)] in families:
            family = name[:-len(suffix)]
    total = 0.0
    for s in families[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
    return total


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = Tracker(admin=True, overrides={"tracker": {"max_scrape_torrents": 4}}).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.t.stop_checked()
        finally:
            cls.t.cleanup()

    def test_counts_requests_by_protocol_action_and_result(self):
        before = self.t.metrics()
        h = random_hash()
        with self.t.udp(V4) as c:
            c.announce(h, peer_id(), 7001, event="started", left=1)
            c.announce(h, peer_id(), 7002, event="started", left=0)
            c.scrape([h])
            # A forged connection id: its own class, not "malformed".
            c.connection_id ^= 0xFFFF
            with self.assertRaises(UdpError):
                c.announce(h, peer_id(), 7003)
        with self.t.http(V6) as c:
            self.assertEqual(c.get(announce_path(h, peer_id(), 7004, left=1)).status, 200)
            self.assertTrue(is_rejection(c.get(announce_path(h, peer_id(), 0, left=1))))  # port 0
            self.assertTrue(is_rejection(c.get("/announce?info_hash=x")))                 # malformed
            self.assertEqual(c.get("/nope").status, 404)
            self.assertTrue(is_rejection(c.get(scrape_path([random_hash() for _ in range(5)]))))
        after = self.t.metrics()

        def delta(**labels):
            return (sample(after, "chihaya_requests_total", **labels)
                    - sample(before, "chihaya_requests_total", **labels))
        self.assertEqual(delta(protocol="udp", action="announce", result="ok"), 2)
        self.assertEqual(delta(protocol="udp", action="scrape", result="ok"), 1)
        self.assertEqual(delta(protocol="udp", action="connect", result="ok"), 1)
        self.assertEqual(delta(protocol="udp", action="announce", result="bad_connection_id"), 1)
        self.assertEqual(delta(protocol="http", action="announce", result="ok"), 1)
        self.assertEqual(delta(protocol="http", action="announce", result="invalid_port"), 1)
        self.assertEqual(delta(protocol="http", action="announce", result="malformed"), 1)
        self.assertEqual(delta(protocol="http", action="other", result="not_found"), 1)
        self.assertEqual(delta(protocol="http", action="scrape", result="too_large"), 1)
        limit = (sample(after, "chihaya_limit_hits_total", limit="max_scrape_torrents")
                 - sample(before, "chihaya_limit_hits_total", limit="max_scrape_torrents"))
        self.assertEqual(limit, 1)

        # Latency histograms: every answered announce observed, buckets cumulative to +Inf.
        # UDP: the two announces that reached the tracker (a forged id is refused before a slot);
        # HTTP: every announce answered, the refused ones too.
        for proto, n in (("udp", 2), ("http", 3)):
            count = (sample(after, "chihaya_request_duration_seconds_count", protocol=proto, action="announce")
                     - sample(before, "chihaya_request_duration_seconds_count", protocol=proto, action="announce"))
            self.assertEqual(count, n, proto)
            inf = sample(after, "chihaya_request_duration_seconds_bucket", protocol=proto,
                         action="announce", le="+Inf")
            self.assertEqual(inf, sample(after, "chihaya_request_duration_seconds_count",
                                         protocol=proto, action="announce"))
        calls = (sample(after, "chihaya_cache_calls_total", call="announce", status="ok")
                 - sample(before, "chihaya_cache_calls_total", call="announce", status="ok"))
        self.assertEqual(calls, 3)  # the port-0 and forged-id announces never reach the driver

    def test_swarm_gauges_by_family_build_info_and_plugins(self):
        # The memory driver has stats (ABI 2.2): read at every scrape, so exact at once.
        gauges = (("chihaya_torrents", {}),
                  ("chihaya_torrents_with_peers", {"family": "ipv4"}),
                  ("chihaya_torrents_with_peers", {"family": "ipv6"}),
                  ("chihaya_peers", {"family": "ipv4", "role": "seeder"}),
                  ("chihaya_peers", {"family": "ipv4", "role": "leecher"}),
                  ("chihaya_peers", {"family": "ipv6", "role": "seeder"}),
                  ("chihaya_peers", {"family": "ipv6", "role": "leecher"}))
        before = self.t.metrics()
        h, only_v6 = random_hash(), random_hash()
        with self.t.udp(V4) as c:
            c.announce(h, peer_id(), 7101, event="started", left=0)
            c.announce(h, peer_id(), 7102, event="started", left=5)
            c.announce(h, peer_id(), 7103, event="started", left=5)
        with self.t.http(V6) as c:
            self.assertEqual(c.get(announce_path(h, peer_id(), 7104, left=0)).status, 200)
            self.assertEqual(c.get(announce_path(only_v6, peer_id(), 7105, left=5)).status, 200)
        m = self.t.metrics()
        deltas = [sample(m, name, **labels) - sample(before, name, **labels) for name, labels in gauges]
        self.assertEqual(deltas, [2, 1, 2, 1, 2, 1, 1])
        with self.t.udp(V4) as c:  # a leecher becomes a seeder, another leaves
            c.announce(h, peer_id(), 7102, left=0)
            c.announce(h, peer_id(), 7103, event="stopped", left=5)
        m = self.t.metrics()
        deltas = [sample(m, name, **labels) - sample(before, name, **labels) for name, labels in gauges]
        self.assertEqual(deltas, [2, 1, 2, 2, 0, 1, 1])
        info = [s for s in m["chihaya_build_info"].samples]
        self.assertEqual(len(info), 1)
        self.assertEqual(info[0].labels["abi"], "2.3")
        self.assertGreaterEqual(sample(m, "chihaya_plugins", result="loaded"), 2)
        self.assertEqual(m["chihaya_requests"].type, "counter")
        self.assertEqual(m["chihaya_request_duration_seconds"].type, "histogram")

    def test_health_and_readiness(self):
        self.assertEqual(self.t.admin_get("/healthz"), (200, "ok\n"))
        status, body = self.t.admin_get("/readyz")
        self.assertEqual((status, body.strip()), (200, "ready"))
        self.assertEqual(self.t.admin_get("/other")[0], 404)

    def test_admin_is_not_on_the_public_port(self):
        with self.t.http(V4) as c:
            self.assertEqual(c.get("/metrics").status, 404)


class AdminListener(unittest.TestCase):
    """The admin listener's HTTP (host/frontend/admin): keep-alive and pipelining, HEAD, the
    methods it refuses, heads it cannot read, and its cap on connections."""

    @classmethod
    def setUpClass(cls):
        cls.t = Tracker(admin=True).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.t.stop_checked()
        finally:
            cls.t.stop()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.t.admin_port), timeout=5)
        self.addCleanup(s.close)
        return s

    @staticmethod
    def read_all(s):
        """Everything the listener sends until it closes the connection."""
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk

    @staticmethod
    def responses(raw, heads=()):
        """(status line, headers dict, body) of each response in `raw`, in order; those numbered
        in `heads` answer HEAD (a Content-Length, no body)."""
        found = []
        while raw:
            head, _, rest = raw.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines[1:])
            size = 0 if len(found) in heads else int(headers["Content-Length"])
            found.append((lines[0], headers, rest[:size]))
            raw = rest[size:]
        return found

    def test_pipelined_requests_are_answered_in_order_and_close_is_honoured(self):
        s = self.connect()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
                  b"HEAD /readyz HTTP/1.1\r\nHost: a\r\n\r\n"
                  b"GET /nowhere?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"
                  b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                  b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")  # after close: never answered
        got = self.responses(self.read_all(s), heads=(1,))
        self.assertEqual([r[0] for r in got], ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK",
                                              "HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK"])
        self.assertEqual(got[0][2], b"ok\n")
        self.assertEqual(got[1][1]["Content-Length"], "6")  # HEAD: the length, no body
        self.assertEqual(got[1][2], b"")
        self.assertEqual(got[3][2], b"ready\n")
        self.assertEqual(got[3][1].get("Connection"), "close")
        self.assertTrue(all(r[1]["Cache-Control"] == "no-store" for r in got))

    def test_other_methods_and_unreadable_heads_are_refused(self):
        s = self.connect()
        s.sendall(b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        status, headers, body = self.responses(s.recv(65536))[0]
        self.assertEqual((status, headers["Allow"], body), ("HTTP/1.1 405 Method Not Allowed", "GET, HEAD", b"only GET\n"))
        s = self.connect()
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        self.assertTrue(self.read_all(s).startswith(b"HTTP/1.1 400 "))
        s = self.connect()
        s.sendall(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n")
        self.assertTrue(self.read_all(s).startswith(b"HTTP/1.1 431 "))
        self.assertEqual(self.t.admin_get("/healthz"), (200, "ok\n"))  # and it keeps serving

    def test_heads_and_answers_have_a_deadline(self):
        """A head trickled (or never finished) and answers never read are cut off after 10 s, so
        such clients cannot hold the listener's 32 places for ever."""
        size = len(self.t.admin_get("/metrics")[1].encode())
        count = min(8192 // 26, 16 * 1024 * 1024 // size + 1)  # 16 MiB of answers in 8 KiB of heads
        trickle = self.connect()
        trickle.sendall(b"GET /heal")
        sink = socket.socket()
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sink.connect(("127.0.0.1", self.t.admin_port))
        self.addCleanup(sink.close)
        sink.sendall(b"GET /metrics HTTP/1.1\r\n\r\n" * count)
        time.sleep(12)
        trickle.settimeout(2)
        self.assertEqual(trickle.recv(100), b"")  # closed, unanswered
        sink.settimeout(5)
        got = b""
        try:
            while True:
                chunk = sink.recv(1 << 20)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        answered = got.count(b"HTTP/1.1 200 OK")
        self.assertLess(answered, count, "every answer was written: nothing bounded the write")
        self.assertEqual(self.t.admin_get("/healthz"), (200, "ok\n"))

    def test_connections_past_the_cap_are_closed_and_room_comes_back(self):
        held = [self.connect() for _ in range(32)]
        time.sleep(0.3)  # the listener has accepted them all
        extra = self.connect()
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        try:
            self.assertEqual(extra.recv(100), b"")  # closed unanswered
        except ConnectionResetError:
            pass
        for s in held:
            s.close()
        deadline = time.monotonic() + 5
        while True:  # the held ones are gone once the listener has seen them close
            try:
                if self.t.admin_get("/healthz", timeout=1) == (200, "ok\n"):
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)


class Readiness(unittest.TestCase):
    """/readyz follows a Redis that goes away and comes back, without a restart."""

    def test_readyz_fails_while_redis_is_down_and_recovers(self):
        try:
            from redis_fixture import RedisServer
        except ImportError as e:  # pragma: no cover
            self.fail("redis_fixture: %s" % e)
        with RedisServer() as redis:
            t = Tracker(admin=True, overrides={
                "cache": {"driver": "redis"},
                "cache.redis": {"addresses": redis.address, "command_timeout_ms": 200,
                                "connect_timeout_ms": 200}})
            try:
                t.start()
                self.assertEqual(t.admin_get("/readyz")[0], 200)
                redis.stop()
                deadline = time.monotonic() + 10
                while t.admin_get("/readyz")[0] == 200:
                    self.assertLess(time.monotonic(), deadline, "/readyz stayed 200 with Redis down")
                    time.sleep(0.2)
                status, body = t.admin_get("/readyz")
                self.assertEqual(status, 503, body)
                self.assertIn("redis", body)
                self.assertEqual(t.admin_get("/healthz")[0], 200)  # alive all the same
                redis.start()
                deadline = time.monotonic() + 15
                while t.admin_get("/readyz")[0] != 200:
                    self.assertLess(time.monotonic(), deadline, "/readyz did not recover with Redis back")
                    time.sleep(0.2)
                t.stop_checked()
            finally:
                t.cleanup()


class Logs(unittest.TestCase):
    def test_json_lines_and_no_secrets(self):
        password = "pw-" + os.urandom(8).hex()
        t = Tracker(admin=True, log_level="debug", overrides={
            "log": {"format": "json", "access_log": True},
            # A Redis nobody listens on, with a password: every failure is logged, never the password.
            "cache": {"driver": "redis"},
            "cache.redis": {"addresses": "127.0.0.1:1", "password": password,
                            "connect_timeout_ms": 100, "command_timeout_ms": 100}})
        try:
            t.start()
            with t.http(V4) as c:
                c.get(announce_path(random_hash(), peer_id(), 7201, left=1, passkey=None))
            t.admin_get("/readyz")
            t.stop_checked()
            lines = [l for l in t.log_text(full=True).splitlines() if l.strip()]
            self.assertGreater(len(lines), 3)
            for line in lines:
                record = json.loads(line)  # every line is one JSON object
                self.assertEqual(set(record), {"time", "level", "source", "message"}, line)
            self.assertTrue(any(json.loads(l)["source"] == "access" for l in lines),
                            "no access-log line")
            t.assert_log_free_of([password])
        finally:
            t.cleanup()

    def test_assert_log_free_of_can_fail(self):
        t = Tracker()
        try:
            t.start()
            t.stop_checked()
            with self.assertRaises(AssertionError):
                t.assert_log_free_of(["serving on"])
        finally:
            t.cleanup()


class Reload(unittest.TestCase):
    def test_reload_under_load_changes_live_settings_without_errors(self):
        t = Tracker(admin=True, threads=2)
        try:
            t.start()
            h = random_hash()
            errors, answered = [], [0]
            stop = threading.Event()

            def http_load():
                c = t.http(V4)
                n = 0
                while not stop.is_set() and n < 100000:
                    n += 1
                    try:
                        r = c.get(announce_path(h, peer_id(), 7300 + n % 50, left=1))
                        if r.status != 200 or is_rejection(r):
                            errors.append(r)
                        answered[0] += 1
                    except Exception as e:  # a dropped connection is an error too
                        errors.append(e)
                        c = t.http(V4)
                c.close()

            def udp_load():
                c = t.udp(V6)
                n = 0
                while not stop.is_set() and n < 100000:
                    n += 1
                    try:
                        c.announce(h, peer_id(), 7400 + n % 50, left=0)
                        answered[0] += 1
                    except Exception as e:
                        errors.append(e)
                c.close()

            workers = [threading.Thread(target=f) for f in (http_load, http_load, udp_load)]
            for w in workers:
                w.start()
            try:
                for interval in (1200, 1300, 1400, 1500, 1600):
                    time.sleep(0.3)
                    t.reload({"tracker": {"announce_interval": interval, "min_interval": 60}})
                time.sleep(0.3)
            finally:
                stop.set()
                for w in workers:
                    w.join(timeout=10)
            self.assertEqual(errors, [], "requests failed during reloads")
            self.assertGreater(answered[0], 50)
            with t.http(V4) as c:
                self.assertEqual(c.get(announce_path(h, peer_id(), 7500, left=1)).bencoded()[b"interval"], 1600)
            with t.udp(V4) as c:
                self.assertEqual(c.announce(h, peer_id(), 7501, left=1)["interval"], 1600)
            self.assertEqual(sample(t.metrics(), "chihaya_config_reloads_total", result="ok"), 5)
            t.stop_checked()
        finally:
            t.cleanup()

    def test_restart_settings_are_reported_and_kept_bad_file_keeps_running(self):
        t = Tracker(admin=True, overrides={"http": {"max_request_head": 4096}})
        try:
            t.start()
            old_port = t.http_port
            t.reload({"http": {"listen": ["127.0.0.1:1"], "trusted_proxies": ["10.0.0.0/8"]},
                      "workers": {"threads": 3}, "log": {"level": "debug"},
                      "process": {"user": "nobody"}})
            log = t.log_text()
            self.assertIn("http.listen changed", log)
            self.assertIn("workers.threads changed", log)
            self.assertIn("process.user changed", log)  # the privilege drop happened at start-up
            self.assertIn("needs a restart", log)
            self.assertIn("http.trusted_proxies", log)
            with t.http(V4) as c:  # still on the old port
                self.assertEqual(c.get(announce_path(random_hash(), peer_id(), 7600, left=1)).status, 200)
            self.assertEqual(t.http_port, old_port)

            t.reload(text="[tracker]\nannounce_interval = \"soon\"\n")
            self.assertIn("the running configuration is kept", t.log_text())
            self.assertIn("announce_interval", t.log_text())
            with t.http(V4) as c:
                r = c.get(announce_path(random_hash(), peer_id(), 7601, left=1))
                self.assertEqual(r.bencoded()[b"interval"], 1800)
            self.assertEqual(sample(t.metrics(), "chihaya_config_reloads_total", result="failed"), 1)
            self.assertTrue(t.alive())
            t.stop_checked()
        finally:
            t.cleanup()

    def test_reload_applies_http_limits(self):
        t = Tracker(admin=True, overrides={"http": {"max_request_head": 4096}})
        try:
            t.start()
            big = "/announce?" + "x" * 3000
            with t.http(V4) as c:
                self.assertNotEqual(c.get(big).status, 431)
            t.reload({"http": {"max_request_head": 1024}})
            with t.http(V4) as c:
                self.assertEqual(c.get(big).status, 431)
            t.stop_checked()
        finally:
            t.cleanup()


    def test_reload_applies_connect_rate_and_per_address_cap(self):
        """[udp] connect_rate/connect_burst and [http] max_connections_per_address are live: a
        limit set by SIGHUP holds for the next connect, and connections already open stay."""
        import socket
        import struct
        from test_hostile import answered, connect_from

        def connects_answered(source, n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((source, 0))
            s.connect(("127.0.0.1", t.udp_port))
            started = time.monotonic()
            for i in range(n):
                s.send(struct.pack(">QII", 0x41727101980, 0, i))
            s.settimeout(0.5)
            got = 0
            try:
                while True:
                    self.assertEqual(len(s.recv(64)), 16)
                    got += 1
            except socket.timeout:
                pass
            s.close()
            return got, time.monotonic() - started

        t = Tracker(admin=True, threads=1, overrides={"udp": {"connect_rate": 0},
                                                      "http": {"max_connections_per_address": 0}})
        held = []
        try:
            t.start()
            self.assertEqual(connects_answered("127.0.0.2", 100)[0], 100)  # no limit yet
            held = [connect_from("127.0.0.3", t.http_port) for _ in range(3)]
            self.assertEqual([answered(c) for c in held], [True] * 3)

            t.reload({"udp": {"connect_rate": 2, "connect_burst": 5},
                      "http": {"max_connections_per_address": 2}})
            reload_line = [l for l in t.log_text().splitlines() if "SIGHUP: reloaded" in l][-1]
            for key in ("udp.connect_rate", "udp.connect_burst", "http.max_connections_per_address"):
                self.assertIn(key, reload_line)
            self.assertNotIn("needs a restart", t.log_text())

            got, elapsed = connects_answered("127.0.0.2", 100)
            self.assertGreaterEqual(got, 5)
            self.assertLessEqual(got, 5 + int(2 * elapsed) + 1)
            # The three open connections stay and keep being answered; a fourth is shed.
            self.assertEqual([answered(c) for c in held], [True] * 3)
            with connect_from("127.0.0.3", t.http_port) as extra:
                self.assertTrue(extra.closed_within(3.0), "a 4th connection from 127.0.0.3 stayed open")
            # Below the cap again (two closed), the address is answered on a new connection.
            held.pop().close()
            held.pop().close()
            deadline = time.monotonic() + 3
            ok = False
            while not ok and time.monotonic() < deadline:
                with connect_from("127.0.0.3", t.http_port) as again:
                    ok = answered(again)
                if not ok:
                    time.sleep(0.05)
            self.assertTrue(ok, "127.0.0.3 was not answered after falling below the new cap")
            t.stop_checked()
        finally:
            for c in held:
                c.close()
            t.cleanup()


class Snapshot(unittest.TestCase):
    """The memory driver keeps its swarms across a restart ([cache.memory] snapshot_path)."""

    def tracker(self, path, lifetime=1800):
        return Tracker(overrides={"cache.memory": {"snapshot_path": path},
                                  "tracker": {"peer_lifetime": lifetime, "announce_interval": 1,
                                              "min_interval": 1}})

    def test_swarms_survive_sigterm_and_restart(self):
        import tempfile
        with tempfile.TemporaryDirectory(prefix="chihaya-snap-") as d:
            path = os.path.join(d, "swarms.snapshot")
            h = random_hash()
            t = self.tracker(path)
            try:
                t.start()
                with t.udp(V4) as c:
                    c.announce(h, peer_id(), 7701, event="started", left=0)
                    c.announce(h, peer_id(), 7702, event="started", left=3)
                    c.announce(h, peer_id(), 7703, event="completed", left=0)
                with t.udp(V6) as c:
                    c.announce(h, peer_id(), 7704, event="started", left=3)
                t.stop_checked(signal.SIGTERM)
                self.assertIn("snapshot: wrote 4 peers in 1 torrents", t.log_text())
            finally:
                t.cleanup()
            self.assertFalse(os.path.exists(path + ".tmp"))
            with self.tracker(path) as t2:
                with t2.udp(V4) as c:
                    self.assertEqual(c.scrape([h]), [{"seeders": 2, "completed": 1, "leechers": 2}])
                    peers = c.announce(h, peer_id(), 7705, left=1)["peers"]
                    self.assertEqual(sorted(p for _, p in peers), [7701, 7702, 7703])
                self.assertIn("snapshot: loaded 4 peers in 1 torrents", t2.log_text())

    def test_peers_that_expired_meanwhile_are_dropped(self):
        import tempfile
        with tempfile.TemporaryDirectory(prefix="chihaya-snap-") as d:
            path = os.path.join(d, "swarms.snapshot")
            short, long_ = random_hash(), random_hash()
            with self.tracker(path, lifetime=2) as t:
                with t.udp(V4) as c:
                    c.announce(short, peer_id(), 7801, event="started", left=1)
            time.sleep(3.2)
            with self.tracker(path, lifetime=2) as t2:
                with t2.udp(V4) as c:
                    self.assertEqual(c.scrape([short]), [{"seeders": 0, "completed": 0, "leechers": 0}])
                self.assertIn("1 expired while the tracker was down", t2.log_text())

    def test_corrupt_or_foreign_snapshot_is_reported_and_skipped(self):
        import tempfile
        with tempfile.TemporaryDirectory(prefix="chihaya-snap-") as d:
            path = os.path.join(d, "swarms.snapshot")
            with self.tracker(path) as t:
                with t.udp(V4) as c:
                    c.announce(random_hash(), peer_id(), 7901, event="started", left=1)
            good = open(path, "rb").read()
            for bad, why in ((good[:len(good) // 2], "truncated"),
                             (good[:-1] + bytes([good[-1] ^ 1]), "checksum"),
                             (good[:16] + b"\x07" + good[17:], "version 7"),
                             (b"PGDMP not ours at all" * 10, "not a chihaya swarm snapshot")):
                with open(path, "wb") as f:
                    f.write(bad)
                with self.tracker(path) as t2:
                    with t2.udp(V4) as c:
                        c.announce(random_hash(), peer_id(), 7902, event="started", left=1)
                    self.assertIn("skipped, starting with no swarms", t2.log_text())
                    self.assertIn(why, t2.log_text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
