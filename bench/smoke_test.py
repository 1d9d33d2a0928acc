"""bench.smoke: a short chihaya_loadgen run per mode against the real tracker must be error-free."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from tracker_fixture import V4, V6, Tracker, addr_port  # noqa: E402

LOADGEN = os.environ.get("CHIHAYA_LOADGEN", "")
# The load generator fills hundreds of swarms from one address (127.0.0.1): [limits]'s flood
# defences (new_torrents_per_address above all) would refuse most of them. Off: this measures
# the tracker, not its refusals.
NO_LIMITS = {"max_torrents": 0, "max_peers": 0, "max_peers_per_address": 0, "new_torrents_per_address": 0}
SMALL = ["--torrents", "500", "--peers-per-torrent", "3", "--duration", "1",
         "--max-requests", "200000", "--prepopulate-seconds", "5", "--timeout-ms", "2000"]


def parse(line):
    return dict(kv.split("=", 1) for kv in line.split())


class Smoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(LOADGEN, os.X_OK):
            raise RuntimeError("CHIHAYA_LOADGEN must name the built chihaya_loadgen")
        cls.tracker = Tracker({"limits": NO_LIMITS}, log_level="warning")
        try:
            cls.tracker.start()
        except Exception:
            cls.tracker.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.tracker.stop_checked()
        finally:
            cls.tracker.cleanup()

    def run_loadgen(self, mode, target, extra=()):
        p = subprocess.run([LOADGEN, "--mode", mode, "--target", target] + SMALL + list(extra),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        out, err = p.stdout.decode(), p.stderr.decode()
        phases = {r["phase"]: r for r in map(parse, out.splitlines())}
        detail = "exit %d\nstdout:\n%s\nstderr:\n%s\ntracker log:\n%s" % (
            p.returncode, out, err, self.tracker.log_text())
        self.assertEqual(p.returncode, 0, detail)
        for phase in ("prepopulate", "steady"):
            r = phases.get(phase)
            self.assertIsNotNone(r, detail)
            self.assertEqual((r["errors"], r["timeouts"]), ("0", "0"), detail)
            self.assertGreater(int(r["announces"]), 0, detail)
        self.assertEqual(int(phases["prepopulate"]["announces"]), 500 * 3, detail)
        return phases

    def test_udp(self):
        for host in (V4, V6):
            with self.subTest(host=host):
                self.run_loadgen("udp", addr_port(host, self.tracker.udp_port))

    def test_udp_threads(self):
        # Two threads share phase 1 between them: together they still announce every peer once.
        self.run_loadgen("udp", addr_port(V4, self.tracker.udp_port),
                         ["--threads", "2", "--seed", "2", "--duration", "0.5"])

    def test_http_keep_alive(self):
        for host in (V4, V6):
            with self.subTest(host=host):
                self.run_loadgen("http", addr_port(host, self.tracker.http_port),
                                 ["--connections", "8"])

    def test_http_connection_per_request(self):
        self.run_loadgen("http-close", addr_port(V4, self.tracker.http_port), ["--connections", "4"])

    def test_paced(self):
        # --rate (bench/soak.py): the steady phase holds the asked rate, well under capacity,
        # UDP and HTTP alike, every reply still validated.
        for mode, port in (("udp", self.tracker.udp_port), ("http", self.tracker.http_port)):
            with self.subTest(mode=mode):
                phases = self.run_loadgen(mode, addr_port(V4, port),
                                          ["--rate", "2000", "--duration", "1.5", "--run", "3"])
                rate = float(phases["steady"]["rate"])
                self.assertGreater(rate, 1500, phases["steady"])
                self.assertLess(rate, 2200, phases["steady"])

    def test_zipf(self):
        # The realistic workload, small: 4,096 source addresses (one connect each), IPv6 peers,
        # scrapes and churn. Its own seed: other info_hashes than the uniform tests' swarms.
        args = [LOADGEN, "--workload", "zipf", "--target", addr_port(V4, self.tracker.udp_port),
                "--target6", addr_port(V6, self.tracker.udp_port), "--seed", "7",
                "--torrents", "2000", "--peers", "20000", "--source-net", "127.1.0.0/20",
                "--duration", "1", "--prepopulate-seconds", "10", "--max-requests", "300000",
                "--timeout-ms", "2000"]
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=40)
        out, err = p.stdout.decode(), p.stderr.decode()
        phases = {r["phase"]: r for r in map(parse, out.splitlines())}
        detail = "exit %d\nstdout:\n%s\nstderr:\n%s\ntracker log:\n%s" % (
            p.returncode, out, err, self.tracker.log_text())
        self.assertEqual(p.returncode, 0, detail)
        model = phases["model"]
        self.assertGreater(int(model["v6_peers"]), 0, detail)
        for phase in ("prepopulate", "steady"):
            r = phases.get(phase)
            self.assertIsNotNone(r, detail)
            self.assertEqual((r["errors"], r["timeouts"]), ("0", "0"), detail)
        # Phase 1 sends every peer; the steady phase's `unsent` is only its look-ahead.
        self.assertEqual(phases["prepopulate"]["unsent"], "0", detail)
        self.assertEqual(phases["prepopulate"]["announces"], model["peers"], detail)
        self.assertGreater(int(phases["steady"]["announces"]), 0, detail)
        self.assertGreater(int(phases["steady"]["scrapes"]), 0, detail)

    def test_refuses_non_loopback_target(self):
        for target in ("10.1.2.3:6969", "[2001:db8::1]:6969", "example.com:80"):
            p = subprocess.run([LOADGEN, "--target", target, "--duration", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
            self.assertEqual(p.returncode, 2, target)


if __name__ == "__main__":
    unittest.main(verbosity=2)
