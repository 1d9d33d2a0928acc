"""End-to-end: a libtorrent seeder and leecher find each other through chihaya and move a file."""
# Runs under the interpreter python3-libtorrent (Debian, 2.0.8) is built for: /usr/bin/python3.
#
# Isolation from the outside world: both sessions listen on 127.0.0.1 only, with DHT, LSD, UPnP
# and NAT-PMP off, so the only way the two can meet is the tracker under test. Sessions are built
# with lt.session(settings, flags=0): flag 1 (add_default_plugins) is what would install ut_pex,
# ut_metadata and smart_ban, so with 0 there is no peer exchange at all (the Python binding of
# 2.0.8 exposes no session_params.extensions to trim the list instead). uTP is off so the
# transfer runs over plain TCP, which makes failures easier to read.
#
# The seeder runs in its own process (this file with --seed), as two clients do in the wild.
# (libtorrent shares one UDP connection id between the sessions of a process, from different
# source ports; the tracker accepts that, since ids bind the address and not the port.)

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from tracker_fixture import Tracker, scrape_path  # noqa: E402
import postgres_fixture  # noqa: E402

try:
    import libtorrent as lt
except ImportError as e:  # ctest maps 77 to "skipped"
    print("python3-libtorrent not importable with %s: %s" % (sys.executable, e))
    sys.exit(77)

FILE_SIZE = 3 * 1024 * 1024 + 12345  # not a multiple of the piece size: the last piece is short
PIECE_SIZE = 256 * 1024
TRANSFER_TIMEOUT_S = 60
SEEDER_LIFETIME_S = 150  # a seeder orphaned by a killed test still goes away on its own
SEEDER_READY = "SEEDER-ANNOUNCED"


def session_settings(name):
    return {
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        # Both peers share 127.0.0.1; they differ only by port.
        "allow_multiple_connections_per_ip": True,
        # SSRF mitigation restricts what a client does with a tracker on localhost; the tracker
        # under test is on localhost by design.
        "ssrf_mitigation": False,
        "announce_to_all_trackers": True,
        "announce_to_all_tiers": True,
        "min_reconnect_time": 1,
        # Follow the tracker's 5 s interval (libtorrent's floor is 5 minutes): the seeder's
        # uploaded bytes reach the tracker only with its next announce.
        "min_announce_interval": 1,
        "peer_connect_timeout": 3,
        "user_agent": "chihaya-e2e/" + name,
        "alert_mask": lt.alert.category_t.all_categories,
    }


class Session:
    """One libtorrent session plus every alert it raised, kept for the failure report."""

    def __init__(self, name):
        self.name = name
        self.ses = lt.session(session_settings(name), 0)
        self.log = []

    def pump(self):
        alerts = self.ses.pop_alerts()
        for a in alerts:
            self.log.append("%8.3f %s %s: %s" % (time.monotonic() % 1e4, self.name,
                                                 type(a).__name__, a.message()))
        return alerts


def make_torrent(data_dir, tracker_url, private=False):
    payload = os.urandom(FILE_SIZE)
    path = os.path.join(data_dir, "payload.bin")
    with open(path, "wb") as f:
        f.write(payload)
    fs = lt.file_storage()
    lt.add_files(fs, path)
    # v1 only: a hybrid torrent would also announce its truncated v2 hash, a second swarm that
    # only muddies the counts checked at the end.
    ct = lt.create_torrent(fs, PIECE_SIZE, lt.create_torrent.v1_only)
    ct.add_tracker(tracker_url)
    ct.set_priv(private)
    ct.set_creator("chihaya e2e")
    lt.set_piece_hashes(ct, data_dir)
    torrent_path = os.path.join(os.path.dirname(data_dir), "payload.torrent")
    with open(torrent_path, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    return torrent_path, hashlib.sha256(payload).hexdigest()


def with_tracker(torrent_path, tracker_url, out_path):
    """The same torrent (same info dict, same info_hash) announcing to another URL: what a
    private tracker's web application hands each user, their passkey in the URL."""
    with open(torrent_path, "rb") as f:
        meta = lt.bdecode(f.read())
    meta[b"announce"] = tracker_url.encode()
    meta.pop(b"announce-list", None)
    with open(out_path, "wb") as f:
        f.write(lt.bencode(meta))
    return out_path


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_seeder(torrent_path, save_path):
    """Child process: seed until SIGTERM or SEEDER_LIFETIME_S, alerts on stdout for the report."""
    seeder = Session("seeder")
    handle = seeder.ses.add_torrent({"ti": lt.torrent_info(torrent_path), "save_path": save_path,
                                     "flags": lt.torrent_flags.seed_mode})
    # SIGUSR1: announce now. Over UDP libtorrent waits at least 60 s between announces whatever
    # the tracker's interval; the accounting check needs the seeder's uploaded bytes sooner.
    reannounce = []
    signal.signal(signal.SIGUSR1, lambda *_: reannounce.append(1))
    deadline = time.monotonic() + SEEDER_LIFETIME_S
    announced = False
    while time.monotonic() < deadline:
        for a in seeder.pump():
            if not announced and isinstance(a, lt.tracker_reply_alert):
                announced = True
                print(SEEDER_READY, flush=True)
        if reannounce:
            reannounce.clear()
            handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
        for line in seeder.log:
            print(line)
        seeder.log.clear()
        sys.stdout.flush()
        time.sleep(0.05)


class LibtorrentTransfer(unittest.TestCase):
    def transfer(self, scheme, private=False):
        overrides = {"tracker": {"announce_interval": 5, "min_interval": 1}}
        work = tempfile.TemporaryDirectory(prefix="chihaya-e2e-")
        self.addCleanup(work.cleanup)
        self.passkey = None
        if private:
            # A private tracker: two users with their own passkeys, the torrent registered in a
            # real PostgreSQL, each client announcing to its own /<passkey>/announce.
            pg = postgres_fixture.PostgresServer()
            pg.__enter__()
            self.addCleanup(pg.__exit__, None, None, None)
            pg.sql("INSERT INTO users (id, passkey) VALUES (1, 'pkseeder00000000000000000000000'),"
                   " (2, 'pkleecher0000000000000000000000')")
            overrides["tracker"]["mode"] = "private"
            overrides["storage"] = {"driver": "postgres", "flush_interval_ms": 200,
                                    "spool_dir": os.path.join(work.name, "spool")}
            overrides["storage.postgres"] = {"conninfo": pg.conninfo}
        tracker = Tracker(overrides)
        self.addCleanup(tracker.cleanup)
        port = tracker.http_port if scheme == "http" else tracker.udp_port
        base = "%s://127.0.0.1:%d" % (scheme, port)
        url = base + ("/pkseeder00000000000000000000000/announce" if private else "/announce")

        seed_dir = os.path.join(work.name, "seed")
        leech_dir = os.path.join(work.name, "leech")
        os.mkdir(seed_dir)
        os.mkdir(leech_dir)
        torrent_path, digest = make_torrent(seed_dir, url, private)
        leech_torrent = torrent_path
        if private:
            info_hash = lt.torrent_info(torrent_path).info_hashes().v1.to_bytes()
            pg.sql("INSERT INTO torrents (id, info_hash) VALUES (7, decode('%s', 'hex'))" % info_hash.hex())
            leech_torrent = with_tracker(torrent_path, base + "/pkleecher0000000000000000000000/announce",
                                         os.path.join(work.name, "leech.torrent"))
            self.passkey = "pkleecher0000000000000000000000"
        tracker.start()

        seeder_log_path = os.path.join(work.name, "seeder.log")
        seeder_log = open(seeder_log_path, "w")
        self.addCleanup(seeder_log.close)
        seeder = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--seed",
                                   torrent_path, seed_dir],
                                  stdin=subprocess.DEVNULL, stdout=seeder_log,
                                  stderr=subprocess.STDOUT)
        self.addCleanup(self.stop_seeder, seeder)
        leecher = Session("leecher")
        try:
            self._run(tracker, lt.torrent_info(leech_torrent), digest, leech_dir, leecher, seeder,
                      seeder_log_path)
            if private:
                self.check_accounting(pg, leecher, seeder)
        except BaseException:
            leecher.pump()
            print("\n---- seeder (own process) ----")
            print(self.tail(seeder_log_path))
            print("---- leecher alerts (%d) ----" % len(leecher.log))
            print("\n".join(leecher.log[-300:]))
            print("---- chihaya log ----\n" + tracker.log_text())
            raise
        finally:
            for h in leecher.ses.get_torrents():
                leecher.ses.remove_torrent(h)
            del leecher
        self.stop_seeder(seeder)
        tracker.stop_checked()
        if private:
            log = tracker.log_text()
            self.assertNotIn("pkseeder", log)
            self.assertNotIn("pkleecher", log)
            self.assertNotIn(postgres_fixture.PASSWORD, log)

    def check_accounting(self, pg, leecher, seeder):
        """The users' totals in the database come from what the two clients reported: the
        leecher downloaded the file, the seeder uploaded it (on its next announce), one snatch."""
        deadline = time.monotonic() + 20
        while True:
            leecher.pump()
            rows = dict(line.split("|", 1) for line in
                        pg.sql("SELECT id, uploaded || ':' || downloaded FROM users").splitlines())
            seeder_up = int(rows["1"].split(":")[0])
            leecher_down = int(rows["2"].split(":")[1])
            snatches = pg.sql("SELECT count(*) FROM snatches WHERE user_id = 2 AND torrent_id = 7")
            if seeder_up >= FILE_SIZE and leecher_down >= FILE_SIZE and snatches == "1":
                break
            self.assertLess(time.monotonic(), deadline,
                            "accounting never showed the transfer: users %r, snatches %s" % (rows, snatches))
            seeder.send_signal(signal.SIGUSR1)
            time.sleep(0.5)
        # What libtorrent reports is payload bytes: the file, plus at most a few re-requested
        # blocks, never double.
        self.assertLess(leecher_down, 2 * FILE_SIZE)
        self.assertLess(seeder_up, 2 * FILE_SIZE)

    @staticmethod
    def stop_seeder(seeder):
        if seeder.poll() is None:
            seeder.send_signal(signal.SIGTERM)
            try:
                seeder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                seeder.kill()
                seeder.wait()

    @staticmethod
    def tail(path, lines=300):
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def _run(self, tracker, ti, digest, leech_dir, leecher, seeder, seeder_log_path):
        # The leecher must learn of the seeder from the tracker, so the seeder announces first.
        deadline = time.monotonic() + 15
        while True:
            with open(seeder_log_path, errors="replace") as f:
                if SEEDER_READY in f.read():
                    break
            self.assertIsNone(seeder.poll(), "seeder process exited early")
            self.assertLess(time.monotonic(), deadline, "seeder's announce never answered")
            time.sleep(0.05)
        leech = leecher.ses.add_torrent({"ti": ti, "save_path": leech_dir})

        deadline = time.monotonic() + TRANSFER_TIMEOUT_S
        while time.monotonic() < deadline:
            leecher.pump()
            st = leech.status()
            if st.is_seeding and st.state == lt.torrent_status.seeding:
                break
            time.sleep(0.1)
        else:
            st = leech.status()
            self.fail("leecher not done after %d s: state %s, progress %.3f, peers %d"
                      % (TRANSFER_TIMEOUT_S, st.state, st.progress, st.num_peers))

        # Bytes on disk, not libtorrent's word: flush the leecher's cache first.
        leech.flush_cache()
        self.wait_for(leecher, lambda a: isinstance(a, lt.cache_flushed_alert), 10, "cache flush")
        got = os.path.join(leech_dir, ti.files().file_path(0))
        self.assertEqual(os.path.getsize(got), FILE_SIZE)
        self.assertEqual(file_digest(got), digest)

        self.wait_for_counts(tracker, ti, leecher)

    def wait_for(self, session, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(predicate(a) for a in session.pump()):
                return
            time.sleep(0.05)
        self.fail("timed out after %d s waiting for %s" % (timeout, what))

    def wait_for_counts(self, tracker, ti, leecher):
        """The leecher's "completed" announce must reach the tracker: 2 seeders, 1 download."""
        info_hash = ti.info_hashes().v1.to_bytes()
        deadline = time.monotonic() + 15
        files = {}
        while time.monotonic() < deadline:
            leecher.pump()
            path = scrape_path([info_hash])
            if self.passkey:
                path = "/" + self.passkey + path
            with tracker.http() as c:
                files = c.get(path).bencoded()[b"files"]
            counts = files.get(info_hash, {})
            if counts.get(b"complete") == 2 and counts.get(b"downloaded") == 1:
                return
            time.sleep(0.25)
        self.fail("tracker counts never showed 2 seeders and 1 download: %r" % files)

    def test_http(self):
        self.transfer("http")

    def test_udp(self):
        self.transfer("udp")

    def test_private_http(self):
        self.transfer("http", private=True)

    def test_private_udp(self):
        self.transfer("udp", private=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--seed":
        run_seeder(sys.argv[2], sys.argv[3])
    else:
        unittest.main(verbosity=2)
