"""The redis cache driver on a 3-master Redis Cluster: two trackers agree, keys spread, slots move."""
# A slot holding swarm keys is migrated by hand (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT
# NODE): mid-migration the driver meets TRYAGAIN while a torrent's keys are split, ASK once they
# are all on the target, afterwards MOVED.

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis_fixture import RedisCluster
from test_redis import (UNAVAILABLE, counts, http_announce, http_peers, http_scrape,
                        redis_overrides, require_redis)
from tracker_fixture import (V4, V6, Tracker, announce_path, peer_id, random_hash, scrape_path,
                             unittest_main)

TORRENTS = 50

cluster = None
trackers = []


def setUpModule():
    global cluster
    require_redis()
    cluster = RedisCluster(nodes=3)
    try:
        cluster.start()
        for _ in range(2):
            t = Tracker(redis_overrides(cluster.addresses, cluster=True), threads=1)
            trackers.append(t)
            t.start()
    except Exception:
        tearDownModule()
        raise


def tearDownModule():
    try:
        for t in trackers:
            try:
                if t.alive():
                    t.stop_checked()
            finally:
                t.cleanup()
    finally:
        if cluster is not None:
            cluster.stop()


# ---- a binary-safe RESP client (info_hashes in key names may hold any byte, NUL included) -------

class RespError(Exception):
    pass


class Resp:
    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def close(self):
        self.file.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        reply = self._read()
        if isinstance(reply, RespError):
            raise reply
        return reply

    def _read(self):
        line = self.file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed mid-reply")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ConnectionError("unexpected RESP type %r" % kind)


def node_call(node, *args):
    with Resp(node.host, node.port) as r:
        return r.call(*args)


def node_id(node):
    return node_call(node, "CLUSTER", "MYID").decode()


def dbsize(node):
    return node_call(node, "DBSIZE")


def slot_keys(node, slot, limit=1000):
    return node_call(node, "CLUSTER", "GETKEYSINSLOT", slot, limit)


def owner_of(slot):
    """The master serving `slot`, from CLUSTER SLOTS: [[first, last, [host, port, id], ...]]."""
    for first, last, master, *_ in node_call(cluster.nodes[0], "CLUSTER", "SLOTS"):
        if first <= slot <= last:
            return next(n for n in cluster.nodes if n.port == master[1])
    raise AssertionError("no node serves slot %d" % slot)


# ---- tests -------------------------------------------------------------------------------------

class ClusterSwarm(unittest.TestCase):
    def announce_swarms(self, swarms):
        """Host A announces peer 1, host B announces peer 2 and must see peer 1 (per family)."""
        a, b = trackers
        for i, (h, host, p1, p2, port) in enumerate(swarms):
            http_announce(a, host, h, p1, port, event="started", left=10)
            d = http_announce(b, host, h, p2, port + 1, event="started", left=0)
            self.assertEqual(http_peers(d, host), [(host, port)], "torrent %d" % i)

    def assert_swarms_intact(self, swarms, what):
        """Both peers of every swarm, as seen from both hosts, by announce and by scrape."""
        a, b = trackers
        for i, (h, host, p1, p2, port) in enumerate(swarms):
            for tracker, pid, own, other in ((a, p1, port, port + 1), (b, p2, port + 1, port)):
                d = http_announce(tracker, host, h, pid, own, left=10 if pid == p1 else 0)
                self.assertEqual(http_peers(d, host), [(host, other)],
                                 "%s: torrent %d from port %d" % (what, i, tracker.http_port))
                self.assertEqual((d[b"complete"], d[b"incomplete"]), (1, 1), what)
        hashes = [s[0] for s in swarms]
        for tracker in trackers:
            files = http_scrape(tracker, V4, hashes)
            self.assertEqual([counts(files, h)[:2] for h in hashes], [(1, 1)] * len(hashes), what)

    def assert_answers_or_unavailable(self, swarms, what):
        """Announces answer, or fail fast with the storage-unavailable reason (never hang).

        The probe is a "stopped" of a peer the swarm never had: a no-op when it succeeds."""
        for i, (h, host, p1, p2, port) in enumerate(swarms):
            for tracker in trackers:
                t0 = time.monotonic()
                with tracker.http(host) as c:
                    r = c.get(announce_path(h, peer_id(), 9000 + i, event="stopped", left=10))
                self.assertLess(time.monotonic() - t0, 2.0, what)
                reason = r.bencoded().get(b"failure reason")
                self.assertIn(reason, (None, UNAVAILABLE.encode()), "%s: %r" % (what, r))

    def new_swarms(self, n):
        """(info_hash, family, peer 1 id, peer 2 id, peer 1 port); peer 2 uses port + 1."""
        return [(random_hash(), (V4, V6)[i % 2], peer_id(), peer_id(), 7000 + 2 * i)
                for i in range(n)]

    def test_swarms_spread_over_all_nodes_and_hosts_agree(self):
        swarms = self.new_swarms(TORRENTS)
        self.announce_swarms(swarms)
        sizes = [dbsize(n) for n in cluster.nodes]
        self.assertTrue(all(s > 0 for s in sizes),
                        "%d torrents left a node empty: DBSIZE %r" % (TORRENTS, sizes))
        self.assert_swarms_intact(swarms, "after announcing")

    def scrape_answer(self, tracker, h):
        """(complete, incomplete, downloaded) of `h`, or the failure reason; never slow."""
        t0 = time.monotonic()
        with tracker.http(V4) as c:
            d = c.get(scrape_path([h])).bencoded()
        self.assertLess(time.monotonic() - t0, 2.0)
        if b"failure reason" in d:
            return d[b"failure reason"].decode()
        return counts(d[b"files"], h)

    def full_torrent(self):
        """A torrent with every key the scrape script names (its IPv4 and IPv6 sets): a seeder
        and a leecher per family, one completed. Redis runs a multi-key script on a node
        importing the slot (after ASKING) only when that node holds every key it names."""
        a, b = trackers
        h = random_hash()
        p2 = peer_id()
        http_announce(a, V4, h, peer_id(), 7901, event="started", left=10)
        http_announce(b, V4, h, p2, 7902, event="started", left=10)
        http_announce(a, V4, h, p2, 7902, event="completed", left=0)
        http_announce(b, V6, h, peer_id(), 7903, event="started", left=0)
        http_announce(a, V6, h, peer_id(), 7904, event="started", left=10)
        return h, (2, 2, 1)

    def test_slot_migration_ask_then_moved(self):
        swarms = self.new_swarms(TORRENTS)
        self.announce_swarms(swarms)
        full, full_counts = self.full_torrent()
        for tracker in trackers:
            self.assertEqual(self.scrape_answer(tracker, full), full_counts)

        # The slot of the full torrent (its keys' hash tag is the hex info_hash), moved step by
        # step by hand as redis-cli --cluster reshard would, with the answer checked at each.
        slot = node_call(cluster.nodes[0], "CLUSTER", "KEYSLOT", "{%s}" % full.hex())
        source = owner_of(slot)
        target = next(n for n in cluster.nodes if n is not source)
        keys = slot_keys(source, slot)
        full_keys = [k for k in keys if full.hex().encode() in k]
        self.assertEqual(len(full_keys), 2, "keys of the full torrent: %r" % full_keys)
        source_id, target_id = node_id(source), node_id(target)
        moving = {k.split(b"{", 1)[1].split(b"}", 1)[0].decode() for k in keys}
        staying = [s for s in swarms if s[0].hex() not in moving]

        def migrate(some):
            node_call(source, "MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *some)

        # 1. Slot marked migrating, keys still on the source: served there, no redirect.
        node_call(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        node_call(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        for tracker in trackers:
            self.assertEqual(self.scrape_answer(tracker, full), full_counts, "keys on the source")

        # 2. Some of its keys moved: neither node holds them all, both answer TRYAGAIN; the
        # driver retries briefly, then fails fast.
        migrate(full_keys[:1])
        for tracker in trackers:
            self.assertEqual(self.scrape_answer(tracker, full), UNAVAILABLE, "keys split")

        # 3. Every key of the slot moved, the slot not yet handed over: the source answers ASK,
        # and the target serves the script after ASKING because it holds both keys. A
        # driver that does not follow ASK answers "unavailable" here.
        migrate([k for k in keys if k not in full_keys[:1]])
        self.assertEqual(node_call(source, "CLUSTER", "COUNTKEYSINSLOT", slot), 0)
        for tracker in trackers:
            self.assertEqual(self.scrape_answer(tracker, full), full_counts,
                             "slot %d mid-migration: ASK to the target" % slot)
        # Announces name a third key (p, per-peer counters) that open mode never writes: for them
        # the target answers TRYAGAIN until the hand-over, so they may fail fast meanwhile.
        self.assert_swarms_intact(staying, "slot %d mid-migration, other slots" % slot)
        self.assert_answers_or_unavailable([s for s in swarms if s[0].hex() in moving] +
                                           [(full, V4, None, None, 7900)],
                                           "slot %d mid-migration" % slot)

        # 4. Handed over: the nodes now answer MOVED to a driver with the old slot map.
        for node in (target, source) + tuple(n for n in cluster.nodes
                                             if n is not source and n is not target):
            node_call(node, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self.assertGreater(node_call(target, "CLUSTER", "COUNTKEYSINSLOT", slot), 0)
        self.assert_swarms_intact(swarms, "slot %d moved (MOVED)" % slot)
        for tracker in trackers:
            self.assertEqual(self.scrape_answer(tracker, full), full_counts, "slot moved")
        self.assertEqual(node_call(source, "CLUSTER", "COUNTKEYSINSLOT", slot), 0)
        self.assertTrue(all(t.alive() for t in trackers))

if __name__ == "__main__":
    unittest_main()
