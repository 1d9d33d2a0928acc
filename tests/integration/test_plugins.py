"""Plugins in a live tracker: broken files are logged and skipped, duplicates stop start-up,
unsafe files are refused, --list-plugins and --check-config --connect, driver errors in the log."""

import os
import re
import shutil
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracker_fixture import (CHIHAYA_PLUGINS_DIR, V4, V6, Tracker, announce_path, peer_id,
                             random_hash, run_binary, scrape_path, unittest_main)

BROKEN_DIR = os.environ.get("CHIHAYA_TEST_PLUGIN_DIR", "")
ABI20_DIR = os.environ.get("CHIHAYA_ABI20_PLUGIN_DIR", "")

# file → what the log line must say about it
BROKEN = {
    "wrong_major.so": "built for ABI 99.3, this host speaks ABI 2.",
    "bad_magic.so": "not a chihaya plugin",
    "no_entry.so": "no entry symbol chihaya_plugin_entry",
    "missing_symbol.so": "chihaya_test_symbol_that_does_not_exist",
    "needs_newer_host.so": "needs a host of ABI 2.9 or newer; this host speaks ABI 2.3",
    # Loaded into a probe's child first (plugin/probe.hpp): these would have killed the tracker.
    "crash_on_load.so": "crashed while loading (signal 6",
    "exit_on_load.so": "exited with status 7 while loading",
}


def plugins_with(extra):
    """A temporary plugins_dir: the build's real plugins plus `extra` files from BROKEN_DIR."""
    d = tempfile.mkdtemp(prefix="chihaya-plugins-")
    os.chmod(d, 0o755)  # the loader refuses a dir or file writable by group or others
    for name in os.listdir(CHIHAYA_PLUGINS_DIR):
        if name.endswith(".so"):
            shutil.copy(os.path.join(CHIHAYA_PLUGINS_DIR, name), d)
    for name in extra:
        shutil.copy(os.path.join(BROKEN_DIR, name), d)
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o644)
    return d


def write_config(directory, text):
    path = os.path.join(directory, "check.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def closed_port():
    s = socket.socket()
    s.bind((V4, 0))
    port = s.getsockname()[1]
    s.close()
    return port


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

    def test_only_the_selected_drivers_plugins_are_mapped_into_the_tracker(self):
        d = plugins_with([])
        try:
            with Tracker(plugins_dir=d) as t:
                with open("/proc/%d/maps" % t.proc.pid) as f:
                    maps = f.read()
                log = t.log_text()
            # memory and none serve; postgres and redis were probed in a child and named in the log.
            self.assertIn(os.path.join(d, "chihaya_memory.so"), maps)
            for plugin, library, driver in (("chihaya_postgres.so", "libpq.so", 'storage "postgres"'),
                                            ("chihaya_redis.so", "libhiredis", 'cache "redis"')):
                self.assertNotIn(plugin, maps)
                self.assertNotIn(library, maps)
                line = [l for l in log.splitlines() if plugin in l]
                self.assertTrue(line, log)
                self.assertIn("not loaded", line[0])
                self.assertIn(driver, line[0])
            self.assertNotIn("libcrypto", maps)
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


class UnsafePlugins(unittest.TestCase):
    def test_a_group_writable_plugins_dir_stops_start_up_naming_the_fix(self):
        d = plugins_with([])
        os.chmod(d, 0o775)
        try:
            t = Tracker(plugins_dir=d)
            try:
                with self.assertRaises(RuntimeError) as failure:
                    t.start()
                self.assertIn("plugins_dir %s is writable by its group" % d, str(failure.exception))
                self.assertIn("chmod go-w %s" % d, str(failure.exception))
            finally:
                t.cleanup()
        finally:
            shutil.rmtree(d)

    def test_a_world_writable_plugin_is_refused_and_the_others_serve(self):
        d = plugins_with(["good_cache.so"])
        os.chmod(os.path.join(d, "good_cache.so"), 0o666)
        try:
            with Tracker(plugins_dir=d) as t:
                log = t.log_text()
                self.assertRegex(log, r"good_cache\.so: refused: plugin \S+ is writable by others")
                with t.http(V4) as c:
                    r = c.get(announce_path(random_hash(), peer_id(), 7000, left=5))
                    self.assertNotIn(b"failure reason", r.bencoded())
        finally:
            shutil.rmtree(d)


class ListPlugins(unittest.TestCase):
    def test_every_file_is_listed_and_a_refusal_fails_the_command(self):
        d = plugins_with(["wrong_major.so", "double_done.so"])
        with open(os.path.join(d, "README.txt"), "w") as f:
            f.write("notes\n")
        try:
            config = write_config(d, 'plugins_dir = "%s"\n' % d)
            code, out = run_binary(["--list-plugins", "--config", config])
            self.assertEqual(code, 1, out)
            self.assertIn("plugins_dir: %s" % d, out)
            self.assertIn("host ABI: 2.3", out)
            self.assertRegex(out, r"chihaya_memory\.so: loaded: plugin \"memory\" \S+, ABI 2\.3")
            self.assertIn('  cache driver "memory", keys of [cache.memory]:', out)
            self.assertRegex(out, r"\n    shards = \d+  # ")
            self.assertIn('  storage driver "none" (open mode only), no config keys', out)
            self.assertIn("wrong_major.so: refused: built for ABI 99.3", out)
            self.assertIn("README.txt: ignored: not a *.so file", out)
            # Secret keys: the key and its doc, never a value.
            self.assertIn('    token = "(secret)"  # a secret the listing hides', out)
            self.assertNotIn("s3cr3t-default", out)
            self.assertIn('    password = "(secret)"', out)
            self.assertRegex(out, r"\d+ loaded, 1 refused, \d+ ignored")
            os.unlink(os.path.join(d, "wrong_major.so"))
            code, out = run_binary(["--list-plugins", "--config", config])
            self.assertEqual(code, 0, out)
            self.assertIn(" 0 refused", out)
        finally:
            shutil.rmtree(d)

    def test_a_driver_registered_twice_is_listed_as_refused(self):
        d = plugins_with(["duplicate_a.so", "duplicate_b.so"])
        try:
            config = write_config(d, 'plugins_dir = "%s"\n' % d)
            code, out = run_binary(["--list-plugins", "--config", config])
            self.assertEqual(code, 1, out)
            self.assertIn("duplicate_a.so: loaded", out)
            self.assertIn('duplicate_b.so: refused: cache driver "dup" is registered twice', out)
        finally:
            shutil.rmtree(d)


class CheckConnect(unittest.TestCase):
    def check(self, d, cache_tables):
        config = write_config(d, 'plugins_dir = "%s"\n%s' % (d, cache_tables))
        return run_binary(["--check-config", config, "--connect"], timeout=30)

    def test_a_wrong_redis_address_fails_the_check(self):
        d = plugins_with([])
        try:
            code, out = self.check(d, '[cache]\ndriver = "redis"\n[cache.redis]\n'
                                      'addresses = "127.0.0.1:%d"\nconnect_timeout_ms = 200\n'
                                      % closed_port())
            self.assertEqual(code, 1, out)
            self.assertIn('cache driver "redis" started with', out)
            self.assertIn("Connection refused", out)
            # Without --connect the same file is valid: only the tables are checked.
            config = os.path.join(d, "check.toml")
            code, out = run_binary(["--check-config", config])
            self.assertEqual(code, 0, out)
        finally:
            shutil.rmtree(d)

    def test_drivers_that_start_pass_and_one_that_fails_create_is_named(self):
        d = plugins_with(["throwing_cache.so"])
        try:
            code, out = self.check(d, '[cache]\ndriver = "memory"\n')
            self.assertEqual(code, 0, out)
            self.assertIn('storage driver "none": created and destroyed', out)
            self.assertIn('cache driver "memory": created and destroyed', out)
            code, out = self.check(d, '[cache]\ndriver = "throwing"\n[cache.throwing]\n'
                                      'fail_create = true\n')
            self.assertEqual(code, 1, out)
            self.assertIn('cache driver "throwing"', out)
            self.assertIn("cannot reach the store at 127.0.0.1:1", out)
        finally:
            shutil.rmtree(d)


class DriverErrors(unittest.TestCase):
    def test_a_failing_drivers_message_reaches_the_log_once_per_window(self):
        d = plugins_with(["throwing_cache.so"])
        try:
            with Tracker({"cache": {"driver": "throwing"}}, plugins_dir=d) as t:
                with t.http(V4) as c:
                    for port in range(7000, 7005):
                        r = c.get(announce_path(random_hash(), peer_id(), port, left=5))
                        # The client gets the generic reason, never the driver's words.
                        self.assertEqual(r.bencoded()[b"failure reason"], b"internal tracker error")
                        self.assertNotIn(b"exploded", r.body)
                deadline = time.monotonic() + 2
                while "announce exploded" not in t.log_text() and time.monotonic() < deadline:
                    time.sleep(0.05)
                lines = [l for l in t.log_text().splitlines() if "failed (" in l]
                self.assertEqual(len(lines), 1, t.log_text())
                self.assertIn('cache driver "throwing": announce failed (internal): announce exploded',
                              lines[0])
        finally:
            shutil.rmtree(d)

    def test_done_called_twice_is_logged_and_the_client_answered_once(self):
        d = plugins_with(["double_done.so"])
        try:
            with Tracker({"cache": {"driver": "double_done"}}, plugins_dir=d) as t:
                h = random_hash()
                with t.http(V4) as c:
                    r = c.get(announce_path(h, peer_id(), 7000, left=5))
                    self.assertNotIn(b"failure reason", r.bencoded())
                    r = c.get(scrape_path([h]))  # done, then a throw: a second done
                    self.assertEqual(r.status, 200, r)
                    # The same connection still works: nothing answered twice.
                    r = c.get(announce_path(h, peer_id(), 7001, left=5))
                    self.assertNotIn(b"failure reason", r.bencoded())
                with t.udp(V4) as u:
                    u.connect()
                    u.announce(h, peer_id(), 7002, left=5)
                    u.announce(h, peer_id(), 7003, left=5)
                self.assertTrue(t.alive())
                log = t.log_text()
                self.assertIn('cache driver "double_done": done called twice for one announce', log)
                t.stop_checked()
        finally:
            shutil.rmtree(d)

    def test_a_2_3_cache_that_does_not_declare_limits_is_warned_about(self):
        """Built for 2.3 is not enough to enforce [limits]: without CHIHAYA_DRIVER_PROVIDES_LIMITS
        start-up says they are not enforced; the memory driver declares it and is not warned about."""
        d = plugins_with(["double_done.so"])
        try:
            with Tracker({"cache": {"driver": "double_done"}}, plugins_dir=d) as t:
                self.assertIn('cache driver "double_done" does not declare CHIHAYA_DRIVER_PROVIDES_LIMITS: '
                              'it does not enforce [limits]', t.log_text())
            with Tracker(plugins_dir=d) as t:
                self.assertNotIn("does not enforce [limits]", t.log_text())
        finally:
            shutil.rmtree(d)


class OlderMinorPlugins(unittest.TestCase):
    def test_plugins_built_against_abi_2_0_serve_open_mode(self):
        """The memory cache and none storage from the frozen 2.0 headers run the open tracker."""
        self.assertTrue(ABI20_DIR and os.path.isdir(ABI20_DIR), "CHIHAYA_ABI20_PLUGIN_DIR not built")
        with Tracker(plugins_dir=ABI20_DIR) as t:
            log = t.log_text()
            self.assertIn("abi2.0", log)  # the 2.0 builds were the ones loaded
            # [limits] travel in the 2.3 request: a 2.0 driver never sees them, and start-up says so.
            self.assertIn('cache driver "memory" was built for ABI 2.0: it does not enforce [limits]', log)
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

    def test_a_2_0_cache_without_stats_still_has_its_totals_in_metrics(self):
        """ABI 2.2's stats is absent from a 2.0 table: the host reads it as NULL and counts the
        totals through scrape_all, without a family label, rather than calling past the table."""
        self.assertTrue(ABI20_DIR and os.path.isdir(ABI20_DIR), "CHIHAYA_ABI20_PLUGIN_DIR not built")
        with Tracker(plugins_dir=ABI20_DIR, admin=True) as t:
            h = random_hash()
            with t.udp(V4) as u:
                u.announce(h, peer_id(), 7010, event="started", left=0)
                u.announce(h, peer_id(), 7011, event="started", left=5)
            with t.udp(V6) as u:
                u.announce(h, peer_id(), 7012, event="started", left=5)
            peers = {tuple(sorted(s.labels.items())): s.value
                     for s in t.metrics()["chihaya_peers"].samples}
            self.assertEqual(peers, {(("role", "seeder"),): 1, (("role", "leecher"),): 2})
            self.assertNotIn("chihaya_torrents_with_peers", t.metrics())


if __name__ == "__main__":
    unittest_main()
