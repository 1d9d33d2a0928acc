"""The per-call deadline ([tracker] driver_timeout_ms) and the double-`done` check, in a live
tracker with the deliberately slow driver of tests/plugins/slow_cache.cpp: a call the driver never
completes, or completes late, is answered "unavailable" at the deadline over HTTP and UDP while
the tracker keeps serving; the late done is logged and ignored; a stray second done is refused
even when the call was reused at once; the memory the driver writes late is still valid (under
valgrind when it is installed)."""

import os
import re
import shutil
import socket
import struct
import time
import unittest

import tracker_fixture
from test_plugins import plugins_with
from tracker_fixture import (V4, Tracker, UdpError, announce_path, peer_id, scrape_path,
                             unittest_main)

DEADLINE_MS = 600
LATE_MS = 1500   # the slow driver's late done, well after the deadline
STRAY_MS = 300   # its stray second done, before the newer request's deadline

UNAVAILABLE = b"tracker storage unavailable"


def info_hash(first):
    """An info_hash whose first byte picks the slow driver's behaviour (slow_cache.cpp)."""
    return bytes([first]) + os.urandom(19)


NORMAL, NEVER, LATE, TWICE = 0x00, 0x01, 0x02, 0x03


def limit_hits(t, limit):
    status, text = t.admin_get("/metrics")
    assert status == 200, text[:200]
    m = re.search(r'^chihaya_limit_hits_total\{limit="%s"\} (\S+)$' % limit, text, re.M)
    assert m, "no chihaya_limit_hits_total for %s" % limit
    return float(m.group(1))


def wait_for_log(t, text, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in t.log_text(full=True):
            return True
        time.sleep(0.05)
    return False


class SlowDriver(unittest.TestCase):
    """One worker, so that a call the UDP frontend frees is the next one it takes."""

    def setUp(self):
        self.plugins = plugins_with(["slow_cache.so"])
        self.addCleanup(shutil.rmtree, self.plugins)

    def tracker(self, wrapper=(), deadline_ms=DEADLINE_MS, late_ms=LATE_MS):
        return Tracker({"tracker": {"driver_timeout_ms": deadline_ms}, "cache": {"driver": "slow"},
                        "cache.slow": {"late_ms": late_ms, "stray_ms": STRAY_MS}},
                       plugins_dir=self.plugins, threads=1, admin=True, wrapper=wrapper)

    def assert_unavailable_at_deadline(self, started):
        took = time.monotonic() - started
        self.assertGreaterEqual(took, DEADLINE_MS / 1000 - 0.05, "answered before the deadline")
        self.assertLess(took, DEADLINE_MS / 1000 + 1.5, "answered long after the deadline")

    def test_http_call_never_done_is_answered_unavailable_and_others_are_served(self):
        with self.tracker() as t:
            slow = t.http(V4)
            t0 = time.monotonic()
            slow.send(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
                       % announce_path(info_hash(NEVER), peer_id(), 7000, left=5)).encode())
            # While the driver holds that call, the same worker answers others at once.
            with t.http(V4) as other:
                for port in (7001, 7002):
                    t1 = time.monotonic()
                    r = other.get(announce_path(info_hash(NORMAL), peer_id(), port, left=5))
                    self.assertEqual(r.bencoded()[b"complete"], 1, r)
                    self.assertLess(time.monotonic() - t1, 0.3)
            r = slow.read_response()
            self.assert_unavailable_at_deadline(t0)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.bencoded()[b"failure reason"], UNAVAILABLE)
            # The call's memory is still the driver's: this connection serves no more.
            self.assertEqual(r.headers.get("connection"), "close")
            self.assertTrue(slow.closed_within(2))
            slow.close()

            with t.http(V4) as c:
                t0 = time.monotonic()
                r = c.get(scrape_path([info_hash(NEVER)]))
                self.assert_unavailable_at_deadline(t0)
                self.assertEqual(r.bencoded()[b"failure reason"], UNAVAILABLE)
            self.assertEqual(limit_hits(t, "driver_timeout_ms"), 2)
            self.assertIn('cache driver "slow": announce had no done after', t.log_text(full=True))
            self.assertTrue(t.alive())

    def test_udp_call_never_done_is_answered_unavailable_and_others_are_served(self):
        with self.tracker() as t:
            slow, other = t.udp(V4, timeout=5), t.udp(V4)
            try:
                slow.connect()
                t0 = time.monotonic()
                tid = slow.tid()
                slow.sock.send(slow.announce_packet(info_hash(NEVER), peer_id(), 7000, left=5, tid=tid))
                for port in (7001, 7002):
                    t1 = time.monotonic()
                    self.assertEqual(other.announce(info_hash(NORMAL), peer_id(), port, left=5)["seeders"], 1)
                    self.assertLess(time.monotonic() - t1, 0.3)
                reply = slow.sock.recv(2048)
                self.assert_unavailable_at_deadline(t0)
                self.assertEqual(struct.unpack(">II", reply[:8]), (3, tid))
                self.assertEqual(reply[8:], UNAVAILABLE)

                t0 = time.monotonic()
                with self.assertRaises(UdpError) as raised:
                    slow.scrape([info_hash(NEVER)])
                self.assert_unavailable_at_deadline(t0)
                self.assertEqual(str(raised.exception), UNAVAILABLE.decode())
            finally:
                slow.close()
                other.close()
            self.assertEqual(limit_hits(t, "driver_timeout_ms"), 2)
            self.assertTrue(t.alive())

    def test_late_done_is_logged_and_answers_nothing(self):
        with self.tracker() as t:
            http = t.http(V4)
            udp = t.udp(V4, timeout=5)
            try:
                t0 = time.monotonic()
                r = http.get(announce_path(info_hash(LATE), peer_id(), 7000, left=5))
                self.assert_unavailable_at_deadline(t0)
                self.assertEqual(r.bencoded()[b"failure reason"], UNAVAILABLE)
                t0 = time.monotonic()
                with self.assertRaises(UdpError):
                    udp.announce(info_hash(LATE), peer_id(), 7001, left=5)
                self.assert_unavailable_at_deadline(t0)
                # The late dones come LATE_MS after their calls: nothing more reaches the clients.
                self.assertTrue(wait_for_log(t, "done came", LATE_MS / 1000 + 2), t.log_text())
                time.sleep(0.3)
                udp.sock.settimeout(0.5)
                with self.assertRaises(socket.timeout):
                    udp.sock.recv(2048)
                self.assertTrue(http.closed_within(1))
                self.assertEqual(http.buf, b"")
            finally:
                http.close()
                udp.close()
            line = [l for l in t.log_text(full=True).splitlines() if "done came" in l][0]
            self.assertIn('cache driver "slow": announce done came', line)
            self.assertIn("after its deadline; ignored", line)
            late = int(re.search(r"done came (\d+) ms", line).group(1))
            self.assertGreater(late, (LATE_MS - DEADLINE_MS) / 2)
            self.assertLess(late, LATE_MS + 1000)
            # The worker took its call back and serves on.
            with t.udp(V4) as u:
                self.assertEqual(u.announce(info_hash(NORMAL), peer_id(), 7002, left=5)["seeders"], 1)

    def test_stray_second_done_does_not_answer_the_request_that_reused_the_call(self):
        """The driver completes 0x03 inline, then again STRAY_MS later. The next request on the
        same HTTP connection (its one call) and the next UDP datagram (the slot just freed) reuse
        that call at once; the stray done must not answer them."""
        with self.tracker() as t:
            with t.http(V4) as c:
                r = c.get(announce_path(info_hash(TWICE), peer_id(), 7000, left=5))
                self.assertEqual(r.bencoded()[b"complete"], 1, r)
                t0 = time.monotonic()
                r = c.get(announce_path(info_hash(NEVER), peer_id(), 7001, left=5))
                self.assert_unavailable_at_deadline(t0)
                self.assertEqual(r.bencoded()[b"failure reason"], UNAVAILABLE)
            with t.http(V4) as c:
                r = c.get(scrape_path([info_hash(TWICE)]))
                self.assertNotIn(b"failure reason", r.bencoded(), r)
                t0 = time.monotonic()
                r = c.get(scrape_path([info_hash(NEVER)]))
                self.assert_unavailable_at_deadline(t0)
                self.assertEqual(r.bencoded()[b"failure reason"], UNAVAILABLE)
            with t.udp(V4, timeout=5) as u:
                self.assertEqual(u.announce(info_hash(TWICE), peer_id(), 7002, left=5)["seeders"], 1)
                t0 = time.monotonic()
                with self.assertRaises(UdpError) as raised:
                    u.announce(info_hash(NEVER), peer_id(), 7003, left=5)
                self.assert_unavailable_at_deadline(t0)
                self.assertEqual(str(raised.exception), UNAVAILABLE.decode())
            self.assertIn('cache driver "slow": done called for an earlier announce whose memory now '
                          'serves another request; ignored', t.log_text(full=True))
            self.assertTrue(t.alive())

    def test_reload_moves_the_deadline_of_later_calls(self):
        with self.tracker() as t:
            t.reload({"tracker": {"driver_timeout_ms": 1500}})
            self.assertIn("tracker.driver_timeout_ms", t.log_text())
            with t.http(V4) as c:
                t0 = time.monotonic()
                r = c.get(announce_path(info_hash(NEVER), peer_id(), 7000, left=5))
                self.assertEqual(r.bencoded()[b"failure reason"], UNAVAILABLE)
                self.assertGreaterEqual(time.monotonic() - t0, 1.45)
            with t.udp(V4, timeout=5) as u:
                u.connect()
                t0 = time.monotonic()
                with self.assertRaises(UdpError):
                    u.announce(info_hash(NEVER), peer_id(), 7001, left=5)
                self.assertGreaterEqual(time.monotonic() - t0, 1.45)

    def test_stop_with_calls_the_driver_never_completes(self):
        """A call answered at its deadline does not hold the stop; one still waiting at SIGTERM
        is answered at its deadline, then the tracker exits; nothing is freed under the driver."""
        with self.tracker() as t:
            with t.udp(V4, timeout=5) as u:
                with self.assertRaises(UdpError):
                    u.announce(info_hash(NEVER), peer_id(), 7000, left=5)
            waiting = t.http(V4)
            waiting.send(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
                          % announce_path(info_hash(NEVER), peer_id(), 7001, left=5)).encode())
            time.sleep(0.1)
            t0 = time.monotonic()
            t.stop_checked()
            self.assertLess(time.monotonic() - t0, DEADLINE_MS / 1000 + 1.5, t.log_text())
            r = waiting.read_response()
            self.assertEqual(r.bencoded()[b"failure reason"], UNAVAILABLE)
            waiting.close()
            log = t.log_text(full=True)
            self.assertIn("calls still in flight at shutdown; leaking their buffers", log)
            self.assertIn("main: stopped", log)

    def test_calls_the_driver_completes_in_destroy_are_freed_not_leaked(self):
        """A late call still held at the stop is completed by the driver's destroy: that
        completion runs, frees its call, and nothing is reported as leaked."""
        with self.tracker(late_ms=30000) as t:
            with t.udp(V4, timeout=5) as u:
                with self.assertRaises(UdpError):
                    u.announce(info_hash(LATE), peer_id(), 7000, left=5)
            with t.http(V4) as c:
                r = c.get(announce_path(info_hash(LATE), peer_id(), 7001, left=5))
                self.assertEqual(r.bencoded()[b"failure reason"], UNAVAILABLE)
            t.stop_checked()
            log = t.log_text(full=True)
            self.assertNotIn("leaking", log)
            self.assertIn("main: stopped", log)

    def test_memory_the_driver_writes_after_the_deadline_is_valid_under_valgrind(self):
        # Valgrind cannot run a sanitizer's binary (both take over malloc and the address space);
        # in those builds the sanitizer itself checks these late writes, in the tests above.
        tracker_fixture.skip_under_sanitizer(self, "valgrind cannot run a sanitized binary")
        if not shutil.which("valgrind"):
            self.skipTest("valgrind is not installed")
        saved = tracker_fixture.START_TIMEOUT_S, tracker_fixture.STOP_TIMEOUT_S
        tracker_fixture.START_TIMEOUT_S = tracker_fixture.STOP_TIMEOUT_S = 90.0
        self.addCleanup(lambda: setattr(tracker_fixture, "START_TIMEOUT_S", saved[0]))
        self.addCleanup(lambda: setattr(tracker_fixture, "STOP_TIMEOUT_S", saved[1]))
        # Invalid reads/writes exit 99; the calls a driver never completes are leaked on purpose.
        wrapper = ["valgrind", "--error-exitcode=99", "--leak-check=no", "--errors-for-leak-kinds=none"]
        # Roomier times: everything runs some twenty times slower.
        deadline_ms, late_ms = 2000, 4000
        with self.tracker(wrapper=wrapper, deadline_ms=deadline_ms, late_ms=late_ms) as t:
            with t.http(V4, timeout=30) as c:
                r = c.get(announce_path(info_hash(LATE), peer_id(), 7000, left=5))
                self.assertEqual(r.bencoded()[b"failure reason"], UNAVAILABLE)
            with t.http(V4, timeout=30) as c:
                r = c.get(scrape_path([info_hash(LATE)]))
                self.assertEqual(r.bencoded()[b"failure reason"], UNAVAILABLE)
            with t.udp(V4, timeout=30) as u:
                with self.assertRaises(UdpError):
                    u.announce(info_hash(LATE), peer_id(), 7001, left=5)
                with self.assertRaises(UdpError):
                    u.announce(info_hash(NEVER), peer_id(), 7002, left=5)
            # Every late done (and the result, peers and counts it writes first) comes by then.
            time.sleep((late_ms - deadline_ms) / 1000 + 1)
            self.assertIn("done came", t.log_text(full=True))
        self.assertNotIn("Invalid read", t.log_text(full=True))
        self.assertNotIn("Invalid write", t.log_text(full=True))


if __name__ == "__main__":
    unittest_main()
