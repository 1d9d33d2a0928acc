"""The redis cache driver through a real Redis Cluster failover: kill -9 of a master with a replica."""
# 3 masters, one replica of the first, cluster-node-timeout NODE_TIMEOUT_MS. After SIGKILL of that
# master the cluster promotes the replica on its own; no node ever answers MOVED for the dead
# master's slots (its connections just fail), so only a slot map refresh triggered by the failure
# itself can find the new master. Announces for those slots must recover within
# cluster-node-timeout + 2 s (plugins/redis/README.md, "Redis Cluster").

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis_fixture import RedisCluster
from test_redis import UNAVAILABLE, http_announce, http_peers, redis_overrides, require_redis
from test_redis_cluster import node_call
from tracker_fixture import V4, Tracker, announce_path, peer_id, random_hash, unittest_main

NODE_TIMEOUT_MS = 1000
RECOVERY_BOUND_S = NODE_TIMEOUT_MS / 1000.0 + 2.0
PROBE_PERIOD_S = 0.05
# After the replica says it is a master: the driver's slot map poll (50 ms), connecting to the new
# master, and the probe period.
DRIVER_SHARE_S = 0.5
TORRENTS_PER_SIDE = 4


def replicated(master, replica, timeout_s):
    """Whether the replica has acknowledged everything the master had written when asked.

    Read from the master's side (the offset each replica last acknowledged, sent every second),
    so that a stalled replica reads as "not yet" rather than as a hung query."""
    want = int(master.info("replication")["master_repl_offset"])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = master.info("replication")
        for k, v in info.items():
            if not k.startswith("slave") or "port=%d," % replica.port not in v:
                continue
            fields = dict(f.split("=", 1) for f in v.split(",") if "=" in f)
            if int(fields.get("offset", -1)) >= want:
                return True
        time.sleep(0.05)
    return False


def setUpModule():
    require_redis()


class Failover(unittest.TestCase):
    def setUp(self):
        self.cluster = RedisCluster(nodes=3, replica=True, node_timeout_ms=NODE_TIMEOUT_MS)
        self.cluster.start()
        self.addCleanup(self.cluster.cleanup)
        self.addCleanup(self.cluster.stop)
        # Seeds: the masters only, so the promoted replica is learnt from the slot map alone.
        self.tracker = Tracker(redis_overrides(self.cluster.addresses, cluster=True,
                                               connect_timeout_ms=300, command_timeout_ms=300),
                               threads=1)
        self.addCleanup(self.tracker.cleanup)
        self.tracker.start()
        self.addCleanup(lambda: self.tracker.alive() and self.tracker.stop_checked())

    def torrents(self, master, want):
        """`want` random info_hashes whose slot `master` serves (and `want` it does not)."""
        mine, others = [], []
        for _ in range(200):
            h = random_hash()
            slot = node_call(self.cluster.nodes[1], "CLUSTER", "KEYSLOT", "{%s}" % h.hex())
            ranges = node_call(master, "CLUSTER", "SLOTS")
            served = any(r[0] <= slot <= r[1] and r[2][1] == master.port for r in ranges)
            (mine if served else others).append(h)
            if len(mine) >= want and len(others) >= want:
                return mine[:want], others[:want]
        raise AssertionError("200 random hashes did not cover both sides")

    def probe(self, h):
        """One announce of a fresh peer: "ok", or the failure reason."""
        with self.tracker.http(V4) as c:
            d = c.get(announce_path(h, peer_id(), 9100, left=10, numwant=0)).bencoded()
        reason = d.get(b"failure reason")
        return "ok" if reason is None else reason.decode()

    def test_master_killed_its_slots_recover_through_the_promoted_replica(self):
        master, replica = self.cluster.nodes[0], self.cluster.replica
        dying, staying = self.torrents(master, TORRENTS_PER_SIDE)
        for i, h in enumerate(dying + staying):
            http_announce(self.tracker, V4, h, peer_id(), 7000 + i, event="started", left=10)
        # The swarms must be on the replica before the crash for the last check to mean anything:
        # replication is asynchronous, so a write the master acknowledged a moment before
        # SIGKILL may never reach the replica (Redis' documented failover loss, not the driver's).
        # (WAIT from a fresh connection proves nothing: it waits only for that connection's own
        # writes, and it has none.)
        self.assertTrue(replicated(master, replica, 5.0),
                        "the replica did not reach the master's replication offset")

        master.kill()
        killed = time.monotonic()
        pending = set(dying)
        seen = set()
        recovered = {}
        promoted = None  # when the replica said it is a master: Redis' own share of the outage
        while pending and time.monotonic() - killed < RECOVERY_BOUND_S + 3.0:
            if promoted is None and b"role:master" in node_call(replica, "INFO", "replication"):
                promoted = time.monotonic() - killed
            for h in list(pending):
                answer = self.probe(h)
                seen.add(answer)
                if answer == "ok":
                    recovered[h] = time.monotonic() - killed
                    pending.discard(h)
                else:
                    self.assertEqual(answer, UNAVAILABLE, "fails fast with the storage reason")
            time.sleep(PROBE_PERIOD_S)
        worst = max(recovered.values()) if recovered else None
        self.assertFalse(pending, "%d of %d torrents of the killed master still failing after "
                         "%.1f s (replica promoted after %s s; answers seen: %r)\n%s"
                         % (len(pending), len(dying), time.monotonic() - killed, promoted, seen,
                            self.tracker.log_text()[-3000:]))
        # The bound is cluster-node-timeout + 2 s. Redis' own promotion (failure detection, then
        # an election delayed 0.5-1 s) takes 2.4-2.8 s of it on a busy 2-core machine; the
        # driver's share is what follows the promotion. Should Redis alone overrun the bound,
        # the driver is still held to DRIVER_SHARE_S after it.
        self.assertIsNotNone(promoted, "the replica never became a master")
        self.assertLessEqual(worst - promoted, DRIVER_SHARE_S,
                             "announces recovered %.2f s after the promotion" % (worst - promoted))
        self.assertLessEqual(worst, max(RECOVERY_BOUND_S, promoted + DRIVER_SHARE_S),
                             "recovered after %.2f s (replica promoted after %.2f s); bound is "
                             "cluster-node-timeout + 2 s" % (worst, promoted))

        # The swarms survived on the new master, and the other masters' slots serve as before.
        for i, h in enumerate(dying + staying):
            d = http_announce(self.tracker, V4, h, peer_id(), 7500 + i, left=10)
            self.assertIn((V4, 7000 + i), http_peers(d, V4), "torrent %d lost its peer" % i)
        print("failover: replica promoted %.2f s, announces recovered %.2f s after kill -9 "
              "(bound %.1f s)" % (promoted or -1, worst, RECOVERY_BOUND_S), file=sys.stderr)


if __name__ == "__main__":
    unittest_main()
