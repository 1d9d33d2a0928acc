"""Plugins in a live tracker: broken files are logged and skipped, duplicates stop start-up."""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracker_fixture import (CHIHAYA_PLUGINS_DIR, V4, V6, Tracker, announce_path, peer_id,
                             random_hash, unittest_main)

BROKEN_DIR = os.environ.get("CHIHAYA_TEST_PLUGIN_DIR", "")
ABI20_DIR = os.environ.get("CHIHAYA_ABI20_PLUGIN_DIR", "")

# file → what the log line must say about it
BROKEN = {
    "wrong_major.so": "built for ABI 99.3, this host speaks ABI 2.",
    "bad_magic.so": "not a chihaya plugin",
    "no_entry.so": "no entry symbol chihaya_plugin_entry",
    "missing_symbol.so": "chihaya_test_symbol_that_does_not_exist",
    "needs_newer_host.so": "needs a host of ABI 2.9 or newer; this host speaks ABI 2.1",
}


def plugins_with(extra):
    """A temporary plugins_dir: the build's real plugins plus `extra` files from BROKEN_DIR."""
    d = tempfile.mkdtemp(prefix="chihaya-plugins-")
    for name in os.listdir(CHIHAYA_PLUGINS_DIR):
        if name.endswith(".so"):
            shutil.copy(os.path.join(CHIHAYA_PLUGINS_DIR, name), d)
    for name in extra:
        shutil.copy(os.path.join(BROKEN_DIR, name), d)
    return d


class BrokenPlugins(unittest.TestCase):
    def test_broken_plugins_are_logged_and_the_tracker_serves(self):
        d = plugins_with(BROKEN)
        try:
            with Tracker(plugins_dir=d) as t:
                log = t.log_text()
                for name, reason in BROKEN.items():
                    line = [l for l in log.splitlines() if name in l]
                    self.assertTrue(line, "no log line names %s:\n%s" % (name, log))
                    self.assertIn(reason, line[0])
                    self.assertIn("refused", line[0])
                h = random_hash()
                for host in (V4, V6):
                    with t.http(host) as c:
                        r = c.get(announce_path(h, peer_id(), 7000, event="started", left=5))
                        self.assertEqual(r.status, 200, r)
                        self.assertNotIn(b"failure reason", r.bencoded())
                with t.udp(V4) as u:
                    u.connect()
                    u.announce(h, peer_id(), 7001, event="started", left=5)
        finally:
            shutil.rmtree(d)

    def test_duplicate_driver_names_stop_start_up_listing_the_files(self):
        d = plugins_with(["duplicate_a.so", "duplicate_b.so"])
        try:
            t = Tracker(plugins_dir=d)
            try:
                with self.assertRaises(RuntimeError) as failure:
                    t.start()
                message = str(failure.exception)
                self.assertIn('"dup" is registered twice', message)
                self.assertIn("duplicate_a.so", message)
                self.assertIn("duplicate_b.so", message)
                self.assertIn("registered cache drivers: dup, memory", message)
            finally:
                t.cleanup()
        finally:
            shutil.rmtree(d)

    def test_driver_failing_to_start_is_named(self):
        d = plugins_with(["throwing_cache.so"])
        try:
            t = Tracker({"cache": {"driver": "throwing"}, "cache.throwing": {"fail_create": True}},
                        plugins_dir=d)
            try:
                with self.assertRaises(RuntimeError) as failure:
                    t.start()
                message = str(failure.exception)
                self.assertIn('cache driver "throwing"', message)
                self.assertIn("cannot reach the store at 127.0.0.1:1", message)
            finally:
                t.cleanup()
        finally:
            shutil.rmtree(d)


class OlderMinorPlugins(unittest.TestCase):
    def test_plugins_built_against_abi_2_0_serve_open_mode(self):
        """The memory cache and none storage from the frozen 2.0 headers run the open tracker."""
        self.assertTrue(ABI20_DIR and os.path.isdir(ABI20_DIR), "CHIHAYA_ABI20_PLUGIN_DIR not built")
        with Tracker(plugins_dir=ABI20_DIR) as t:
            log = t.log_text()
            self.assertIn("abi2.0", log)  # the 2.0 builds were the ones loaded
            h = random_hash()
            with t.http(V4) as c:
                r = c.get(announce_path(h, peer_id(), 7000, event="started", left=0))
                self.assertEqual(r.bencoded()[b"complete"], 1, r)
                r = c.get(announce_path(h, peer_id(), 7001, event="started", left=5))
                body = r.bencoded()
                self.assertEqual((body[b"complete"], body[b"incomplete"]), (1, 1), r)
                self.assertEqual(len(body[b"peers"]), 6)
            with t.udp(V4) as u:
                u.connect()
                reply = u.announce(h, peer_id(), 7002, event="started", left=5)
                self.assertEqual(reply["seeders"], 1, reply)


if __name__ == "__main__":
    unittest_main()
