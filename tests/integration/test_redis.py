"""The redis cache driver in the real binary: hosts sharing one redis-server, expiry, faults."""
# Every test starts its own redis-server (redis_fixture) and trackers on free loopback ports.
# The cluster cases live in test_redis_cluster.py. Without redis-server the suite fails (it does
# not skip): a CI that lost its Redis must say so.

import os
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis_fixture import REDIS_SERVER, RedisServer, have_redis
from tracker_fixture import (CHIHAYA_SOURCE_DIR, STOP_TIMEOUT_S, V4, V6, ConnectionClosed,
                             Tracker, UdpError, announce_path, compact_peers, peer_id, random_hash,
                             run_binary, scrape_path, unittest_main)

UNAVAILABLE = "tracker storage unavailable"
COMMAND_TIMEOUT_MS = 300
# A failed announce must come back within the command timeout plus scheduling slack.
FAILURE_LATENCY_BOUND_S = 2.0
# Redis back (restarted, or awake again) to the first successful announce.
RECOVERY_BOUND_S = 6.0


def setUpModule():
    require_redis()


def require_redis():
    if not have_redis():
        raise RuntimeError("redis-server and redis-cli are needed (REDIS_SERVER=%s); on Debian: "
                           "apt-get install redis-server" % REDIS_SERVER)


def redis_overrides(addresses, tracker=None, **redis_keys):
    """Tracker overrides selecting the redis driver on `addresses`."""
    overrides = {"cache": {"driver": "redis"},
                 "cache.redis": dict({"addresses": addresses}, **redis_keys)}
    if tracker:
        overrides["tracker"] = tracker
    return overrides


def start_tracker(case, overrides):
    """A Tracker stopped (checked) and cleaned up when `case` ends; threads=1 to share 2 cores."""
    t = Tracker(overrides, threads=1)
    case.addCleanup(t.cleanup)
    t.start()
    case.addCleanup(lambda: t.alive() and t.stop_checked())
    return t


def start_redis(case, **kw):
    server = RedisServer(**kw)
    case.addCleanup(server.cleanup)
    case.addCleanup(server.stop)
    server.start()
    return server


# ---- requests ----------------------------------------------------------------------------------

def http_announce(tracker, host, info_hash, pid, port, **kw):
    with tracker.http(host) as c:
        r = c.get(announce_path(info_hash, pid, port, **kw))
    assert r.status == 200, r
    d = r.bencoded()
    assert b"failure reason" not in d, (d, tracker.log_text())
    return d


def http_peers(d, host):
    family = socket.AF_INET6 if host == V6 else socket.AF_INET
    return sorted(compact_peers(d.get(b"peers6" if host == V6 else b"peers", b""), family))


def http_scrape(tracker, host, hashes):
    with tracker.http(host) as c:
        r = c.get(scrape_path(hashes))
    assert r.status == 200, r
    d = r.bencoded()
    assert b"failure reason" not in d, (d, tracker.log_text())
    return d[b"files"]


def counts(files, h):
    f = files.get(h, {b"complete": 0, b"incomplete": 0, b"downloaded": 0})
    return f[b"complete"], f[b"incomplete"], f[b"downloaded"]


# ---- two hosts on one redis-server -------------------------------------------------------------

class SharedSwarm(unittest.TestCase):
    """Two chihaya processes on one redis-server behave as one tracker."""

    def setUp(self):
        self.redis = start_redis(self)
        overrides = redis_overrides(self.redis.address)
        self.a = start_tracker(self, overrides)
        self.b = start_tracker(self, overrides)

    def test_peer_announced_to_a_is_served_by_b(self):
        h = random_hash()
        http_announce(self.a, V4, h, peer_id(), 7001, event="started", left=10)
        http_announce(self.a, V6, h, peer_id(), 7002, event="started", left=0)

        d = http_announce(self.b, V4, h, peer_id(), 7003, event="started", left=10)
        self.assertEqual(http_peers(d, V4), [(V4, 7001)], "IPv4 peers only, from host A")
        self.assertEqual((d[b"complete"], d[b"incomplete"]), (1, 2))
        d = http_announce(self.b, V6, h, peer_id(), 7004, event="started", left=10)
        self.assertEqual(http_peers(d, V6), [(V6, 7002)], "IPv6 peers only, from host A")
        self.assertEqual(d.get(b"peers", b""), b"", "no IPv4 peer in an IPv6 answer")

        with self.b.udp(V4) as c:
            r = c.announce(h, peer_id(), 7005, event="started", left=10)
        self.assertEqual(sorted(r["peers"]), [(V4, 7001), (V4, 7003)])
        self.assertEqual((r["seeders"], r["leechers"]), (1, 4))
        with self.b.udp(V6) as c:
            r = c.announce(h, peer_id(), 7006, event="started", left=10)
        self.assertEqual(sorted(r["peers"]), [(V6, 7002), (V6, 7004)])

        # And back: host A hands out what host B was told.
        d = http_announce(self.a, V4, h, peer_id(), 7007, event="started", left=10)
        self.assertEqual(http_peers(d, V4), [(V4, 7001), (V4, 7003), (V4, 7005)])
        d = http_announce(self.a, V6, h, peer_id(), 7008, left=10, compact=0)
        self.assertEqual(sorted((p[b"ip"].decode(), p[b"port"]) for p in d[b"peers"]),
                         [(V6, 7002), (V6, 7004), (V6, 7006)])

    def test_counts_and_downloaded_agree_between_hosts(self):
        h = random_hash()
        p1, p2, p3 = peer_id(), peer_id(), peer_id()
        http_announce(self.a, V4, h, p1, 7101, event="started", left=100)
        http_announce(self.b, V4, h, p2, 7102, event="started", left=0)
        http_announce(self.a, V4, h, p1, 7101, event="completed", left=0)
        http_announce(self.b, V6, h, p3, 7103, event="started", left=5)
        http_announce(self.b, V6, h, p3, 7103, event="completed", left=0)
        for tracker in (self.a, self.b):
            for host in (V4, V6):
                with self.subTest(tracker=tracker.http_port, host=host):
                    self.assertEqual(counts(http_scrape(tracker, host, [h]), h), (3, 0, 2))
            with tracker.udp(V4) as c:
                self.assertEqual(c.scrape([h]), [{"seeders": 3, "completed": 2, "leechers": 0}])

        # A client behind a load balancer may stop on the other host than it started on.
        http_announce(self.a, V4, h, p2, 7102, event="stopped", left=0)
        for tracker in (self.a, self.b):
            self.assertEqual(counts(http_scrape(tracker, V4, [h]), h), (2, 0, 2))

    def test_stopped_on_a_removes_the_peer_for_b(self):
        for host in (V4, V6):
            with self.subTest(host=host):
                h = random_hash()
                p1 = peer_id()
                http_announce(self.a, host, h, p1, 7201, event="started", left=10)
                p2 = peer_id()
                d = http_announce(self.b, host, h, p2, 7202, event="started", left=10)
                self.assertEqual(http_peers(d, host), [(host, 7201)])
                http_announce(self.a, host, h, p1, 7201, event="stopped", left=10)
                d = http_announce(self.b, host, h, p2, 7202, left=10)
                self.assertEqual(http_peers(d, host), [])
                self.assertEqual((d[b"complete"], d[b"incomplete"]), (0, 1))
                with self.b.udp(host) as c:
                    r = c.announce(h, peer_id(), 7203, event="started", left=10)
                self.assertEqual(r["peers"], [(host, 7202)])


class PeerKey(unittest.TestCase):
    """BEP 7 on the redis driver: a peer's first key guards it on every host sharing Redis."""

    def setUp(self):
        self.redis = start_redis(self)
        overrides = redis_overrides(self.redis.address)
        self.a = start_tracker(self, overrides)
        self.b = start_tracker(self, overrides)

    def announce(self, tracker, host, h, port, key=None, **kw):
        extra = "key=%s" % key if key is not None else ""
        with tracker.http(host) as c:
            r = c.get(announce_path(h, peer_id(), port, extra=extra, **kw))
        self.assertEqual(r.status, 200, r)
        return r.bencoded()

    def test_announces_without_the_peers_key_are_refused_on_every_host(self):
        for host in (V4, V6):
            with self.subTest(host=host):
                h = random_hash()
                d = self.announce(self.a, host, h, 7401, key="1a2b3c4d", event="started", left=5)
                self.assertNotIn(b"failure reason", d)
                self.announce(self.a, host, h, 7402, left=5)  # another peer, no key
                for tracker in (self.a, self.b):
                    for key in (None, "deadbeef"):
                        for event, left in (("stopped", 5), (None, 0), ("completed", 0)):
                            d = self.announce(tracker, host, h, 7401, key=key, event=event, left=left)
                            self.assertIn(b"key mismatch", d.get(b"failure reason", b""), d)
                # Nothing changed: two leechers, none completed; the owner refreshes and stops it.
                self.assertEqual(counts(http_scrape(self.b, host, [h]), h), (0, 2, 0))
                d = self.announce(self.b, host, h, 7401, key="1a2b3c4d", left=5)
                self.assertEqual((d[b"complete"], d[b"incomplete"]), (0, 2), d)
                d = self.announce(self.a, host, h, 7401, key="1a2b3c4d", event="stopped", left=5)
                self.assertEqual((d[b"complete"], d[b"incomplete"]), (0, 1), d)
                # Gone: the same address and port may now join with another key.
                d = self.announce(self.b, host, h, 7401, key="deadbeef", left=5)
                self.assertEqual((d[b"complete"], d[b"incomplete"]), (0, 2), d)

    def test_a_peer_without_a_key_is_claimed_by_the_first_key(self):
        h = random_hash()
        self.announce(self.a, V4, h, 7411, event="started", left=5)
        d = self.announce(self.b, V4, h, 7411, key="0badf00d", left=5)
        self.assertNotIn(b"failure reason", d)
        d = self.announce(self.a, V4, h, 7411, event="stopped", left=5)
        self.assertIn(b"key mismatch", d.get(b"failure reason", b""), d)
        self.assertEqual(counts(http_scrape(self.a, V4, [h]), h), (0, 1, 0))


def wait_for(predicate, timeout_s, step_s=0.05):
    """Polls `predicate` until it is true or `timeout_s` passes; returns the last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step_s)


def torrent_keys(redis, info_hash, prefix="chihaya"):
    """The torrent's keys in Redis: all share the hash tag {<hex info_hash>} (plugins/redis)."""
    return redis.cli("--scan", "--pattern", "%s:{%s}:*" % (prefix, info_hash.hex())).split()


# The least-privilege ACL user docs/redis.md recommends, word for word: the commands the driver
# sends (handshake, EVALSHA/EVAL, cluster routing) and those its scripts run, on its keys only.
ACL_RULES = ("on", "resetkeys", "~chihaya:*", "resetchannels", "-@all",
             "+ping", "+select", "+script|load", "+evalsha", "+eval", "+cluster|slots", "+asking",
             "+time", "+del", "+pexpireat",
             "+zadd", "+zrem", "+zscore", "+zmscore", "+zincrby", "+zcard", "+zcount", "+zrange",
             "+zrangebyscore", "+hget", "+hset", "+hdel")


class Acl(unittest.TestCase):
    def test_least_privilege_user(self):
        redis = start_redis(self)
        redis.cli("ACL", "SETUSER", "chihaya", *ACL_RULES, ">s3cret")
        t = start_tracker(self, redis_overrides(redis.address, user="chihaya", password="s3cret"))
        h = random_hash()
        p1 = peer_id()
        http_announce(t, V4, h, p1, 7601, event="started", left=10)
        d = http_announce(t, V4, h, peer_id(), 7602, event="started", left=0)
        self.assertEqual(http_peers(d, V4), [(V4, 7601)])
        http_announce(t, V4, h, p1, 7601, event="completed", left=0)
        self.assertEqual(counts(http_scrape(t, V4, [h]), h), (2, 0, 1))
        http_announce(t, V4, h, p1, 7601, event="stopped", left=0)
        self.assertEqual(counts(http_scrape(t, V4, [h]), h), (1, 0, 1))

    def test_wrong_password_fails_announces_not_the_tracker(self):
        redis = start_redis(self)
        redis.cli("ACL", "SETUSER", "chihaya", *ACL_RULES, ">s3cret")
        t = start_tracker(self, redis_overrides(redis.address, user="chihaya", password="wrong",
                                                connect_timeout_ms=300,
                                                command_timeout_ms=COMMAND_TIMEOUT_MS))
        for host in (V4, V6):
            t0 = time.monotonic()
            with t.http(host) as c:
                r = c.get(announce_path(random_hash(), peer_id(), 7603, left=1))
            self.assertLess(time.monotonic() - t0, FAILURE_LATENCY_BOUND_S)
            self.assertEqual(r.bencoded().get(b"failure reason"), UNAVAILABLE.encode(), r)
        self.assertTrue(t.alive(), t.log_text())


class LargeSwarm(unittest.TestCase):
    """A swarm larger than numwant: answers come from a random sample (plugins/redis/scripts.hpp),
    still of the right kind, distinct, never the asker, and as many as asked for."""

    SEEDERS, LEECHERS, NUMWANT = 70, 70, 50

    def test_answers_of_a_swarm_larger_than_numwant(self):
        redis = start_redis(self)
        # 140 ports of 127.0.0.1 in one swarm: more than [limits]' default share of an address,
        # which the redis driver enforces since ABI 2.3 (test_limits.py tests the share).
        overrides = redis_overrides(redis.address)
        overrides["limits"] = {"max_peers_per_address": 0}
        t = start_tracker(self, overrides)
        h = random_hash()
        seeders = list(range(8000, 8000 + self.SEEDERS))
        leechers = list(range(9000, 9000 + self.LEECHERS))
        with t.udp(V4) as c:
            for port in seeders:
                c.announce(h, peer_id(), port, event="started", left=0, numwant=0)
            for port in leechers:
                c.announce(h, peer_id(), port, event="started", left=10, numwant=0)
            answers = []
            for i in range(6):
                seeder = i % 2 == 0
                own = seeders[i] if seeder else leechers[i]
                r = c.announce(h, peer_id(), own, left=0 if seeder else 10, numwant=self.NUMWANT)
                self.assertEqual((r["seeders"], r["leechers"]), (self.SEEDERS, self.LEECHERS))
                ports = [p for _, p in r["peers"]]
                self.assertEqual(len(ports), self.NUMWANT, "fewer peers than asked for")
                self.assertEqual(len(set(ports)), len(ports), "a peer twice")
                self.assertNotIn(own, ports, "the asker itself")
                if seeder:
                    self.assertTrue(set(ports) <= set(leechers), "a seeder was given seeders")
                answers.append(frozenset(ports))
        self.assertGreater(len(set(answers)), 3, "the same peers every time: not random")


class HostName(unittest.TestCase):
    """An address given by host name is resolved (off the driver's I/O thread) and connects."""

    def test_localhost_name_serves_announces(self):
        redis = start_redis(self)
        t = start_tracker(self, redis_overrides("localhost:%d" % redis.port))
        h = random_hash()
        http_announce(t, V4, h, peer_id(), 7701, event="started", left=10)
        d = http_announce(t, V4, h, peer_id(), 7702, event="started", left=0)
        self.assertEqual(http_peers(d, V4), [(V4, 7701)])
        # And again after Redis restarts: every reconnect resolves the name again.
        redis.restart()
        ok = wait_for(lambda: b"failure reason" not in self.try_announce(t, h), RECOVERY_BOUND_S)
        self.assertTrue(ok, t.log_text())

    def try_announce(self, t, h):
        with t.http(V4) as c:
            return c.get(announce_path(h, peer_id(), 7703, left=10)).bencoded()


class Expiry(unittest.TestCase):
    """Peers expire in Redis on their own: no announce or scrape reaches the torrent meanwhile."""

    PEER_LIFETIME_S = 2

    def test_idle_peer_expires_server_side(self):
        redis = start_redis(self)
        overrides = redis_overrides(redis.address, tracker={
            "announce_interval": 1, "min_interval": 1, "peer_lifetime": self.PEER_LIFETIME_S})
        a = start_tracker(self, overrides)
        b = start_tracker(self, overrides)
        h = random_hash()
        http_announce(a, V4, h, peer_id(), 7301, event="started", left=10)
        http_announce(a, V6, h, peer_id(), 7302, event="started", left=0)
        self.assertEqual(counts(http_scrape(b, V4, [h]), h)[:2], (1, 1))
        self.assertTrue(torrent_keys(redis, h), "the announces wrote no key for the torrent")

        # Each key's PEXPIRE is its longest-lived peer's: Redis drops the swarm by itself.
        time.sleep(self.PEER_LIFETIME_S + 0.5)
        left = wait_for(lambda: not torrent_keys(redis, h), 2.0, step_s=0.1)
        self.assertTrue(left, "keys outlived the peer lifetime: %r" % torrent_keys(redis, h))
        self.assertEqual(counts(http_scrape(b, V4, [h]), h)[:2], (0, 0))
        for joined, host in enumerate((V4, V6), 1):
            d = http_announce(b, host, h, peer_id(), 7303, event="started", left=10)
            self.assertEqual(http_peers(d, host), [], "an expired peer was handed out")
            self.assertEqual((d[b"complete"], d[b"incomplete"]), (0, joined))


# ---- faults ------------------------------------------------------------------------------------

class Load:
    """Bounded background announces over HTTP (v4, v6) and UDP (v4, v6).

    Each thread sends one announce at a time, about every PAUSE_S, until stopped, `duration_s`
    passes or it has sent `max_requests`. Every answer is recorded as
    (start time, seconds taken, "ok" | "unavailable" | "timeout" | other text)."""

    PAUSE_S = 0.02

    def __init__(self, tracker, duration_s=20.0, max_requests=2000):
        self.tracker = tracker
        self.deadline = time.monotonic() + duration_s
        self.max_requests = max_requests
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.results = []
        self.torrents = [random_hash() for _ in range(20)]
        self.threads = [threading.Thread(target=self._run, args=(kind, host), daemon=True)
                        for kind in ("http", "udp") for host in (V4, V6)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=10)
        assert not any(t.is_alive() for t in self.threads), "a load thread did not stop"

    def _record(self, t0, outcome):
        with self.lock:
            self.results.append((t0, time.monotonic() - t0, outcome))

    def _run(self, kind, host):
        pid = peer_id()
        port = 20000 + (hash((kind, host)) & 0x3fff)
        for i in range(self.max_requests):
            if self.stopping.is_set() or time.monotonic() > self.deadline:
                return
            h = self.torrents[i % len(self.torrents)]
            t0 = time.monotonic()
            try:
                outcome = self._http(host, h, pid, port) if kind == "http" \
                    else self._udp(host, h, pid, port)
            except (OSError, ConnectionClosed, AssertionError) as e:
                outcome = "%s: %s" % (type(e).__name__, e)
            self._record(t0, outcome)
            self.stopping.wait(self.PAUSE_S)

    def _http(self, host, h, pid, port):
        with self.tracker.http(host, timeout=5.0) as c:
            try:
                r = c.get(announce_path(h, pid, port, left=10))
            except socket.timeout:
                return "timeout"
        d = r.bencoded()
        if b"failure reason" not in d:
            return "ok"
        reason = d[b"failure reason"].decode("utf-8", "replace")
        return "unavailable" if reason == UNAVAILABLE else reason

    def _udp(self, host, h, pid, port):
        with self.tracker.udp(host, timeout=5.0) as c:
            try:
                c.announce(h, pid, port, left=10)
            except UdpError as e:
                return "unavailable" if str(e).rstrip("\0") == UNAVAILABLE else str(e)
            except AssertionError as e:
                return "timeout" if "no UDP reply" in str(e) else str(e)
        return "ok"

    def between(self, t_from, t_to):
        with self.lock:
            return [r for r in self.results if t_from <= r[0] and r[0] + r[1] <= t_to]

    def first_ok_after(self, t):
        with self.lock:
            oks = [r[0] + r[1] for r in self.results if r[0] >= t and r[2] == "ok"]
        return min(oks) if oks else None


class Faults(unittest.TestCase):
    """Redis killed or stalled under load: fast, explicit failures, a live tracker, recovery."""

    def setUp(self):
        self.redis = start_redis(self)
        self.tracker = start_tracker(self, redis_overrides(
            self.redis.address, command_timeout_ms=COMMAND_TIMEOUT_MS, connect_timeout_ms=300))

    def assert_announce_fails_fast(self):
        """One HTTP and one UDP announce on each family: the failure text, within the bound."""
        for host in (V4, V6):
            t0 = time.monotonic()
            with self.tracker.http(host) as c:
                r = c.get(announce_path(random_hash(), peer_id(), 7401, left=1))
            self.assertLess(time.monotonic() - t0, FAILURE_LATENCY_BOUND_S)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.bencoded().get(b"failure reason"), UNAVAILABLE.encode(), r)
            t0 = time.monotonic()
            with self.tracker.udp(host, timeout=5.0) as c:
                with self.assertRaises(UdpError) as e:
                    c.announce(random_hash(), peer_id(), 7402, left=1)
            self.assertLess(time.monotonic() - t0, FAILURE_LATENCY_BOUND_S)
            self.assertEqual(str(e.exception).rstrip("\0"), UNAVAILABLE)

    def assert_results(self, results, allowed, what):
        self.assertTrue(results, "no request completed while " + what)
        bad = [r for r in results if r[2] not in allowed]
        self.assertFalse(bad, "while %s: %d unexpected outcomes, first %r\n%s"
                         % (what, len(bad), bad[:3], self.tracker.log_text()))
        slow = [r for r in results if r[1] >= FAILURE_LATENCY_BOUND_S]
        self.assertFalse(slow, "while %s: %d requests took >= %.1f s, slowest %.2f s"
                         % (what, len(slow), FAILURE_LATENCY_BOUND_S, max(r[1] for r in slow)
                            if slow else 0))

    def test_redis_killed_under_load_then_restarted(self):
        with Load(self.tracker) as load:
            time.sleep(1.0)
            t_kill = time.monotonic()
            self.redis.kill()
            time.sleep(0.3)
            self.assert_announce_fails_fast()
            time.sleep(1.2)
            self.assertTrue(self.tracker.alive(), self.tracker.log_text())
            t_restart = time.monotonic()
            self.redis.restart()
            recovered = wait_for(lambda: load.first_ok_after(t_restart), RECOVERY_BOUND_S)
            load.stop()

        self.assert_results(load.between(0, t_kill), {"ok"}, "Redis was up")
        down = load.between(t_kill + 0.05, t_restart)
        self.assert_results(down, {"unavailable"}, "Redis was down")
        self.assert_results(load.between(t_kill, time.monotonic()), {"ok", "unavailable"},
                            "Redis went down and came back")
        self.assertIsNotNone(recovered, "no announce succeeded within %.0f s of the restart:\n%s"
                             % (RECOVERY_BOUND_S, self.tracker.log_text()))
        self.assertTrue(self.tracker.alive(), self.tracker.log_text())
        http_announce(self.tracker, V4, random_hash(), peer_id(), 7403, left=1)

    def test_redis_paused_then_resumed(self):
        """CLIENT PAUSE ALL: the server holds every command (what DEBUG SLEEP does, without
        needing enable-debug-command), then runs the timed-out ones when the pause ends."""
        self.check_stall(lambda s: self.redis.cli("CLIENT", "PAUSE", str(int(s * 1000)), "ALL"))

    def test_redis_process_stopped_then_continued(self):
        """SIGSTOP: the kernel still accepts connections but nothing answers."""
        def stop_for(s):
            self.redis.pause()
            try:
                time.sleep(s)
            finally:
                self.redis.resume()
        self.check_stall(stop_for)

    def check_stall(self, stall_for):
        stall_s = 3.0
        h = random_hash()
        http_announce(self.tracker, V4, h, peer_id(), 7501, event="started", left=1)
        stall = threading.Thread(target=stall_for, args=(stall_s,), daemon=True)
        t_stall = time.monotonic()
        stall.start()
        time.sleep(0.2)  # the stall is in place before the announces arrive
        self.assert_announce_fails_fast()
        self.assertLess(time.monotonic() - t_stall, stall_s, "the stall ended before the checks")
        stall.join(timeout=stall_s + 5)
        self.assertFalse(stall.is_alive())
        self.assertTrue(self.tracker.alive(), self.tracker.log_text())

        def announce_ok():
            try:
                return http_announce(self.tracker, V4, h, peer_id(), 7502, left=1)
            except AssertionError:
                return None
        d = wait_for(announce_ok, RECOVERY_BOUND_S, step_s=0.1)
        self.assertIsNotNone(d, "no announce succeeded within %.0f s of the stall's end:\n%s"
                             % (RECOVERY_BOUND_S, self.tracker.log_text()))
        self.assertIn((V4, 7501), http_peers(d, V4), "the swarm did not survive the stall")
        with self.tracker.udp(V4) as c:
            self.assertIn((V4, 7501), c.announce(h, peer_id(), 7503, left=1)["peers"])


# ---- pipelining --------------------------------------------------------------------------------

def evalsha_calls(redis):
    stats = redis.info("commandstats").get("cmdstat_evalsha", "calls=0,")
    return int(stats.split("calls=")[1].split(",")[0])


class Pipelining(unittest.TestCase):
    """pipeline_depth = 1: announces arriving while the connection's call is unanswered wait and
    then leave together, so a burst costs Redis a few calls; held ones fail fast on a drop."""

    BURST = 200
    GROUP = 25

    def setUp(self):
        self.redis = start_redis(self)

    def start(self, command_timeout_ms):
        overrides = redis_overrides(self.redis.address, connections=1, pipeline_depth=1,
                                    command_timeout_ms=command_timeout_ms, connect_timeout_ms=300)
        overrides["limits"] = {"max_peers_per_address": 0}  # the burst is one address's 200 peers
        self.tracker = start_tracker(self, overrides)

    def burst(self, info_hash):
        """BURST announces of distinct peers sent at once; {port: (seconds, "ok" or the error)}."""
        outcome = {}
        with self.tracker.udp(V4, timeout=0.2) as c:
            # Room for every answer at once: a reply dropped here would read as unanswered.
            try:
                c.sock.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE (root)
            except OSError:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            c.connect()
            by_tid = {}
            t0 = time.monotonic()
            # In groups with gaps: the first group's call is on the wire before the rest arrive,
            # and without the hold every later group would be a call of its own.
            for i in range(self.BURST):
                if i and i % self.GROUP == 0:
                    time.sleep(0.03)
                tid = 0x10000 + i
                by_tid[tid] = 20000 + i
                c.sock.send(c.announce_packet(info_hash, peer_id(), 20000 + i, left=1, tid=tid, numwant=0))
            deadline = t0 + 8.0
            while len(outcome) < self.BURST and time.monotonic() < deadline:
                try:
                    reply = c.sock.recv(65536)
                except socket.timeout:
                    continue
                action, tid = struct.unpack(">II", reply[:8])
                if tid in by_tid:
                    outcome[by_tid[tid]] = (time.monotonic() - t0,
                                            "ok" if action == 1 else reply[8:].decode("utf-8", "replace").rstrip("\0"))
        return outcome

    def test_a_burst_behind_a_paused_call_is_served_in_few_calls(self):
        self.start(command_timeout_ms=3000)
        h = random_hash()
        before = evalsha_calls(self.redis)
        # Redis holds every command for a second (well within command_timeout_ms, and long enough
        # for a loaded machine to send the whole burst): the burst's first call waits there while
        # the rest arrive and are held back by the tracker.
        self.redis.cli("CLIENT", "PAUSE", "1000", "ALL")
        outcome = self.burst(h)
        self.assertEqual(len(outcome), self.BURST, "unanswered: %d" % (self.BURST - len(outcome)))
        bad = [o for o in outcome.values() if o[1] != "ok"]
        self.assertEqual(len(bad), 0, "%d failed, first %r" % (len(bad), bad[:1]))
        calls = evalsha_calls(self.redis) - before
        # The first call, then the held rest in batches of at most 64 announces (kMaxBatch).
        self.assertLessEqual(calls, 1 + (self.BURST + 63) // 64 + 1, "%d script calls" % calls)
        with self.tracker.udp(V4) as c:
            r = c.announce(h, peer_id(), 7601, left=1)
        self.assertEqual(r["leechers"] + r["seeders"], self.BURST + 1)

    def test_announces_held_when_the_connection_drops_fail_fast(self):
        self.start(command_timeout_ms=COMMAND_TIMEOUT_MS)
        self.redis.pause()  # SIGSTOP: the first call never gets its reply
        try:
            outcome = self.burst(random_hash())
        finally:
            self.redis.resume()
        self.assertEqual(len(outcome), self.BURST, "unanswered: %d" % (self.BURST - len(outcome)))
        self.assertEqual({o[1] for o in outcome.values()}, {UNAVAILABLE})
        slowest = max(o[0] for o in outcome.values())
        self.assertLess(slowest, FAILURE_LATENCY_BOUND_S, "slowest failure after %.2f s" % slowest)


# ---- shutdown ----------------------------------------------------------------------------------

def unread_bytes_at(port):
    """Bytes the kernel holds for the listener on 127.0.0.1:`port` that its process has not read,
    summed over its established TCP connections (/proc/net/tcp rx_queue)."""
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if state == "01" and int(local.split(":")[1], 16) == port:
                total += int(queues.split(":")[1], 16)
    return total


class Draining(unittest.TestCase):
    """SIGTERM while an announce waits on Redis: the tracker answers it before it exits."""

    STALL_S = 1.5

    def test_announce_in_flight_at_sigterm_is_answered(self):
        redis = start_redis(self)
        # The command timeout outlasts the stall, which stays inside main.cpp's 5 s grace.
        t = start_tracker(self, redis_overrides(redis.address, command_timeout_ms=4000))
        h = random_hash()
        http_announce(t, V4, h, peer_id(), 7701, event="started", left=0)

        # SIGSTOP: Redis reads nothing, so the announce's script waits in its socket, where
        # /proc/net/tcp shows it: proof that the request is in flight when SIGTERM is sent.
        redis.pause()
        t_stall = time.monotonic()
        self.addCleanup(redis.resume)
        in_flight = t.http(V4, timeout=5.0)
        self.addCleanup(in_flight.close)
        in_flight.send(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
                        % announce_path(h, peer_id(), 7702, event="started", left=10)).encode())
        self.assertTrue(wait_for(lambda: unread_bytes_at(redis.port) > 0, 3.0),
                        "the announce never reached Redis' socket:\n" + t.log_text())
        t.proc.send_signal(signal.SIGTERM)
        time.sleep(max(0.0, t_stall + self.STALL_S - time.monotonic()))
        self.assertTrue(t.alive(), "exited with the announce unanswered:\n" + t.log_text())
        redis.resume()

        r = in_flight.read_response()
        self.assertEqual(r.status, 200, r)
        d = r.bencoded()
        self.assertNotIn(b"failure reason", d, t.log_text())
        self.assertEqual(http_peers(d, V4), [(V4, 7701)])
        self.assertEqual(t.proc.wait(timeout=STOP_TIMEOUT_S), 0, t.log_text())


# ---- config ------------------------------------------------------------------------------------

class Config(unittest.TestCase):
    def test_shipped_redis_configs_pass(self):
        for name in ("chihaya-redis.toml", "chihaya-redis-cluster.toml"):
            with self.subTest(name):
                path = os.path.join(CHIHAYA_SOURCE_DIR, "etc", name)
                self.assertTrue(os.path.exists(path), "etc/%s is missing" % name)
                rc, out = run_binary(["--check-config", path])
                self.assertEqual(rc, 0, out)

    def test_unknown_redis_key_names_file_line_key(self):
        lines = [
            'plugins_dir = "%s"' % os.environ.get("CHIHAYA_PLUGINS_DIR", ""),
            "",
            "[cache]",
            'driver = "redis"',
            "",
            "[cache.redis]",
            'addresses = "127.0.0.1:6379"',
            "command_timeout_ms = 500",
            "comand_timeout_ms = 500",
        ]
        with tempfile.TemporaryDirectory(prefix="chihaya-config-") as d:
            path = os.path.join(d, "chihaya.toml")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            rc, out = run_binary(["--check-config", path])
        self.assertEqual(rc, 1, out)
        self.assertIn("%s:%d" % (path, len(lines)), out, "message must name file:line")
        self.assertIn("comand_timeout_ms", out, "message must name the key")


if __name__ == "__main__":
    unittest_main()
