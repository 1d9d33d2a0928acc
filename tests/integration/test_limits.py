"""[limits] against floods (issue 11): the real tracker flooded over UDP on loopback.

A flood of random info_hashes from one address, and a flood of ports into a few swarms from
another, must leave the tracker's resident memory (VmRSS from /proc) flat once the configured
budget is reached, answer the flood with the budget's fixed failure reason, and keep answering a
second address correctly all the while. Every loop is bounded in count and in time."""

import os
import re
import socket
import struct
import time
import unittest

from tracker_fixture import (UDP_ANNOUNCE, UDP_CONNECT, UDP_ERROR, UDP_PROTOCOL_ID, Tracker,
                             rss_kib,
                             UdpClient, UdpError, V4, announce_path, peer_id, random_hash,
                             unittest_main)

FLOOD_DEADLINE_S = 90.0  # for one flood phase; a loaded 2-core machine does ~20k announces/s
WINDOW = 64              # announces in flight at once: well inside the socket buffers


def settled_rss_kib(pid):
    """VmRSS once the announces already sent are processed (a short, bounded wait)."""
    time.sleep(0.3)
    return rss_kib(pid)


class Flooder:
    """Announces from one loopback source address, WINDOW at a time, counting what comes back.

    A loaded host may drop a datagram or answer after the timeout: an announce without a reply is
    sent again (the same bytes, at most RETRIES times), which the tracker answers as it answered
    the first (a held peer is refreshed, a refused one refused again). So the replies count every
    announce once; only the tracker's own refusal counter may count a retried refusal twice, by
    at most `retried`."""

    RETRIES = 3

    def __init__(self, source, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.connect((V4, port))
        self.connection_id = None
        self.ok = 0
        self.errors = {}   # failure reason -> count
        self.lost = 0      # announces still unanswered after every retry
        self.retried = 0   # announces sent again
        self.next_id = 0   # transaction ids, unique over the flooder's life
        self.peer_id = peer_id(b"-FL0001-")

    def close(self):
        self.sock.close()

    def connect(self):
        self.sock.settimeout(2.0)
        for _ in range(5):  # bounded: a lost datagram is retried a few times
            self.sock.send(struct.pack(">QII", UDP_PROTOCOL_ID, UDP_CONNECT, 1))
            try:
                reply = self.sock.recv(64)
            except socket.timeout:
                continue
            if len(reply) == 16 and struct.unpack(">II", reply[:8]) == (UDP_CONNECT, 1):
                (self.connection_id,) = struct.unpack(">Q", reply[8:])
                return
        raise AssertionError("no connect reply")

    def flood(self, packets, count):
        """Sends `count` announces, `packets(i)` -> (info_hash, port), and reads every reply."""
        deadline = time.monotonic() + FLOOD_DEADLINE_S
        sent = 0
        while sent < count:
            if time.monotonic() > deadline:
                raise AssertionError("flood: %d of %d announces in %.0f s" % (sent, count, FLOOD_DEADLINE_S))
            if sent % 20000 == 0:
                self.connect()  # a fresh connection id now and then (they expire after minutes)
            n = min(WINDOW, count - sent)
            pending = {}  # transaction id -> datagram
            for k in range(n):
                info_hash, port = packets(sent + k)
                tid = self.next_id
                self.next_id = (self.next_id + 1) & 0xFFFFFFFF
                pending[tid] = struct.pack(">QII20s20sQQQIIIiH", self.connection_id, UDP_ANNOUNCE,
                                           tid, info_hash, self.peer_id, 0, 1000, 0, 0, 0, 0, 0, port)
            for attempt in range(1 + self.RETRIES):
                if attempt:
                    self.retried += len(pending)
                for datagram in pending.values():
                    self.sock.send(datagram)
                self.sock.settimeout(2.0)
                while pending:
                    try:
                        reply = self.sock.recv(2048)
                    except socket.timeout:
                        break
                    if len(reply) < 8:
                        continue
                    action, tid = struct.unpack(">II", reply[:8])
                    if pending.pop(tid, None) is None:
                        continue  # a late answer to an announce already answered (retried)
                    if action == UDP_ANNOUNCE:
                        self.ok += 1
                    elif action == UDP_ERROR:
                        reason = reply[8:].decode("utf-8", "replace")
                        self.errors[reason] = self.errors.get(reason, 0) + 1
                if not pending:
                    break
            self.lost += len(pending)
            sent += n


def bound_client(source, port):
    """A UdpClient whose datagrams come from `source` (another 127.x address)."""
    client = UdpClient(V4, port)
    client.sock.close()
    client.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.sock.bind((source, 0))
    client.sock.settimeout(2.0)
    client.sock.connect((V4, port))
    return client


def metric(tracker, name, labels):
    """One sample of the admin listener's /metrics, as written (None when absent)."""
    status, text = tracker.admin_get("/metrics")
    if status != 200:
        raise AssertionError("/metrics answered %d" % status)
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


class TorrentFlood(unittest.TestCase):
    BUDGET = 20000
    FILL = 30000        # announces that fill the budget (and then some)
    TOTAL = 200000      # the whole flood
    MARGIN_KIB = 1024   # RSS growth allowed after the budget is full; unbounded: ~20 MiB

    def test_a_random_info_hash_flood_plateaus_at_max_torrents(self):
        """200,000 random info_hashes from 127.0.0.2 with max_torrents = 20,000: the first 20,000
        create swarms, the rest fail "tracker full", RSS stops growing once the budget is full,
        and 127.0.0.3 keeps getting its swarm's peers and counts throughout."""
        limits = {"max_torrents": self.BUDGET, "max_peers": 100000, "new_torrents_per_address": 0}
        with Tracker({"limits": limits}, admin=True) as t:
            # The second address's swarm, with a third address in it, from before the flood.
            other = bound_client("127.0.0.3", t.udp_port)
            third = bound_client("127.0.0.4", t.udp_port)
            swarm = random_hash()
            third.announce(swarm, peer_id(), 7001, left=1000)
            first = other.announce(swarm, peer_id(), 7002, left=1000)
            self.assertEqual(first["peers"], [("127.0.0.4", 7001)])

            flood = Flooder("127.0.0.2", t.udp_port)
            base = settled_rss_kib(t.proc.pid)
            flood.flood(lambda i: (os.urandom(20), 6881), self.FILL)
            filled = settled_rss_kib(t.proc.pid)
            created = flood.ok
            # One swarm existed; announces in flight at once may overshoot by one each.
            self.assertGreaterEqual(created, self.BUDGET - 1)
            self.assertLessEqual(created, self.BUDGET - 1 + WINDOW)

            rest = self.TOTAL - self.FILL
            checks = 0
            for part in range(10):  # the rest in tenths, the second address checked between
                flood.flood(lambda i: (os.urandom(20), 6881), rest // 10)
                a = other.announce(swarm, peer_id(), 7002, left=1000)
                self.assertEqual(a["peers"], [("127.0.0.4", 7001)])
                self.assertEqual((a["leechers"], a["seeders"]), (2, 0))
                checks += 1
            after = settled_rss_kib(t.proc.pid)

            self.assertEqual(flood.ok, created, "a swarm was created past max_torrents")
            self.assertEqual(flood.lost, 0)
            self.assertEqual(flood.errors, {"tracker full: no new torrents accepted now": self.TOTAL - created})
            # A new swarm from anyone is refused too, with the same reason; existing ones serve.
            with self.assertRaises(UdpError) as refused:
                other.announce(random_hash(), peer_id(), 7003, left=1000)
            self.assertEqual(str(refused.exception), "tracker full: no new torrents accepted now")
            with t.http() as http:  # the same over HTTP, as a bencoded failure reason
                d = http.get(announce_path(random_hash(), peer_id(), 7004, left=1000)).bencoded()
                self.assertEqual(d.get(b"failure reason"), b"tracker full: no new torrents accepted now")
                d = http.get(announce_path(swarm, peer_id(), 7005, left=1000)).bencoded()
                self.assertNotIn(b"failure reason", d)
            hits = metric(t, "chihaya_limit_hits_total", 'limit="max_torrents"')
            self.assertGreaterEqual(hits, float(self.TOTAL - created + 2))
            self.assertLessEqual(hits, float(self.TOTAL - created + 2 + flood.retried))
            print("\ntorrent flood: RSS %d KiB at start, %d KiB with %d swarms (the budget), "
                  "%d KiB after %d announces (+%d KiB); %d checks of the second address"
                  % (base, filled, created + 1, after, self.TOTAL, after - filled, checks))
            self.assertLess(after - filled, self.MARGIN_KIB,
                            "RSS grew by %d KiB after the budget was full" % (after - filled))
            flood.close()
            other.close()
            third.close()


class PortFlood(unittest.TestCase):
    SWARMS = 16
    PORTS = 12000        # per swarm: 192,000 announces in all
    PER_ADDRESS = 64
    MARGIN_KIB = 1024    # unbounded: ~4 MiB

    def test_a_port_flood_into_swarms_plateaus_at_max_peers_per_address(self):
        """127.0.0.2 announces 12,000 ports into each of 16 swarms with max_peers_per_address =
        64: each swarm holds 64 of its peers, the rest fail with the per-address reason, RSS
        stays flat once every swarm holds its 64, and 127.0.0.3 joins a flooded swarm and gets
        correct answers."""
        with Tracker({"limits": {"max_peers_per_address": self.PER_ADDRESS}}, http=False,
                     admin=True) as t:
            swarms = [random_hash() for _ in range(self.SWARMS)]
            flood = Flooder("127.0.0.2", t.udp_port)
            base = settled_rss_kib(t.proc.pid)
            # The budget: every swarm filled with the address's 64 peers, and some refusals.
            per_swarm = self.PER_ADDRESS + 16
            flood.flood(lambda i: (swarms[i % self.SWARMS], 10000 + i // self.SWARMS),
                        self.SWARMS * per_swarm)
            filled = settled_rss_kib(t.proc.pid)
            self.assertEqual(flood.ok, self.SWARMS * self.PER_ADDRESS)

            other = bound_client("127.0.0.3", t.udp_port)
            rest = self.SWARMS * (self.PORTS - per_swarm)
            offset = self.SWARMS * per_swarm
            for part in range(8):  # the rest in eighths, the second address checked between
                start = offset + part * (rest // 8)
                flood.flood(lambda i, start=start: (swarms[(start + i) % self.SWARMS],
                                                    10000 + (start + i) // self.SWARMS), rest // 8)
                a = other.announce(swarms[0], peer_id(), 7000 + part, left=1000)
                self.assertEqual(a["leechers"], self.PER_ADDRESS + 1 + part)
                self.assertEqual(len(a["peers"]), 50)  # the default numwant, from the 64 + its own
                self.assertTrue(all(addr in ("127.0.0.2", "127.0.0.3") for addr, _ in a["peers"]))
            after = settled_rss_kib(t.proc.pid)

            self.assertEqual(flood.ok, self.SWARMS * self.PER_ADDRESS, "an address went past its cap")
            self.assertEqual(flood.lost, 0)
            refused = self.SWARMS * (per_swarm - self.PER_ADDRESS) + rest
            self.assertEqual(flood.errors, {"too many peers from your address in this torrent": refused})
            with UdpClient(V4, t.udp_port) as scraper:
                scraped = scraper.scrape(swarms[1:])
            self.assertEqual([s["leechers"] for s in scraped], [self.PER_ADDRESS] * (self.SWARMS - 1))
            hits = metric(t, "chihaya_limit_hits_total", 'limit="max_peers_per_address"')
            self.assertGreaterEqual(hits, float(refused))
            self.assertLessEqual(hits, float(refused + flood.retried))
            print("\nport flood: RSS %d KiB at start, %d KiB with %d peers (the budget), %d KiB after "
                  "%d announces (+%d KiB)" % (base, filled, flood.ok, after,
                                              self.SWARMS * self.PORTS, after - filled))
            self.assertLess(after - filled, self.MARGIN_KIB,
                            "RSS grew by %d KiB after every swarm held its cap" % (after - filled))
            flood.close()
            other.close()


class NewSwarmRate(unittest.TestCase):
    def test_an_address_creates_new_torrents_per_address_swarms_a_minute(self):
        """new_torrents_per_address = 30: 127.0.0.2 creates 30 swarms at once, then is refused
        with its own reason while still joining existing swarms; 127.0.0.3 still creates one."""
        with Tracker({"limits": {"new_torrents_per_address": 30}}) as t:
            flood = Flooder("127.0.0.2", t.udp_port)
            flood.flood(lambda i: (os.urandom(20), 6881), 100)
            # A minute's refill is 30 tokens; the flood takes well under a second (one token at most).
            self.assertGreaterEqual(flood.ok, 30)
            self.assertLessEqual(flood.ok, 32)
            self.assertEqual(flood.errors, {
                "too many new torrents from your address; try again in a minute": 100 - flood.ok})
            other = bound_client("127.0.0.3", t.udp_port)
            existing = random_hash()
            other.announce(existing, peer_id(), 7000, left=1000)
            with UdpClient(V4, t.udp_port) as same:  # 127.0.0.1: another address again
                same.announce(random_hash(), peer_id(), 7001)
            flooder = bound_client("127.0.0.2", t.udp_port)
            self.assertEqual(flooder.announce(existing, peer_id(), 7002, left=1000)["leechers"], 2)
            with t.http() as http:  # 127.0.0.1 over HTTP: its 29 tokens left, then the same reason
                reasons = [http.get(announce_path(random_hash(), peer_id(), 7005, left=1000)).bencoded()
                           .get(b"failure reason") for _ in range(40)]
                self.assertEqual(reasons[:29], [None] * 29)
                self.assertIn(b"too many new torrents from your address; try again in a minute", reasons[29:])
            flood.close()
            other.close()
            flooder.close()



class Reload(unittest.TestCase):
    def test_sighup_applies_new_limits_to_the_next_announce(self):
        """[limits] are live: a reload to max_peers_per_address = 2 refuses a third port at once,
        and a reload back to 0 (no limit) admits it."""
        with Tracker({"limits": {"max_peers_per_address": 64}}, http=False) as t:
            h = random_hash()
            with t.udp(V4) as u:
                for port in (7000, 7001, 7002):
                    u.announce(h, peer_id(), port, left=1000)
                t.reload({"limits": {"max_peers_per_address": 2}})
                with self.assertRaises(UdpError) as refused:
                    u.announce(h, peer_id(), 7003, left=1000)
                self.assertEqual(str(refused.exception), "too many peers from your address in this torrent")
                t.reload({"limits": {"max_peers_per_address": 0}})
                self.assertEqual(u.announce(h, peer_id(), 7003, left=1000)["leechers"], 4)
            self.assertIn("limits.max_peers_per_address", t.log_text())

if __name__ == "__main__":
    unittest_main()
