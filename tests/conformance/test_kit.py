"""chihaya-conformance fails broken drivers and says which rule and what it expected."""

import os
import subprocess
import sys
import unittest

KIT = os.environ.get("CHIHAYA_CONFORMANCE", "")
BROKEN_DIR = os.environ.get("CHIHAYA_TEST_PLUGIN_DIR", "")
PLUGINS_DIR = os.environ.get("CHIHAYA_PLUGINS_DIR", "")


def kit(*args, timeout=60):
    p = subprocess.run([KIT] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


class Kit(unittest.TestCase):
    def test_a_driver_that_never_completes_fails_instead_of_reading_as_zero_peers(self):
        # The numwant rule checks peer_count == 0 at first: a zeroed, never-completed result
        # would pass it if the kit did not assert the completion.
        code, out = kit("--plugin", os.path.join(BROKEN_DIR, "silent_cache.so"), "--driver",
                        "silent", "-tc=*numwant*")
        self.assertEqual(code, 1, out)
        self.assertIn("FAIL  numwant and peers_capacity bound the answer", out)
        self.assertIn("done was not called within 5 s", out)
        self.assertIn("0 of 1 rules hold", out)

    def test_double_done_and_wrong_counts_are_reported_with_expectations(self):
        code, out = kit("--plugin", os.path.join(BROKEN_DIR, "double_done.so"), "--driver",
                        "double_done", "-tc=left decides*")
        self.assertEqual(code, 1, out)
        self.assertIn("FAIL  left decides seeder or leecher", out)
        # What the check expected, and the values the driver gave.
        self.assertIn("expected a.result.incomplete == 1, got 0 == 1", out)
        self.assertIn("done fired 2 times by the time destroy returned; want exactly once", out)

    def test_a_good_driver_passes_with_config_from_a_file(self):
        config = os.path.join(os.environ.get("TMPDIR", "/tmp"), "kit-%d.toml" % os.getpid())
        with open(config, "w") as f:
            f.write('plugins_dir = "x"\n[cache]\ndriver = "memory"\n[cache.memory]\n'
                    'shards = 8  # a comment\n[udp]\nenabled = true\n')
        try:
            code, out = kit("--plugin", os.path.join(PLUGINS_DIR, "chihaya_memory.so"),
                            "--driver", "memory", "--config", config, "-tc=*numwant*")
        finally:
            os.unlink(config)
        self.assertEqual(code, 0, out)
        self.assertIn("ok    numwant and peers_capacity bound the answer", out)
        self.assertIn("1 of 1 rules hold", out)

    def test_an_undeclared_key_is_refused(self):
        code, out = kit("--plugin", os.path.join(PLUGINS_DIR, "chihaya_memory.so"),
                        "--driver", "memory", "--set", "nonsense=1", "-tc=*numwant*")
        self.assertNotEqual(code, 0, out)
        self.assertIn("the driver declares no key nonsense", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
