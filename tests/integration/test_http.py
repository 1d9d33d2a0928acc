"""HTTP frontend of the real binary: announce, scrape, connection handling and hostile input."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracker_fixture import (V4, V6, ConnectionClosed, Tracker, announce_path, compact_peers,
                             is_rejection, peer_id, random_hash, scrape_path,
                             start_module_tracker, stop_module_tracker, unittest_main)

REQUEST_TIMEOUT_S = 1
IDLE_TIMEOUT_S = 3
MAX_SCRAPE = 64
INTERVAL = 1800

tracker = None


def setUpModule():
    global tracker
    tracker = start_module_tracker({"tracker": {"announce_interval": INTERVAL,
                                                "max_scrape_torrents": MAX_SCRAPE},
                                    "http": {"request_timeout": REQUEST_TIMEOUT_S,
                                             "idle_timeout": IDLE_TIMEOUT_S}})


def tearDownModule():
    stop_module_tracker(tracker)


def announce(host, info_hash, pid, port, **kw):
    with tracker.http(host) as c:
        r = c.get(announce_path(info_hash, pid, port, **kw))
    assert r.status == 200, r
    d = r.bencoded()
    assert b"failure reason" not in d, d
    return d


def scrape(host, hashes):
    with tracker.http(host) as c:
        r = c.get(scrape_path(hashes))
    assert r.status == 200, r
    return r.bencoded()


class TrackerCase(unittest.TestCase):
    def assert_serves(self):
        """After hostile input the tracker must still answer a valid announce on both families."""
        self.assertTrue(tracker.alive(), tracker.log_text())
        for host in (V4, V6):
            d = announce(host, random_hash(), peer_id(), 6881, event="started", left=1)
            self.assertIn(b"interval", d)


class Announce(TrackerCase):
    def test_two_peers_find_each_other(self):
        for host, family, key in ((V4, socket.AF_INET, b"peers"), (V6, socket.AF_INET6, b"peers6")):
            with self.subTest(host=host):
                h = random_hash()
                a = announce(host, h, peer_id(), 7001, event="started", left=10)
                self.assertEqual(a[b"interval"], INTERVAL)
                self.assertEqual(compact_peers(a.get(key, b""), family), [],
                                 "a lone peer must not be handed itself")
                b = announce(host, h, peer_id(), 7002, event="started", left=10)
                self.assertIn(key, b, b)
                self.assertEqual(compact_peers(b[key], family), [(host, 7001)])
                a = announce(host, h, peer_id(), 7001, left=10)
                self.assertEqual(compact_peers(a[key], family), [(host, 7002)])
                self.assertEqual((a[b"complete"], a[b"incomplete"]), (0, 2))

    def test_ipv6_entries_are_18_bytes_and_families_stay_apart(self):
        h = random_hash()
        announce(V4, h, peer_id(), 7101, event="started", left=1)
        announce(V6, h, peer_id(), 7102, event="started", left=1)
        v6 = announce(V6, h, peer_id(), 7103, event="started", left=1)
        # Exactly the IPv6 peer: an IPv4 one would show up as a v4-mapped or garbled 18-byte
        # entry in peers6, or as a 6-byte entry in peers.
        self.assertEqual(compact_peers(v6[b"peers6"], socket.AF_INET6), [(V6, 7102)])
        self.assertEqual(v6.get(b"peers", b""), b"", "IPv4 peers in an IPv6 answer")
        v4 = announce(V4, h, peer_id(), 7104, event="started", left=1)
        self.assertEqual(compact_peers(v4[b"peers"], socket.AF_INET), [(V4, 7101)])
        self.assertEqual(v4.get(b"peers6", b""), b"", "IPv6 peers in an IPv4 answer")

    def test_non_compact(self):
        for host in (V4, V6):
            with self.subTest(host=host):
                h = random_hash()
                announce(host, h, peer_id(), 7201, event="started", left=5)
                d = announce(host, h, peer_id(), 7202, event="started", left=5, compact=0)
                peers = d[b"peers"]
                self.assertIsInstance(peers, list, d)
                self.assertEqual([(p[b"ip"].decode(), p[b"port"]) for p in peers], [(host, 7201)])

    def test_numwant_zero_still_counts(self):
        h = random_hash()
        announce(V4, h, peer_id(), 7301, event="started", left=5)
        d = announce(V4, h, peer_id(), 7302, event="started", left=5, numwant=0)
        self.assertEqual(compact_peers(d.get(b"peers", b""), socket.AF_INET), [])
        self.assertEqual(d[b"incomplete"], 2)

    def test_counts_follow_events(self):
        h = random_hash()
        a, b = peer_id(), peer_id()
        d = announce(V4, h, a, 7401, event="started", left=100)
        self.assertEqual((d[b"complete"], d[b"incomplete"]), (0, 1))
        d = announce(V4, h, b, 7402, event="started", left=0)
        self.assertEqual((d[b"complete"], d[b"incomplete"]), (1, 1))
        d = announce(V4, h, a, 7401, event="completed", left=0)
        self.assertEqual((d[b"complete"], d[b"incomplete"]), (2, 0))
        d = announce(V4, h, b, 7402, event="stopped", left=0)
        self.assertEqual((d[b"complete"], d[b"incomplete"]), (1, 0))
        files = scrape(V6, [h])[b"files"]
        self.assertEqual(files[h], {b"complete": 1, b"incomplete": 0, b"downloaded": 1})

    def test_unescaped_info_hash_bytes_are_the_same_torrent(self):
        h = b"abcdefghij0123456789"
        with tracker.http() as c:
            raw = "/announce?info_hash=%s&peer_id=%s&port=7501&uploaded=0&downloaded=0&left=3" \
                  "&compact=1&event=started" % (h.decode(), "-CT0001-abcdefghijkl")
            r = c.get(raw)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn(b"failure reason", r.bencoded())
        self.assertEqual(scrape(V4, [h])[b"files"][h][b"incomplete"], 1)


class Scrape(TrackerCase):
    def test_one_and_several(self):
        hashes = [random_hash() for _ in range(3)]
        for i, h in enumerate(hashes):
            for p in range(i + 1):
                announce(V4, h, peer_id(), 7600 + p, event="started", left=p)
        for host in (V4, V6):
            with self.subTest(host=host):
                one = scrape(host, hashes[2:])[b"files"]
                self.assertEqual(list(one), [hashes[2]])
                self.assertEqual(one[hashes[2]], {b"complete": 1, b"incomplete": 2,
                                                  b"downloaded": 0})
                files = scrape(host, hashes)[b"files"]
                self.assertEqual(set(files), set(hashes))
                self.assertEqual([(files[h][b"complete"], files[h][b"incomplete"]) for h in hashes],
                                 [(1, 0), (1, 1), (1, 2)])

    def test_unknown_torrent_has_zero_counts(self):
        h = random_hash()
        files = scrape(V4, [h])[b"files"]
        if h in files:
            self.assertEqual(files[h], {b"complete": 0, b"incomplete": 0, b"downloaded": 0})

    def test_full_scrape_refused_by_default(self):
        with tracker.http() as c:
            r = c.get("/scrape")
        self.assertTrue(is_rejection(r), r)
        self.assert_serves()

    def test_too_many_hashes(self):
        hashes = [random_hash() for _ in range(MAX_SCRAPE + 1)]
        with tracker.http() as c:
            r = c.get(scrape_path(hashes))
        if not is_rejection(r):
            self.assertEqual(r.status, 200, r)
            self.assertLessEqual(len(r.bencoded()[b"files"]), MAX_SCRAPE)
        self.assert_serves()


class FullScrapeAllowed(unittest.TestCase):
    def test_lists_every_torrent(self):
        with Tracker({"tracker": {"allow_full_scrape": True}}) as t:
            hashes = [random_hash() for _ in range(3)]
            with t.http() as c:
                for h in hashes:
                    r = c.get(announce_path(h, peer_id(), 7700, event="started", left=1))
                    self.assertEqual(r.status, 200, r)
                r = c.get("/scrape")
            self.assertEqual(r.status, 200, r)
            files = r.bencoded()[b"files"]
            self.assertEqual(set(files), set(hashes))
            self.assertTrue(all(files[h][b"incomplete"] == 1 for h in hashes), files)


class ClientAddress(TrackerCase):
    def test_untrusted_forwarded_for_and_ip_param_ignored(self):
        h = random_hash()
        with tracker.http() as c:
            r = c.get(announce_path(h, peer_id(), 7951, event="started", left=1,
                                    extra="ip=127.9.8.7"),
                      headers=[("X-Forwarded-For", "127.1.2.3")])
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.bencoded()[b"warning message"],
                             b"ip parameter ignored: peers get the address this request came from")
        d = announce(V4, h, peer_id(), 7952, event="started", left=1)
        self.assertEqual(compact_peers(d[b"peers"], socket.AF_INET), [(V4, 7951)])

    def test_ip_param_believed_when_allowed(self):
        with Tracker({"http": {"allow_ip_param": True}, "limits": {"max_peers_per_address": 0}}) as t:
            h = random_hash()
            with t.http() as c:
                r = c.get(announce_path(h, peer_id(), 7955, event="started", left=1,
                                        extra="ip=127.9.8.7"))
                self.assertNotIn(b"warning message", r.bencoded())
                r = c.get(announce_path(h, peer_id(), 7956, event="started", left=1))
            peers = compact_peers(r.bencoded()[b"peers"], socket.AF_INET)
            self.assertEqual(peers, [("127.9.8.7", 7955)])

    def test_unreadable_header_from_trusted_proxy_refused(self):
        with Tracker({"http": {"trusted_proxies": ["127.0.0.0/8"]}}) as t:
            h = random_hash()
            with t.http() as c:
                r = c.get(announce_path(h, peer_id(), 7957, event="started", left=1),
                          headers=[("X-Forwarded-For", "unknown")])
                self.assertEqual(r.bencoded()[b"failure reason"],
                                 b"unreadable client address from the proxy")
                r = c.get(scrape_path([h]))
                counts = r.bencoded()[b"files"][h]
                self.assertEqual(counts[b"complete"] + counts[b"incomplete"], 0,
                                 "nothing was added to the swarm")

    def test_trusted_proxy_header_believed(self):
        with Tracker({"http": {"trusted_proxies": ["127.0.0.1"]}}) as t:
            h = random_hash()
            with t.http() as c:
                r = c.get(announce_path(h, peer_id(), 7953, event="started", left=1),
                          headers=[("X-Forwarded-For", "127.0.0.5, 127.0.0.9")])
                self.assertEqual(r.status, 200, r)
                r = c.get(announce_path(h, peer_id(), 7954, event="started", left=1))
            peers = compact_peers(r.bencoded()[b"peers"], socket.AF_INET)
            self.assertEqual(peers, [("127.0.0.9", 7953)], "the last X-Forwarded-For entry wins")


class Connection(TrackerCase):
    def test_keep_alive_serves_several_requests(self):
        h = random_hash()
        with tracker.http(V6) as c:
            for i in range(5):
                r = c.get(announce_path(h, peer_id(), 7800 + i, event="started", left=1))
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.bencoded()[b"incomplete"], i + 1)
            r = c.get(scrape_path([h]))
            self.assertEqual(r.bencoded()[b"files"][h][b"incomplete"], 5)

    def test_pipelined_requests_answered_in_order(self):
        h = random_hash()
        with tracker.http() as c:
            req = b""
            for i in range(3):
                req += ("GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
                        % announce_path(h, peer_id(), 7850 + i, event="started", left=1)).encode()
            c.send(req)
            counts = [c.read_response().bencoded()[b"incomplete"] for _ in range(3)]
        self.assertEqual(counts, [1, 2, 3])

    def test_http10_answered_then_closed(self):
        with tracker.http() as c:
            r = c.get(announce_path(random_hash(), peer_id(), 7901, event="started", left=1),
                      version="HTTP/1.0")
            self.assertEqual(r.status, 200, r)
            self.assertIn(b"interval", r.bencoded())
            self.assertTrue(c.closed_within(2), "HTTP/1.0 without keep-alive must be closed")

    def test_connection_close_honoured(self):
        with tracker.http() as c:
            r = c.get(announce_path(random_hash(), peer_id(), 7902, left=1),
                      headers=[("Connection", "close")])
            self.assertEqual(r.status, 200, r)
            self.assertTrue(c.closed_within(2))

    def test_slow_loris_closed_after_request_timeout(self):
        with tracker.http() as c:
            t0 = time.monotonic()
            c.send(b"GET /announce?info_hash=aaaa")
            closed = c.closed_within(REQUEST_TIMEOUT_S + 3)
            elapsed = time.monotonic() - t0
        self.assertTrue(closed, "half a request head kept open past request_timeout")
        self.assertGreater(elapsed, REQUEST_TIMEOUT_S * 0.5)
        self.assert_serves()

    def test_slow_loris_trickle_still_closed(self):
        # A byte every 300 ms would defeat a per-read timeout; request_timeout is for the head.
        with tracker.http() as c:
            t0 = time.monotonic()
            closed = False
            for ch in b"GET /announce?info_hash=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":
                try:
                    c.send(bytes([ch]))
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                if c.closed_within(0.3):
                    closed = True
                    break
                if time.monotonic() - t0 > REQUEST_TIMEOUT_S + 3:
                    break
        self.assertTrue(closed, "a trickled head kept open past request_timeout")

    def test_idle_keep_alive_closed_after_idle_timeout(self):
        with tracker.http() as c:
            self.assertEqual(c.get(announce_path(random_hash(), peer_id(), 7903, left=1)).status,
                             200)
            t0 = time.monotonic()
            closed = c.closed_within(IDLE_TIMEOUT_S + 3)
            elapsed = time.monotonic() - t0
        self.assertTrue(closed, "idle keep-alive connection kept past idle_timeout")
        self.assertGreater(elapsed, IDLE_TIMEOUT_S * 0.5, "closed long before idle_timeout")


class MaxConnections(unittest.TestCase):
    MAX = 2

    def served(self, c):
        """True when a request on `c` is answered; False when the tracker closes `c` instead."""
        try:
            c.send(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % scrape_path([random_hash()])).encode())
            return c.read_response().status == 200
        except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
            return False

    def test_connections_past_max_connections_are_shed(self):
        # http.max_connections is per worker: one worker, so at most MAX sessions at a time.
        with Tracker({"http": {"max_connections": self.MAX}}, udp=False, threads=1) as t:
            conns = [t.http((V4, V6)[i % 2], timeout=3.0) for i in range(self.MAX + 2)]
            try:
                answered = [self.served(c) for c in conns]
                self.assertLessEqual(sum(answered), self.MAX, "answered: %r" % answered)
                self.assertGreaterEqual(answered.count(False), 2, "answered: %r" % answered)
                # The sessions kept open still serve.
                for c, ok in zip(conns, answered):
                    if ok:
                        self.assertTrue(self.served(c))
            finally:
                for c in conns:
                    c.close()
            # Their slots are freed once the tracker sees them closed (bounded wait).
            deadline = time.monotonic() + 3
            ok = False
            while not ok and time.monotonic() < deadline:
                with t.http(V4, timeout=3.0) as c:
                    ok = self.served(c)
                if not ok:
                    time.sleep(0.05)
            self.assertTrue(ok, "no connection served after the others closed")


GOOD_HASH = "%41" * 20
GOOD_PID = "-CT0001-" + "b" * 12


def query(**fields):
    base = {"info_hash": GOOD_HASH, "peer_id": GOOD_PID, "port": "6881", "uploaded": "0",
            "downloaded": "0", "left": "0"}
    base.update(fields)
    return "/announce?" + "&".join("%s=%s" % kv for kv in base.items() if kv[1] is not None)


class Malformed(TrackerCase):
    def refused(self, raw, allow_close=True):
        """Sends `raw` on a fresh connection; the answer must be a refusal (or a close)."""
        with tracker.http() as c:
            try:
                c.send(raw)
                r = c.read_response()
            except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
                r = None
        if r is None:
            self.assertTrue(allow_close, "connection closed without an answer to %r" % raw[:80])
        else:
            self.assertLess(r.status, 500, "server error for %r: %r" % (raw[:80], r))
            self.assertTrue(is_rejection(r), "accepted %r: %r" % (raw[:120], r))
        self.assert_serves()
        return r

    def get(self, path):
        return ("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode("latin-1")

    def test_the_good_query_is_good(self):
        with tracker.http() as c:
            r = c.get(query())
        self.assertEqual(r.status, 200, r)
        self.assertNotIn(b"failure reason", r.bencoded())

    def test_bad_fields(self):
        cases = {
            "missing info_hash": query(info_hash=None),
            "info_hash 19 bytes": query(info_hash="%41" * 19),
            "info_hash 21 bytes": query(info_hash="%41" * 21),
            "info_hash empty": query(info_hash=""),
            "info_hash bad escape": query(info_hash="%zz" + "%41" * 19),
            "info_hash truncated escape": query(info_hash="%41" * 19 + "%4"),
            "missing peer_id": query(peer_id=None),
            "peer_id 19 bytes": query(peer_id="b" * 19),
            "peer_id 21 bytes": query(peer_id="b" * 21),
            "missing port": query(port=None),
            "port 0": query(port="0"),
            "port 65536": query(port="65536"),
            "port negative": query(port="-1"),
            "port not a number": query(port="abc"),
            "port with suffix": query(port="6881x"),
            "port huge": query(port="99999999999999999999999"),
            "uploaded not a number": query(uploaded="lots"),
            "downloaded negative": query(downloaded="-5"),
            "left not a number": query(left="1e5"),
            "numwant not a number": query(numwant="many"),
        }
        for name, path in cases.items():
            with self.subTest(name):
                self.refused(self.get(path), allow_close=False)

    def test_unknown_path_is_404(self):
        with tracker.http() as c:
            r = c.get("/nothing-here")
        self.assertEqual(r.status, 404, r)
        self.assert_serves()

    def test_other_methods(self):
        for method in ("POST", "PUT", "DELETE"):
            with self.subTest(method):
                self.refused(("%s %s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
                              % (method, query())).encode())

    def test_garbage(self):
        for raw in (b"\x00\x01\x02\x03garbage\r\n\r\n", b"\r\n\r\n", b"GET\r\n\r\n",
                    b"GET /announce HTTP/9.9\r\n\r\n", b"HELLO WORLD\r\n\r\n",
                    b"GET /announce?info_hash=%41 HTTP/1.1\r\nbad header line\r\n\r\n",
                    bytes(range(256)) * 4 + b"\r\n\r\n"):
            with self.subTest(raw=raw[:40]):
                self.refused(raw)

    def test_oversized_request_line(self):
        r = self.refused(("GET /announce?pad=%s HTTP/1.1\r\nHost: t\r\n\r\n"
                          % ("x" * 9000)).encode())
        if r is not None:
            self.assertIn(r.status, (400, 414, 431), r)

    def test_oversized_headers(self):
        headers = "".join("X-Pad-%d: %s\r\n" % (i, "y" * 100) for i in range(90))
        r = self.refused(("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (query(), headers)).encode())
        if r is not None:
            self.assertIn(r.status, (400, 431), r)

    def test_endless_head_is_cut_off(self):
        with tracker.http() as c:
            t0 = time.monotonic()
            closed = False
            try:
                c.send(b"GET /announce?x=1 HTTP/1.1\r\n")
                for _ in range(64):  # 64 KiB, far past the 8 KiB head cap
                    c.send(b"X-Pad: " + b"z" * 1016 + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            except socket.timeout:
                self.fail("the tracker stopped reading an endless head without closing")
            if not closed:
                c.sock.settimeout(REQUEST_TIMEOUT_S + 3)
                try:
                    r = c.read_response()
                    self.assertIn(r.status, (400, 431), r)
                except (ConnectionClosed, ConnectionResetError):
                    pass
                except socket.timeout:
                    self.fail("no answer and no close after an endless head")
                closed = c.closed_within(REQUEST_TIMEOUT_S + 3)
            self.assertTrue(closed, "endless head not cut off")
            self.assertLess(time.monotonic() - t0, REQUEST_TIMEOUT_S + 3)
        self.assert_serves()


if __name__ == "__main__":
    unittest_main()
