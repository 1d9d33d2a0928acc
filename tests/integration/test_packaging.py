"""What operators install: the Debian packages (CPack), the systemd unit (systemd-analyze
verify), the man page, and the Grafana dashboard against the metrics the tracker really exports."""

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracker_fixture import (CHIHAYA_BIN, CHIHAYA_SOURCE_DIR, V4, Tracker, addr_port, announce_path,
                             free_port, peer_id, random_hash, unittest_main)

BUILD_DIR = os.environ.get("CHIHAYA_BUILD_DIR", "")
UNIT = os.path.join(CHIHAYA_SOURCE_DIR, "etc", "chihaya.service")
DASHBOARD = os.path.join(CHIHAYA_SOURCE_DIR, "etc", "grafana", "chihaya.json")
MAN = os.path.join(CHIHAYA_SOURCE_DIR, "doc", "chihaya.8")


def verify_unit(unit_text, binary):
    """systemd-analyze verify on `unit_text` with /usr/bin/chihaya pointing at `binary`:
    (exit code, every line it printed). Any output at all is a finding (an unknown key is only a
    warning with exit code 0)."""
    with tempfile.TemporaryDirectory(prefix="chihaya-unit-") as d:
        path = os.path.join(d, "chihaya.service")
        with open(path, "w") as f:
            f.write(unit_text.replace("/usr/bin/chihaya", binary))
        # --man=no: Documentation=man:chihaya(8) is checked by test_man_page, not through man-db.
        p = subprocess.run(["systemd-analyze", "verify", "--man=no", path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        return p.returncode, p.stdout.decode("utf-8", "replace").strip()


class Unit(unittest.TestCase):
    def test_systemd_analyze_verify_is_clean(self):
        with open(UNIT) as f:
            text = f.read()
        rc, out = verify_unit(text, CHIHAYA_BIN)
        self.assertEqual((rc, out), (0, ""))
        # The check can fail: a misspelt key is reported.
        rc, out = verify_unit(text.replace("NoNewPrivileges=", "NoNewPrivilege="), CHIHAYA_BIN)
        self.assertIn("Unknown key", out)

    def test_hardening(self):
        with open(UNIT) as f:
            text = f.read()
        for line in ("User=chihaya", "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                     "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "LimitNOFILE=1048576",
                     "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=chihaya"):
            self.assertIn(line + "\n", text)
        caps = re.findall(r"^CapabilityBoundingSet=(.*)$", text, re.M)
        self.assertEqual(caps, ["CAP_NET_BIND_SERVICE"])
        with tempfile.TemporaryDirectory(prefix="chihaya-unit-") as d:
            path = os.path.join(d, "chihaya.service")
            shutil.copy(UNIT, path)
            p = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", path],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            out = p.stdout.decode()
            m = re.search(r"Overall exposure level for chihaya.service: ([0-9.]+)", out)
            self.assertIsNotNone(m, out[-2000:])
            self.assertLessEqual(float(m.group(1)), 2.0, out[-2000:])


class ManPage(unittest.TestCase):
    def test_renders_without_warnings(self):
        p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", MAN],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual((p.returncode, p.stderr.decode()), (0, ""))
        with open(MAN) as f:
            text = f.read()
        for word in ("SIGHUP", "/metrics", "/readyz", "/etc/chihaya/chihaya.toml", ".TH CHIHAYA 8"):
            self.assertIn(word, text)


def dashboard_metrics():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    names = set()
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            names.update(re.findall(r"\b(chihaya_[a-z0-9_]+)", target["expr"]))
    for var in dash.get("templating", {}).get("list", []):
        names.update(re.findall(r"\b(chihaya_[a-z0-9_]+)", str(var.get("query", ""))))
    return names


class Dashboard(unittest.TestCase):
    def test_every_query_names_an_exported_metric(self):
        names = dashboard_metrics()
        self.assertGreater(len(names), 10)
        with Tracker(admin=True) as t:
            with t.udp(V4) as c:
                c.announce(random_hash(), peer_id(), 6801, event="started", left=1)
            status, text = t.admin_get("/metrics")
            self.assertEqual(status, 200)
        exported = set(re.findall(r"^(chihaya_[a-z0-9_]+)", text, re.M))
        missing = sorted(n for n in names if n not in exported)
        self.assertEqual(missing, [], "dashboard queries name metrics the tracker does not export")
        # The check can fail: a made-up name is caught.
        self.assertNotIn("chihaya_made_up_total", exported)


_PACKAGES = {}


def packages():
    """The .deb files CPack builds from this build tree, by package name; built once per run
    (DebianPackage and DpkgInstall share them) into a directory removed at exit."""
    if not _PACKAGES:
        work = tempfile.TemporaryDirectory(prefix="chihaya-deb-")
        out = os.path.join(work.name, "out")
        p = subprocess.run(["cpack", "-G", "DEB", "-B", out, "--config",
                            os.path.join(BUILD_DIR, "CPackConfig.cmake")],
                           cwd=BUILD_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        if p.returncode != 0:
            raise AssertionError("cpack failed:\n" + p.stdout.decode("utf-8", "replace")[-4000:])
        _PACKAGES["work"] = work  # kept alive (and the files with it) until the interpreter exits
        _PACKAGES["debs"] = {os.path.basename(d).split("_")[0]: d
                             for d in glob.glob(os.path.join(out, "*.deb"))}
    return _PACKAGES["debs"]


@unittest.skipUnless(BUILD_DIR, "CHIHAYA_BUILD_DIR not set")
class DebianPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.debs = packages()
        cls.work = tempfile.TemporaryDirectory(prefix="chihaya-deb-root-")
        cls.root = os.path.join(cls.work.name, "root")
        for deb in cls.debs.values():
            subprocess.run(["dpkg-deb", "-x", deb, cls.root], check=True, timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.work.cleanup()

    def control(self, package, field):
        return subprocess.run(["dpkg-deb", "-f", self.debs[package], field], stdout=subprocess.PIPE,
                              check=True, timeout=30).stdout.decode().strip()

    def control_file(self, package, name):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["dpkg-deb", "-e", self.debs[package], d], check=True, timeout=30)
            path = os.path.join(d, name)
            return open(path).read() if os.path.exists(path) else None

    def test_two_packages_with_their_files(self):
        self.assertEqual(sorted(self.debs), ["chihaya", "chihaya-dev"])
        contents = {name: subprocess.run(["dpkg-deb", "-c", deb], stdout=subprocess.PIPE, check=True,
                                         timeout=30).stdout.decode() for name, deb in self.debs.items()}
        for path in ("./usr/bin/chihaya", "./usr/lib/chihaya/plugins/chihaya_memory.so",
                     "./usr/lib/chihaya/plugins/chihaya_redis.so", "./etc/chihaya/chihaya.toml",
                     "./lib/systemd/system/chihaya.service", "./usr/share/man/man8/chihaya.8",
                     "./usr/share/chihaya/grafana/chihaya.json"):
            self.assertIn(path, contents["chihaya"])
        for path in ("./usr/include/chihaya/abi.h", "./usr/lib/pkgconfig/chihaya-sdk.pc",
                     "./usr/bin/chihaya-conformance"):
            self.assertIn(path, contents["chihaya-dev"])
            self.assertNotIn(path, contents["chihaya"])
        self.assertIn("chihaya (= ", self.control("chihaya-dev", "Depends"))
        self.assertIn("libc6", self.control("chihaya", "Depends"))  # dpkg-shlibdeps ran

    def test_conffile_and_system_user(self):
        self.assertEqual(self.control_file("chihaya", "conffiles").split(), ["/etc/chihaya/chihaya.toml"])
        postinst = self.control_file("chihaya", "postinst")
        self.assertIn("adduser --system --group", postinst)
        subprocess.run(["sh", "-n", "-c", postinst], check=True, timeout=30)
        with open(os.path.join(self.root, "etc/chihaya/chihaya.toml")) as f:
            config = f.read()
        self.assertIn('listen = "127.0.0.1:6880"', config)
        self.assertIn('snapshot_path = "/var/lib/chihaya/swarms.snapshot"', config)

    def test_installed_unit_verifies(self):
        with open(os.path.join(self.root, "lib/systemd/system/chihaya.service")) as f:
            unit = f.read()
        rc, out = verify_unit(unit, os.path.join(self.root, "usr/bin/chihaya"))
        self.assertEqual((rc, out), (0, ""))

    def test_installed_binary_serves_with_the_installed_config(self):
        binary = os.path.join(self.root, "usr/bin/chihaya")
        with open(os.path.join(self.root, "etc/chihaya/chihaya.toml")) as f:
            config = f.read()
        t = Tracker(binary=binary, plugins_dir=False, admin=True)
        try:
            # Only the addresses move to free loopback ports, and the snapshot into the scratch
            # directory: everything else is the packaged file as installed.
            snapshot = os.path.join(t.dir.name, "swarms.snapshot")
            text = (config.replace('["0.0.0.0:6969", "[::]:6969"]',
                                   '["%s", "%s"]' % (addr_port(V4, t.udp_port), addr_port("::1", t.udp_port)), 1)
                    .replace('["0.0.0.0:6969", "[::]:6969"]',
                             '["%s", "%s"]' % (addr_port(V4, t.http_port), addr_port("::1", t.http_port)), 1)
                    .replace('listen = "127.0.0.1:6880"', 'listen = "%s"' % addr_port(V4, t.admin_port))
                    .replace("/var/lib/chihaya/swarms.snapshot", snapshot))
            self.assertEqual(re.findall(r'^listen = .*(?:0\.0\.0\.0|\[::\]).*$', text, re.M), [])
            t.write_config(text=text)
            t.start()
            h = random_hash()
            with t.udp(V4) as c:
                c.announce(h, peer_id(), 6901, event="started", left=0)
                self.assertEqual(c.announce(h, peer_id(), 6902, left=1)["seeders"], 1)
            self.assertIn(os.path.join(self.root, "usr/lib/chihaya/plugins"), t.log_text())
            self.assertEqual(t.admin_get("/readyz")[0], 200)
            t.stop_checked()
            self.assertTrue(os.path.exists(snapshot))
        finally:
            t.cleanup()


# Paths that are the chihaya package's own (its files, and what its postinst makes): none may
# exist before the install, and none after the purge.
OWN_PATHS = ("/etc/chihaya", "/var/lib/chihaya", "/usr/lib/chihaya", "/usr/bin/chihaya",
             "/lib/systemd/system/chihaya.service", "/usr/share/chihaya")
# Every test process that installs the package takes this lock (another suite in another build
# tree may run at the same time on the machine).
LOCK = os.path.join("/run/lock" if os.path.isdir("/run/lock") else tempfile.gettempdir(),
                    "chihaya-dpkg-test.lock")


def run(args, timeout=120):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def machine_state():
    """What the package touches, as it is now: user, group, package status and paths."""
    return {
        "user": run(["getent", "passwd", "chihaya"])[1].strip(),
        "group": run(["getent", "group", "chihaya"])[1].strip(),
        "packages": {name: run(["dpkg-query", "-W", "-f=${Status}", name])[1].strip()
                     for name in ("chihaya", "chihaya-dev")},
        "paths": [p for p in OWN_PATHS if os.path.lexists(p)],
    }


def not_installed(status):
    return status == "" or "not-installed" in status or "no packages found" in status


class DpkgInstall(unittest.TestCase):
    """The packages as an operator installs them: dpkg -i on this machine (root), the installed
    /usr/bin/chihaya with a copy of the installed /etc/chihaya/chihaya.toml (listen addresses
    moved to free loopback ports, [process] user set to the packaged system user, everything else
    as installed) against real HTTP and UDP announces, then dpkg --purge, leaving the machine as it
    was. Skipped, with the reason, where that cannot be done without changing someone else's
    machine: not root, no dpkg, a chihaya user or package already there, or systemd running (the
    postinst would start the packaged service on public addresses)."""

    @classmethod
    def setUpClass(cls):
        if not BUILD_DIR:
            raise unittest.SkipTest("CHIHAYA_BUILD_DIR not set")
        if os.geteuid() != 0:
            raise unittest.SkipTest("dpkg -i needs root (run the suite as root to test the install)")
        for tool in ("dpkg", "dpkg-query", "dpkg-checkbuilddeps", "getent"):
            if not shutil.which(tool):
                raise unittest.SkipTest("%s is missing (Debian's dpkg and dpkg-dev)" % tool)
        if os.path.isdir("/run/systemd/system"):
            raise unittest.SkipTest("systemd is running: the postinst would enable and start "
                                    "chihaya.service on 0.0.0.0:6969")
        import fcntl
        cls.lock = open(LOCK, "w")
        deadline = time.monotonic() + 120
        while True:
            try:
                fcntl.flock(cls.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    cls.lock.close()
                    raise AssertionError("%s held for 120 s by another install test" % LOCK)
                time.sleep(0.5)
        cls.before = machine_state()
        clean = (not cls.before["user"] and not cls.before["group"] and not cls.before["paths"]
                 and all(not_installed(s) for s in cls.before["packages"].values()))
        if not clean:
            cls.lock.close()
            raise unittest.SkipTest("this machine already has chihaya (%r); not ours to replace "
                                    "or remove" % cls.before)
        cls.debs = packages()
        rc, out = run(["dpkg-deb", "-f", cls.debs["chihaya"], "Depends"])
        rc, unmet = run(["dpkg-checkbuilddeps", "-d", out.strip(), "/dev/null"])
        if rc != 0:
            cls.lock.close()
            raise unittest.SkipTest("the package's dependencies are not installed: " + unmet.strip())

    @classmethod
    def tearDownClass(cls):
        cls.lock.close()

    def dpkg(self, *args):
        """dpkg with its arguments; retried while another dpkg holds its lock (bounded)."""
        deadline = time.monotonic() + 60
        while True:
            rc, out = run(["dpkg"] + list(args))
            if rc == 0 or "lock" not in out or time.monotonic() > deadline:
                return rc, out
            time.sleep(1)

    def purge(self):
        rc, out = self.dpkg("--purge", "chihaya-dev", "chihaya")
        self.assertEqual(rc, 0, out)

    def restore(self):
        """Whatever happened (a failed check, a broken postrm): the machine as it was before, which
        setUpClass found free of anything chihaya."""
        run(["dpkg", "--purge", "chihaya-dev", "chihaya"])
        if run(["getent", "passwd", "chihaya"])[1].strip():
            run(["userdel", "chihaya"])
        if run(["getent", "group", "chihaya"])[1].strip():
            run(["groupdel", "chihaya"])
        for path in OWN_PATHS:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                os.unlink(path)

    def test_dpkg_install_serves_as_the_system_user_and_purge_leaves_nothing(self):
        self.addCleanup(self.restore)
        rc, out = self.dpkg("-i", self.debs["chihaya"], self.debs["chihaya-dev"])
        self.assertEqual(rc, 0, out)
        for name in ("chihaya", "chihaya-dev"):
            self.assertEqual(run(["dpkg-query", "-W", "-f=${Status}", name])[1], "install ok installed")
        files = [l for l in run(["dpkg", "-L", "chihaya", "chihaya-dev"])[1].splitlines()
                 if l.startswith("/") and not os.path.isdir(l)]
        self.assertIn("/usr/bin/chihaya", files)
        self.assertIn("/usr/lib/chihaya/plugins/chihaya_memory.so", files)
        self.assertIn("/usr/include/chihaya/abi.h", files)

        # postinst: a system user and group, the state directory and the config's owner.
        import grp
        import pwd
        user = pwd.getpwnam("chihaya")
        self.assertLess(user.pw_uid, 1000)  # a system account
        self.assertEqual(user.pw_dir, "/var/lib/chihaya")
        self.assertTrue(user.pw_shell.endswith("nologin") or user.pw_shell.endswith("false"), user.pw_shell)
        self.assertEqual(grp.getgrgid(user.pw_gid).gr_name, "chihaya")
        state = os.stat("/var/lib/chihaya")
        self.assertEqual((state.st_uid, state.st_mode & 0o777), (user.pw_uid, 0o750))
        conf = os.stat("/etc/chihaya/chihaya.toml")
        self.assertEqual((conf.st_uid, conf.st_gid, conf.st_mode & 0o777), (0, user.pw_gid, 0o640))

        with open("/etc/chihaya/chihaya.toml") as f:
            installed = f.read()
        t = Tracker(binary="/usr/bin/chihaya", plugins_dir=False, admin=True)
        try:
            text = (installed.replace('["0.0.0.0:6969", "[::]:6969"]',
                                      '["%s", "%s"]' % (addr_port(V4, t.udp_port), addr_port("::1", t.udp_port)), 1)
                    .replace('["0.0.0.0:6969", "[::]:6969"]',
                             '["%s", "%s"]' % (addr_port(V4, t.http_port), addr_port("::1", t.http_port)), 1)
                    .replace('listen = "127.0.0.1:6880"', 'listen = "%s"' % addr_port(V4, t.admin_port), 1)
                    .replace('\nuser = ""\n', '\nuser = "chihaya"\n', 1))
            self.assertEqual(re.findall(r'^listen = .*(?:0\.0\.0\.0|\[::\]).*$', text, re.M), [])
            self.assertIn('\nuser = "chihaya"\n', text)
            self.assertIn('snapshot_path = "/var/lib/chihaya/swarms.snapshot"', text)  # as installed
            t.write_config(text=text)
            t.start()
            # The service user, after the sockets were bound and the plugins loaded.
            with open("/proc/%d/status" % t.proc.pid) as f:
                uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", f.read(), re.M).groups()
            self.assertEqual(uids, (str(user.pw_uid), str(user.pw_uid)))
            self.assertIn("/usr/lib/chihaya/plugins", t.log_text())
            h = random_hash()
            with t.udp(V4) as c:
                c.announce(h, peer_id(), 6911, event="started", left=0)
            with t.http(V4) as c:
                body = c.get(announce_path(h, peer_id(), 6912, event="started", left=1)).bencoded()
                self.assertEqual((body[b"complete"], body[b"incomplete"]), (1, 1), body)
                self.assertEqual(len(body[b"peers"]), 6)  # the UDP seeder, compact
            with t.udp(V4) as c:
                self.assertEqual(c.announce(h, peer_id(), 6913, left=1)["seeders"], 1)
            self.assertEqual(t.admin_get("/readyz")[0], 200)
            t.stop_checked()
            # The snapshot went where the package put the state, written as the service user.
            snap = os.stat("/var/lib/chihaya/swarms.snapshot")
            self.assertEqual(snap.st_uid, user.pw_uid)
        finally:
            t.cleanup()

        self.purge()
        after = machine_state()
        self.assertEqual(after, self.before, "purge left the machine changed")
        left = [f for f in files if os.path.lexists(f)]
        self.assertEqual(left, [], "files of the packages still there after purge")


if __name__ == "__main__":
    unittest_main()
