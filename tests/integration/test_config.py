"""Config handling of the real binary: --check-config verdicts, messages and start-up refusals."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracker_fixture import (CHIHAYA_BIN, CHIHAYA_PLUGINS_DIR, CHIHAYA_SOURCE_DIR,
                             SERVING_LINE, START_TIMEOUT_S, STOP_TIMEOUT_S, V4, Tracker,
                             announce_path, peer_id, random_hash, run_binary, unittest_main)

TEST_PLUGIN_DIR = os.environ.get("CHIHAYA_TEST_PLUGIN_DIR", "")


def good_config():
    """A config every test below starts from; each case breaks exactly one line of it."""
    return [
        'plugins_dir = "%s"' % CHIHAYA_PLUGINS_DIR,
        "",
        "[tracker]",
        "announce_interval = 1800",
        "max_numwant = 200",
        "allow_full_scrape = false",
        "",
        "[udp]",
        'listen = ["127.0.0.1:6969"]',
        "",
        "[http]",
        'listen = ["127.0.0.1:6969"]',
        "request_timeout = 10",
        "",
        "[workers]",
        "threads = 1",
        "",
        "[log]",
        'level = "info"',
        "",
        "[cache]",
        'driver = "memory"',
        "",
        "[storage]",
        'driver = "none"',
    ]


def replace_line(lines, old, new):
    """Returns (text, 1-based line number of `new`)."""
    i = lines.index(old)
    out = lines[:i] + [new] + lines[i + 1:]
    return "\n".join(out) + "\n", i + 1


def insert_after(lines, anchor, new):
    i = lines.index(anchor) + 1
    out = lines[:i] + [new] + lines[i:]
    return "\n".join(out) + "\n", i + 1


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="chihaya-config-")

    def tearDown(self):
        self.dir.cleanup()

    def write(self, text, name="chihaya.toml"):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def assert_refused(self, text, line, key):
        path = self.write(text)
        rc, out = run_binary(["--check-config", path])
        self.assertEqual(rc, 1, "exit %d for a bad config; output:\n%s\nconfig:\n%s" % (rc, out, text))
        self.assertIn("%s:%d" % (path, line), out, "message must name file:line")
        self.assertIn(key, out, "message must name the key")
        self.assertLess(len(out.splitlines()), 20, "one clear message, not a dump:\n" + out)

    def test_good_config_passes(self):
        rc, out = run_binary(["--check-config", self.write("\n".join(good_config()) + "\n")])
        self.assertEqual(rc, 0, out)

    def test_shipped_default_config_passes(self):
        path = os.path.join(CHIHAYA_SOURCE_DIR, "etc", "chihaya.toml")
        self.assertTrue(os.path.exists(path), "etc/chihaya.toml is missing")
        rc, out = run_binary(["--check-config", path])
        self.assertEqual(rc, 0, out)

    def test_unknown_key(self):
        text, line = insert_after(good_config(), "[tracker]", "bogus_key = 1")
        self.assert_refused(text, line, "bogus_key")

    def test_unknown_top_level_key(self):
        text, line = insert_after(good_config(), good_config()[0], 'plugin_dir = "/tmp"')
        self.assert_refused(text, line, "plugin_dir")

    def test_unknown_table(self):
        text, line = replace_line(good_config(), "[workers]", "[workerz]")
        self.assert_refused(text, line, "workerz")

    def test_wrong_types(self):
        cases = [
            ("announce_interval = 1800", 'announce_interval = "often"', "announce_interval"),
            ("allow_full_scrape = false", 'allow_full_scrape = "yes"', "allow_full_scrape"),
            ('listen = ["127.0.0.1:6969"]', 'listen = "127.0.0.1:6969"', "listen"),
            ("threads = 1", "threads = 1.5", "threads"),
            ('level = "info"', "level = 3", "level"),
        ]
        for old, new, key in cases:
            with self.subTest(new):
                text, line = replace_line(good_config(), old, new)
                self.assert_refused(text, line, key)

    def test_out_of_range(self):
        cases = [
            ("announce_interval = 1800", "announce_interval = -1", "announce_interval"),
            ("announce_interval = 1800", "announce_interval = 99999999999", "announce_interval"),
            ("max_numwant = 200", "max_numwant = -5", "max_numwant"),
            ("threads = 1", "threads = -1", "threads"),
            ('level = "info"', 'level = "loud"', "level"),
            ('listen = ["127.0.0.1:6969"]', 'listen = ["127.0.0.1:70000"]', "listen"),
            ('listen = ["127.0.0.1:6969"]', 'listen = ["not-an-address"]', "listen"),
        ]
        for old, new, key in cases:
            with self.subTest(new):
                text, line = replace_line(good_config(), old, new)
                self.assert_refused(text, line, key)

    def test_unknown_driver_key(self):
        lines = good_config() + ["", "[cache.memory]", "bogus_driver_key = 1"]
        text, line = "\n".join(lines) + "\n", len(lines)
        self.assert_refused(text, line, "bogus_driver_key")

    def test_toml_syntax_error(self):
        text, line = replace_line(good_config(), "max_numwant = 200", "max_numwant = = 200")
        path = self.write(text)
        rc, out = run_binary(["--check-config", path])
        self.assertEqual(rc, 1, out)
        self.assertIn("%s:%d" % (path, line), out)

    def test_missing_file(self):
        path = os.path.join(self.dir.name, "absent.toml")
        rc, out = run_binary(["--check-config", path])
        self.assertEqual(rc, 1, out)
        self.assertIn(path, out)


class ListDrivers(unittest.TestCase):
    def test_lists_each_driver_with_its_file_keys_defaults_and_ranges(self):
        with tempfile.TemporaryDirectory(prefix="chihaya-plugins-") as plugins:
            for name in ("chihaya_memory.so", "chihaya_none.so"):
                shutil.copy(os.path.join(CHIHAYA_PLUGINS_DIR, name), plugins)
            # A third party's driver (tests/plugins/good_cache.cpp) is listed the same way.
            shutil.copy(os.path.join(TEST_PLUGIN_DIR, "good_cache.so"), plugins)
            config = os.path.join(plugins, "chihaya.toml")
            with open(config, "w") as f:
                f.write('plugins_dir = "%s"\n' % plugins)
            rc, out = run_binary(["--list-drivers", "--config", config])
        self.assertEqual(rc, 0, out)
        tables = {}
        for block in out.strip().split("\n\n"):
            head, *keys = block.splitlines()
            tables[head.split("  #")[0]] = (head, keys)
        self.assertEqual(sorted(tables), ["[cache.good]", "[cache.memory]", "[storage.none]"], out)
        self.assertTrue(tables["[cache.memory]"][0].endswith("/chihaya_memory.so"), out)
        self.assertTrue(tables["[cache.good]"][0].endswith("/good_cache.so"), out)
        memory = tables["[cache.memory]"][1]
        self.assertEqual([k.split("  #")[0] for k in memory],
                         ["shards = 1024", "shards_per_tick = 64", "address_counters = 1048576",
                          'snapshot_path = ""'])
        self.assertTrue(all(k.endswith("[1, 65536]") for k in memory[:2]), memory)
        self.assertEqual([k.split("  #")[0] for k in tables["[cache.good]"][1]],
                         ["size = 8", 'label = "x"', "strict = false"])
        self.assertEqual(tables["[cache.good]"][1][0], "size = 8  # a bounded integer [1, 64]")
        self.assertEqual(tables["[storage.none]"][1], [])
        self.assertNotIn("Information", out, "--list-drivers logs only warnings and errors")


class ConfigDiscovery(unittest.TestCase):
    def test_config_beside_the_build_is_read_without_config_option(self):
        """Without --config the binary reads ../etc/chihaya.toml from its own directory (the
        source tree's etc/ for build/chihaya) and logs which file it read."""
        with tempfile.TemporaryDirectory(prefix="chihaya-layout-") as root:
            os.mkdir(os.path.join(root, "bin"))
            os.mkdir(os.path.join(root, "etc"))
            binary = os.path.join(root, "bin", "chihaya")
            shutil.copy(CHIHAYA_BIN, binary)
            t = Tracker(udp=False, threads=1)  # its config names free ports and plugins_dir
            self.addCleanup(t.cleanup)
            config = os.path.join(root, "etc", "chihaya.toml")
            with open(config, "w") as f:
                f.write(t.config_text)
            log_path = os.path.join(root, "chihaya.log")
            with open(log_path, "wb") as log:
                proc = subprocess.Popen([binary], cwd=root, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + START_TIMEOUT_S
                text = ""
                while SERVING_LINE not in text and proc.poll() is None \
                        and time.monotonic() < deadline:
                    time.sleep(0.05)
                    with open(log_path, "rb") as f:
                        text = f.read().decode("utf-8", "replace")
                self.assertIn(SERVING_LINE, text)
                self.assertIn("main: config: %s" % config, text)
                with t.http(V4) as c:
                    r = c.get(announce_path(random_hash(), peer_id(), 6881, left=1))
                self.assertEqual(r.status, 200, r)
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(timeout=STOP_TIMEOUT_S), 0)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


class StartUp(unittest.TestCase):
    def test_unknown_cache_driver_lists_registered_names(self):
        t = Tracker({"cache": {"driver": "no_such_cache"}})
        try:
            p = subprocess.run([CHIHAYA_BIN, "--config", t.config_path], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        finally:
            t.cleanup()
        out = p.stdout.decode("utf-8", "replace")
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn("no_such_cache", out)
        self.assertIn("memory", out, "the refusal must list the registered cache drivers")

    def test_help_and_version(self):
        rc, out = run_binary(["--help"])
        self.assertEqual(rc, 0, out)
        self.assertIn("--config", out)
        self.assertIn("--check-config", out)
        rc, out = run_binary(["--version"])
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"\d+\.\d+\.\d+")


if __name__ == "__main__":
    unittest_main()
