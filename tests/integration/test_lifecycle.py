"""Process lifecycle of the real binary: signals, draining, shutdown order, housekeeping, expiry."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tracker_fixture  # noqa: E402
from tracker_fixture import (CHIHAYA_BIN, CHIHAYA_PLUGINS_DIR, STOP_TIMEOUT_S, V4, V6, Tracker,
                             announce_path, peer_id, random_hash, scrape_path, unittest_main)

# The probe cache driver (tests/plugins/probe_cache.cpp) and the bind() probe (bind_probe.cpp).
PROBE_PLUGIN_DIR = os.environ.get("CHIHAYA_PROBE_PLUGIN_DIR", "")
BIND_PROBE = os.environ.get("CHIHAYA_BIND_PROBE", "")


def probe_plugins(case):
    """A plugins_dir with the build's plugins and the probe cache driver, removed after `case`."""
    probe = os.path.join(PROBE_PLUGIN_DIR, "probe_cache.so")
    case.assertTrue(os.path.exists(probe), "probe_cache.so not built (CHIHAYA_PROBE_PLUGIN_DIR=%r)"
                    % PROBE_PLUGIN_DIR)
    d = tempfile.mkdtemp(prefix="chihaya-plugins-")
    case.addCleanup(shutil.rmtree, d)
    for name in os.listdir(CHIHAYA_PLUGINS_DIR):
        if name.endswith(".so"):
            shutil.copy(os.path.join(CHIHAYA_PLUGINS_DIR, name), d)
    shutil.copy(probe, d)
    return d


def probe_tracker(case, hold_ms=0, **kw):
    """A started Tracker on the probe cache driver, cleaned up after `case`."""
    t = Tracker({"cache": {"driver": "probe"}, "cache.probe": {"hold_ms": hold_ms}},
                plugins_dir=probe_plugins(case), **kw)
    case.addCleanup(t.cleanup)
    return t.start()


def wait_for_log(t, text, timeout_s):
    deadline = time.monotonic() + timeout_s
    while text not in t.log_text():
        if time.monotonic() > deadline or not t.alive():
            return False
        time.sleep(0.02)
    return True


def log_order(case, log, lines):
    """Asserts each of `lines` occurs in `log`, in this order."""
    at = -1
    for line in lines:
        i = log.find(line, at + 1)
        case.assertGreater(i, at, "%r missing or out of order in the log:\n%s" % (line, log))
        at = i


class Signals(unittest.TestCase):
    def test_sigint_stops_cleanly(self):
        t = Tracker()
        try:
            t.start()
            t.stop_checked(signal.SIGINT)
        finally:
            t.cleanup()

    def test_sigterm_with_idle_connections(self):
        # Idle keep-alive connections and a half-sent head must not hold shutdown hostage. (That
        # the tracker itself closes them is checked while it drains, in Draining below: once the
        # process has exited the kernel has closed every socket anyway.)
        t = Tracker()
        try:
            t.start()
            idle = t.http(V6)
            r = idle.get(announce_path(random_hash(), peer_id(), 9001, event="started", left=1))
            self.assertEqual(r.status, 200, r)
            half = t.http(V4)
            half.send(b"GET /announce?info_hash=")
            t.stop_checked(signal.SIGTERM)
            self.assertLess(t.stop_seconds, 3.0)
            idle.close()
            half.close()
        finally:
            t.cleanup()

    def test_signals_are_handled_before_any_socket_is_bound(self):
        """A SIGTERM from the moment a port is open must be a clean stop, not a kill: the
        bind() probe reports, at each bind, whether SIGTERM and SIGINT are already handled."""
        self.assertTrue(BIND_PROBE and os.path.exists(BIND_PROBE),
                        "bind_probe not built (CHIHAYA_BIND_PROBE=%r)" % BIND_PROBE)
        env = ["LD_PRELOAD=" + BIND_PROBE]
        if tracker_fixture.SANITIZER == "address":
            # The preloaded probe comes before the ASan runtime in the library list, which ASan
            # refuses by default; the probe only wraps bind(), which ASan does not intercept.
            env.append("ASAN_OPTIONS=%s:verify_asan_link_order=0" % os.environ.get("ASAN_OPTIONS", ""))
        t = Tracker(wrapper=["env"] + env)
        try:
            t.start()
            t.stop_checked()
            log = t.log_text()
        finally:
            t.cleanup()
        self.assertIn("bind-probe: bind with SIGTERM and SIGINT handled", log)
        self.assertNotIn("would kill", log)

    def test_sigterm_as_soon_as_the_port_accepts_is_a_clean_stop(self):
        # What a supervisor or a test fixture does: signal the process the moment it is reachable.
        for attempt in range(3):
            t = Tracker(udp=False, threads=4)
            try:
                with open(t.log_path, "wb") as log:
                    proc = subprocess.Popen([CHIHAYA_BIN, "--config", t.config_path],
                                            stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)
                    try:
                        deadline = time.monotonic() + 10
                        while time.monotonic() < deadline and proc.poll() is None:
                            try:
                                socket.create_connection((V4, t.http_port), timeout=0.5).close()
                                break
                            except OSError:
                                time.sleep(0.001)
                        proc.send_signal(signal.SIGTERM)
                        rc = proc.wait(timeout=STOP_TIMEOUT_S)
                    finally:
                        if proc.poll() is None:
                            proc.kill()
                            proc.wait()
                self.assertEqual(rc, 0, "attempt %d: exit %r:\n%s" % (attempt, rc, t.log_text()))
                self.assertIn("main: stopped", t.log_text())
            finally:
                t.cleanup()


class Draining(unittest.TestCase):
    HOLD_MS = 2000

    def test_request_in_flight_at_sigterm_is_answered(self):
        """SIGTERM with an announce held by the driver: idle connections are closed while the
        tracker drains, the held announce is answered, and only then is the driver destroyed."""
        t = probe_tracker(self, hold_ms=self.HOLD_MS)
        idle = t.http(V6)
        self.addCleanup(idle.close)
        self.assertEqual(idle.get(scrape_path([random_hash()])).status, 200)
        half = t.http(V4)
        self.addCleanup(half.close)
        half.send(b"GET /announce?info_hash=")
        in_flight = t.http(V4)
        self.addCleanup(in_flight.close)
        in_flight.send(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n"
                        % announce_path(random_hash(), peer_id(), 9002, left=1)).encode())
        self.assertTrue(wait_for_log(t, "probe: holding an announce", 5), t.log_text())

        t.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        for name, c in (("idle keep-alive", idle), ("half-sent head", half)):
            self.assertTrue(c.closed_within(1.0), name + " connection left open while draining")
        self.assertTrue(t.alive(), "exited before the held announce was answered:\n" + t.log_text())
        in_flight.sock.settimeout(STOP_TIMEOUT_S)
        r = in_flight.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertNotIn(b"failure reason", r.bencoded(), t.log_text())
        self.assertEqual(t.proc.wait(timeout=STOP_TIMEOUT_S), 0, t.log_text())
        self.assertGreater(time.monotonic() - t0, 0.5, "the hold was not waited for")
        log_order(self, t.log_text(), ["received SIGTERM", "probe: destroyed, 0 call(s) in flight",
                                       "probe: library unloaded", "main: stopped"])


class ShutdownOrder(unittest.TestCase):
    def test_drivers_destroyed_then_plugins_unloaded(self):
        t = probe_tracker(self)
        t.stop_checked()
        log_order(self, t.log_text(), ["main: serving on", "received SIGTERM", "probe: destroyed",
                                       "probe: library unloaded", "main: stopped"])


class Housekeeping(unittest.TestCase):
    def test_host_ticks_the_cache_driver(self):
        """The probe answers complete = tick calls so far: the host must call tick about once a
        second, or drivers that expire by sweeping (the memory driver) would never free swarms
        nobody announces to again (tests/unit/memory_swarm_test.cpp: tick frees them)."""
        t = probe_tracker(self)
        deadline = time.monotonic() + 6
        ticks = []
        with t.http(V4) as c:
            while time.monotonic() < deadline:
                r = c.get(announce_path(random_hash(), peer_id(), 9003, left=1))
                ticks.append(r.bencoded()[b"complete"])
                if ticks[-1] >= 3:
                    break
                time.sleep(0.25)
        self.assertGreaterEqual(ticks[-1], 3, "tick calls seen by the driver: %r" % ticks)
        self.assertEqual(ticks, sorted(ticks))
        t.stop_checked()
        self.assertIn("probe: destroyed, 0 call(s) in flight", t.log_text())


class Expiry(unittest.TestCase):
    # The memory driver keeps a peer at least PEER_LIFETIME_S (whole seconds, so up to one more).
    PEER_LIFETIME_S = 4
    # How far short of the lifetime a peer is still checked for: scheduling slack.
    SLACK_S = 0.5

    def tracker(self):
        return Tracker({"tracker": {"peer_lifetime": self.PEER_LIFETIME_S, "announce_interval": 1,
                                    "min_interval": 1}})

    def counts(self, c, h):
        files = c.get(scrape_path([h])).bencoded()[b"files"]
        f = files.get(h, {b"complete": 0, b"incomplete": 0})
        return f[b"complete"], f[b"incomplete"]

    def assert_counted_until(self, c, h, expected, until, what):
        """Scrapes (which never refreshes a peer) until `until`: the counts must not change."""
        while True:
            got = self.counts(c, h)
            checked_at = time.monotonic()
            self.assertEqual(got, expected, "%s: counts %r %.1f s before the check ended"
                             % (what, got, until - checked_at))
            if checked_at >= until:
                return
            time.sleep(0.2)

    def test_silent_peer_stays_its_lifetime_then_expires(self):
        with self.tracker() as t:
            h = random_hash()
            t0 = time.monotonic()
            with t.udp(V6) as c:
                c.announce(h, peer_id(), 9101, event="started", left=1)
                c.announce(h, peer_id(), 9102, event="started", left=0)
            with t.http(V4) as c:
                self.assert_counted_until(c, h, (1, 1), t0 + self.PEER_LIFETIME_S - self.SLACK_S,
                                          "silent peers within their lifetime")
                # Expired when now passes the deadline (lifetime + up to 1 s of rounding).
                deadline = t0 + self.PEER_LIFETIME_S + 3
                counts = None
                while time.monotonic() < deadline:
                    counts = self.counts(c, h)
                    if counts == (0, 0):
                        break
                    time.sleep(0.2)
            self.assertEqual(counts, (0, 0), "peers still counted %.1f s after their last announce"
                             % (time.monotonic() - t0))

    def test_announcing_peer_stays(self):
        """A re-announce moves the deadline: the same peer (same peer_id, address and port),
        announced again before it expires, is counted without a gap past its first lifetime."""
        with self.tracker() as t:
            h, me = random_hash(), peer_id()
            with t.udp(V4) as a, t.http(V4) as observer:
                a.announce(h, me, 9201, event="started", left=1)
                time.sleep(self.PEER_LIFETIME_S / 2)
                t_again = time.monotonic()
                r = a.announce(h, me, 9201, left=1)
                self.assertEqual(r["leechers"], 1, "the re-announce counted the peer twice")
                # Past the first announce's lifetime (+1 s of rounding), short of the second's.
                self.assert_counted_until(observer, h, (0, 1),
                                          t_again + self.PEER_LIFETIME_S - self.SLACK_S,
                                          "a peer that announced again")


class BindFailure(unittest.TestCase):
    def test_port_in_use_names_the_address(self):
        t = Tracker(udp=False)
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            blocker.bind((V4, t.http_port))
            blocker.listen(1)
            p = subprocess.run([CHIHAYA_BIN, "--config", t.config_path], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
            out = p.stdout.decode("utf-8", "replace")
            self.assertNotEqual(p.returncode, 0, out)
            self.assertIn("127.0.0.1:%d" % t.http_port, out)
        finally:
            blocker.close()
            t.cleanup()


if __name__ == "__main__":
    unittest_main()
