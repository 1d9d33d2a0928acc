"""Process lifecycle of the real binary: clean stops on signals, peer expiry, bind failures."""

import os
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracker_fixture import (CHIHAYA_BIN, V4, V6, Tracker, announce_path, peer_id, random_hash,
                             scrape_path)

PEER_LIFETIME_S = 2


class Signals(unittest.TestCase):
    def test_sigint_stops_cleanly(self):
        t = Tracker()
        try:
            t.start()
            t.stop_checked(signal.SIGINT)
        finally:
            t.cleanup()

    def test_sigterm_with_open_connections(self):
        # Idle keep-alive connections and a half-sent head must not hold shutdown hostage.
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
            for c in (idle, half):
                self.assertTrue(c.closed_within(1), "connection left open after exit")
                c.close()
        finally:
            t.cleanup()


class Expiry(unittest.TestCase):
    def test_silent_peer_expires(self):
        with Tracker({"tracker": {"peer_lifetime": PEER_LIFETIME_S, "announce_interval": 1,
                                  "min_interval": 1}}) as t:
            h = random_hash()
            with t.udp(V6) as c:
                c.announce(h, peer_id(), 9101, event="started", left=1)
                c.announce(h, peer_id(), 9102, event="started", left=0)
                self.assertEqual(c.scrape([h]), [{"seeders": 1, "completed": 0, "leechers": 1}])
            t0 = time.monotonic()
            # The driver's tick runs about once a second: allow lifetime + 2 ticks + slack.
            deadline = t0 + PEER_LIFETIME_S + 4
            counts = None
            with t.http(V4) as c:
                while time.monotonic() < deadline:
                    files = c.get(scrape_path([h])).bencoded()[b"files"]
                    counts = files.get(h, {b"complete": 0, b"incomplete": 0})
                    if counts[b"complete"] == 0 and counts[b"incomplete"] == 0:
                        break
                    time.sleep(0.25)
            elapsed = time.monotonic() - t0
            self.assertEqual((counts[b"complete"], counts[b"incomplete"]), (0, 0),
                             "peers still counted %.1f s after their last announce" % elapsed)
            self.assertGreater(elapsed, PEER_LIFETIME_S - 1.0, "peers expired before peer_lifetime")

    def test_announcing_peer_stays(self):
        with Tracker({"tracker": {"peer_lifetime": PEER_LIFETIME_S, "announce_interval": 1,
                                  "min_interval": 1}}) as t:
            h = random_hash()
            with t.udp(V4) as c:
                end = time.monotonic() + PEER_LIFETIME_S + 2
                while time.monotonic() < end:
                    r = c.announce(h, peer_id(), 9201, left=1)
                    self.assertEqual(r["leechers"], 1)
                    time.sleep(0.5)


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
    unittest.main(verbosity=2)
