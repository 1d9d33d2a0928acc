"""BEP 15 UDP frontend of the real binary: connect, announce, scrape and hostile datagrams."""

import os
import random
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracker_fixture import (UDP_ANNOUNCE, UDP_CONNECT, UDP_ERROR, UDP_PROTOCOL_ID, UDP_SCRAPE,
                             V4, V6, Tracker, UdpClient, UdpError, peer_id, random_hash,
                             start_module_tracker, stop_module_tracker, unittest_main)

INTERVAL = 1200
MAX_SCRAPE = 5  # tracker.max_scrape_torrents, below the 74 hashes a datagram can carry
tracker = None


def setUpModule():
    global tracker
    tracker = start_module_tracker({"tracker": {"announce_interval": INTERVAL,
                                                "max_scrape_torrents": MAX_SCRAPE}})


def tearDownModule():
    stop_module_tracker(tracker)


HOSTS = ((V4, socket.AF_INET, 6), (V6, socket.AF_INET6, 18))


class TrackerCase(unittest.TestCase):
    def assert_serves(self):
        self.assertTrue(tracker.alive(), tracker.log_text())
        for host in (V4, V6):
            with tracker.udp(host) as c:
                r = c.announce(random_hash(), peer_id(), 6881, event="started", left=1)
                self.assertEqual(r["interval"], INTERVAL)


class Protocol(TrackerCase):
    def test_connect(self):
        for host, _, _ in HOSTS:
            with self.subTest(host=host), tracker.udp(host) as c:
                tid = 0x01020304
                reply = c.exchange(struct.pack(">QII", UDP_PROTOCOL_ID, UDP_CONNECT, tid))
                self.assertIsNotNone(reply)
                self.assertEqual(len(reply), 16)
                self.assertEqual(struct.unpack(">II", reply[:8]), (UDP_CONNECT, tid))

    def test_two_peers_find_each_other(self):
        for host, family, entry in HOSTS:
            with self.subTest(host=host), tracker.udp(host) as a, tracker.udp(host) as b:
                h = random_hash()
                ra = a.announce(h, peer_id(), 8001, event="started", left=10)
                self.assertEqual(ra["interval"], INTERVAL)
                self.assertEqual(len(ra["raw"]), 20, "a lone peer must not be handed itself")
                rb = b.announce(h, peer_id(), 8002, event="started", left=10)
                self.assertEqual(len(rb["raw"]), 20 + entry)
                self.assertEqual(rb["peers"], [(host, 8001)])
                self.assertEqual((rb["seeders"], rb["leechers"]), (0, 2))
                ra = a.announce(h, peer_id(), 8001, left=10)
                self.assertEqual(ra["peers"], [(host, 8002)])

    def test_families_stay_apart(self):
        h = random_hash()
        with tracker.udp(V4) as a4, tracker.udp(V6) as a6, tracker.udp(V6) as b6:
            a4.announce(h, peer_id(), 8101, event="started", left=1)
            a6.announce(h, peer_id(), 8102, event="started", left=1)
            r = b6.announce(h, peer_id(), 8103, event="started", left=1)
            self.assertEqual((len(r["raw"]) - 20) % 18, 0)
            self.assertEqual(r["peers"], [(V6, 8102)])

    def test_numwant(self):
        h = random_hash()
        with tracker.udp() as c:
            for p in range(5):
                c.announce(h, peer_id(), 8200 + p, event="started", left=1)
            self.assertEqual(len(c.announce(h, peer_id(), 8299, numwant=-1, left=1)["peers"]), 5)
            self.assertEqual(len(c.announce(h, peer_id(), 8298, numwant=2, left=1)["peers"]), 2)
            r = c.announce(h, peer_id(), 8297, numwant=0, left=1)
            self.assertEqual(r["peers"], [])
            self.assertEqual(r["leechers"], 8)

    def test_counts_follow_events_and_scrape(self):
        h, other = random_hash(), random_hash()
        with tracker.udp(V6) as c:
            r = c.announce(h, peer_id(), 8301, event="started", left=100)
            self.assertEqual((r["seeders"], r["leechers"]), (0, 1))
            r = c.announce(h, peer_id(), 8302, event="started", left=0)
            self.assertEqual((r["seeders"], r["leechers"]), (1, 1))
            r = c.announce(h, peer_id(), 8301, event="completed", left=0)
            self.assertEqual((r["seeders"], r["leechers"]), (2, 0))
            r = c.announce(h, peer_id(), 8302, event="stopped", left=0)
            self.assertEqual((r["seeders"], r["leechers"]), (1, 0))
            c.announce(other, peer_id(), 8303, event="started", left=5)
        with tracker.udp(V4) as c:
            self.assertEqual(c.scrape([h]), [{"seeders": 1, "completed": 1, "leechers": 0}])
            unknown = random_hash()
            self.assertEqual(c.scrape([other, unknown, h]),
                             [{"seeders": 0, "completed": 0, "leechers": 1},
                              {"seeders": 0, "completed": 0, "leechers": 0},
                              {"seeders": 1, "completed": 1, "leechers": 0}])

    def test_scrape_capped_at_max_scrape_torrents(self):
        # More hashes than tracker.max_scrape_torrents: the first ones are answered, no more.
        hashes = [random_hash() for _ in range(MAX_SCRAPE + 2)]
        with tracker.udp() as c:
            for i, h in enumerate(hashes):
                c.announce(h, peer_id(), 8350 + i, event="started", left=i % 2)
            tid = c.tid()
            packet = struct.pack(">QII", c.connection_id, UDP_SCRAPE, tid) + b"".join(hashes)
            reply = c.exchange(packet)
        self.assertIsNotNone(reply)
        self.assertEqual(struct.unpack(">II", reply[:8]), (UDP_SCRAPE, tid), reply)
        self.assertEqual(len(reply), 8 + 12 * MAX_SCRAPE, "entries: %d" % ((len(reply) - 8) / 12))
        entries = [struct.unpack(">III", reply[8 + 12 * i:20 + 12 * i]) for i in range(MAX_SCRAPE)]
        self.assertEqual(entries, [(1 - i % 2, 0, i % 2) for i in range(MAX_SCRAPE)])

    def test_port_zero_refused(self):
        with tracker.udp() as c:
            with self.assertRaises(UdpError):
                c.announce(random_hash(), peer_id(), 0, event="started", left=1)
        self.assert_serves()

    def test_bep41_url_data_after_announce_accepted(self):
        # libtorrent appends the URL path as a BEP 41 option to every UDP announce.
        with tracker.udp() as c:
            c.connect()
            tid = c.tid()
            packet = c.announce_packet(random_hash(), peer_id(), 8401, event="started", left=1,
                                       tid=tid) + b"\x02\x09/announce\x00"
            reply = c.exchange(packet)
            self.assertIsNotNone(reply)
            self.assertEqual(struct.unpack(">II", reply[:8]), (UDP_ANNOUNCE, tid), reply)


class Hostile(TrackerCase):
    """Every reply to a bad datagram must be an error no larger than the datagram."""

    def replies_to(self, client, payload):
        """Sends `payload` and then a connect; returns the replies that came before the connect's.

        One 4-tuple lands on one worker socket, so its replies keep order: anything ahead of the
        connect's reply answers `payload`. That avoids waiting out a timeout per dropped packet."""
        client.drain()
        client.sock.send(payload)
        tid = client.tid()
        client.sock.send(struct.pack(">QII", UDP_PROTOCOL_ID, UDP_CONNECT, tid))
        replies = []
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                reply = client.sock.recv(65536)
            except socket.timeout:
                break
            if len(reply) == 16 and struct.unpack(">II", reply[:8]) == (UDP_CONNECT, tid):
                return replies
            replies.append(reply)
        self.fail("tracker stopped answering after %r\n%s" % (payload[:40], tracker.log_text()))

    def assert_no_amplification(self, client, payload, expect_error=False, ok=(UDP_ERROR,)):
        replies = self.replies_to(client, payload)
        for reply in replies:
            self.assertLessEqual(len(reply), len(payload),
                                 "%d-byte reply to a %d-byte datagram" % (len(reply), len(payload)))
            self.assertGreaterEqual(len(reply), 8, reply)
            self.assertIn(struct.unpack(">I", reply[:4])[0], ok, reply)
        if expect_error:
            self.assertEqual(len(replies), 1, "expected one error reply to %r" % payload[:40])
        return replies

    def test_bad_connection_id(self):
        for host, _, _ in HOSTS:
            with self.subTest(host=host), tracker.udp(host) as c:
                tid = 0x0A0B0C0D
                packet = c.announce_packet(random_hash(), peer_id(), 8501, left=1, tid=tid,
                                           connection_id=0x1122334455667788)
                (reply,) = self.assert_no_amplification(c, packet, expect_error=True)
                self.assertEqual(struct.unpack(">II", reply[:8]), (UDP_ERROR, tid))
                scrape = struct.pack(">QII", 0x1122334455667788, UDP_SCRAPE, tid) + random_hash()
                self.assert_no_amplification(c, scrape)
        self.assert_serves()

    def test_an_unauthenticated_flood_gets_back_fewer_bytes_than_it_sent(self):
        """Reflection: for each kind of datagram a spoofer can send without a valid connection id,
        a flood of it alone (an attacker picks the kind with the best ratio) gets back no more
        bytes than it sent, counted over the whole flood."""
        rng = random.Random(99)

        def connect(i):
            return struct.pack(">QII", UDP_PROTOCOL_ID, UDP_CONNECT, i)

        def forged_announce(i):
            return own_client.announce_packet(random_hash(), peer_id(), 9000 + i % 100, left=1,
                                              tid=i, connection_id=rng.getrandbits(64))

        def forged_bare_scrape(i):  # the smallest request an error answers
            return struct.pack(">QII", rng.getrandbits(64), UDP_SCRAPE, i)

        def forged_scrape(i):
            return struct.pack(">QII", rng.getrandbits(64), UDP_SCRAPE, i) + random_hash() * 5

        def forged_unknown_action(i):
            return struct.pack(">QII", rng.getrandbits(64), 7, i)

        def garbage(i):
            return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 120)))

        kinds = [connect, forged_announce, forged_bare_scrape, forged_scrape,
                 forged_unknown_action, garbage]
        # A tracker of its own, with a connect budget the flood does not exhaust: this counts
        # bytes, the connect limiter has its own test.
        with Tracker({"udp": {"connect_rate": 100000, "connect_burst": 100000}}, threads=1) as own:
            for kind in kinds:
                with self.subTest(kind=kind.__name__), own.udp() as own_client:
                    sent = received = 0
                    for i in range(300):
                        payload = kind(i)
                        own_client.sock.send(payload)
                        sent += len(payload)
                        if i % 50 == 49:  # stay under the socket buffers
                            time.sleep(0.005)
                    deadline = time.monotonic() + 10
                    own_client.sock.settimeout(0.5)
                    while time.monotonic() < deadline:
                        try:
                            received += len(own_client.sock.recv(65536))
                        except socket.timeout:
                            break
                    self.assertLessEqual(received, sent,
                                         "%d bytes answered to %d bytes sent" % (received, sent))
                    if kind is connect:
                        self.assertGreater(received, 0)  # the count is of real replies

    def test_connection_id_bound_to_address(self):
        with tracker.udp(V4) as c4, tracker.udp(V6) as c6:
            cid = c4.connect()
            packet = c6.announce_packet(random_hash(), peer_id(), 8502, left=1, connection_id=cid)
            self.assert_no_amplification(c6, packet, expect_error=True)
        self.assert_serves()

    def test_truncated(self):
        for host, _, _ in HOSTS:
            with tracker.udp(host) as c:
                c.connect()
                connect = struct.pack(">QII", UDP_PROTOCOL_ID, UDP_CONNECT, 7)
                announce = c.announce_packet(random_hash(), peer_id(), 8503, left=1)
                scrape = struct.pack(">QII", c.connection_id, UDP_SCRAPE, 9) + random_hash()
                cases = [b"", connect[:1], connect[:8], connect[:12], connect[:15],
                         announce[:16], announce[:20], announce[:50], announce[:96], announce[:97]]
                for payload in cases:
                    with self.subTest(host=host, size=len(payload), action=payload[8:12]):
                        self.assert_no_amplification(c, payload)
                # A partial trailing hash may be refused or ignored, never answered with more.
                for payload in (scrape[:16 + 10], scrape + b"\x01" * 7):
                    with self.subTest(host=host, size=len(payload), action="scrape"):
                        self.assert_no_amplification(c, payload, ok=(UDP_ERROR, UDP_SCRAPE))
        self.assert_serves()

    def test_connect_with_wrong_protocol_id(self):
        with tracker.udp() as c:
            for magic in (0, UDP_PROTOCOL_ID + 1, 0xFFFFFFFFFFFFFFFF):
                with self.subTest(magic=magic):
                    self.assert_no_amplification(c, struct.pack(">QII", magic, UDP_CONNECT, 3))
        self.assert_serves()

    def test_unknown_action(self):
        with tracker.udp() as c:
            c.connect()
            for action in (4, 5, 0x7FFFFFFF, 0xFFFFFFFF):
                with self.subTest(action=action):
                    packet = c.announce_packet(random_hash(), peer_id(), 8504, left=1,
                                               action=action)
                    self.assert_no_amplification(c, packet)
        self.assert_serves()

    def test_no_reply_that_could_start_a_reflection_loop(self):
        # A spoofed datagram could make two trackers answer each other for ever: errors are
        # never answered, and an unknown action is answered only to an authenticated sender.
        with tracker.udp() as c:
            cid = c.connect()
            error = struct.pack(">II", UDP_ERROR, 77) + b"invalid connection id"
            self.assertEqual(self.replies_to(c, error), [])
            as_request = struct.pack(">QII", cid, UDP_ERROR, 78) + b"x" * 8
            self.assertEqual(self.replies_to(c, as_request), [])
            unauthenticated = struct.pack(">QII", 0x1122334455667788, 9, 79) + b"y" * 8
            self.assertEqual(self.replies_to(c, unauthenticated), [])
            authenticated = struct.pack(">QII", cid, 9, 80) + b"z" * 8
            (reply,) = self.assert_no_amplification(c, authenticated, expect_error=True)
            self.assertEqual(struct.unpack(">II", reply[:8]), (UDP_ERROR, 80))
        self.assert_serves()

    def test_garbage(self):
        rng = random.Random(1234)
        with tracker.udp() as c, tracker.udp(V6) as c6:
            for size in (1, 7, 8, 16, 17, 98, 99, 300, 1500, 9000):
                for client in (c, c6):
                    payload = bytes(rng.getrandbits(8) for _ in range(size))
                    with self.subTest(size=size, family=client.family):
                        self.assert_no_amplification(client, payload)
        self.assert_serves()

    def test_negative_numwant_and_huge_fields(self):
        h = random_hash()
        with tracker.udp() as c:
            for p in range(3):
                c.announce(h, peer_id(), 8510 + p, event="started", left=1)
            # Any negative numwant means "the default" (50 here): every other peer, not none.
            r = c.announce(h, peer_id(), 8505, numwant=-7, left=2 ** 64 - 1,
                           uploaded=2 ** 64 - 1, downloaded=2 ** 64 - 1, event="started")
            self.assertEqual((r["seeders"], r["leechers"]), (0, 4))
            self.assertEqual(sorted(r["peers"]), [(V4, 8510 + p) for p in range(3)])
        self.assert_serves()

    def test_unknown_event_is_a_regular_announce(self):
        # BEP 15 events are 0-3; others count as "none" (as aquatic does), not as an error.
        with tracker.udp() as c:
            c.connect()
            for event in (4, 0xFFFFFFFF):
                with self.subTest(event=event):
                    h, tid = random_hash(), c.tid()
                    packet = bytearray(c.announce_packet(h, peer_id(), 8506, left=1, tid=tid))
                    packet[80:84] = struct.pack(">I", event)
                    (reply,) = self.replies_to(c, bytes(packet))
                    self.assertEqual(struct.unpack(">IIIII", reply[:20]),
                                     (UDP_ANNOUNCE, tid, INTERVAL, 1, 0), reply)
                    self.assertEqual(len(reply), 20, "a lone peer gets no peers")
                    self.assertEqual(c.scrape([h]), [{"seeders": 0, "completed": 0, "leechers": 1}])
        self.assert_serves()


class SharedSecret(unittest.TestCase):
    """Hosts behind one UDP address accept each other's connection ids when they share a secret."""

    SECRET = "00112233445566778899aabbccddeeff"

    def test_id_from_one_host_is_valid_on_another_with_the_same_secret(self):
        shared = {"udp": {"connection_id_secret": self.SECRET}}
        # Host b runs in a time namespace whose monotonic and boot clocks are a day ahead, as a
        # host booted a day earlier would be: ids must not depend on uptime.
        wrapper = ["unshare", "--time", "--monotonic", "86400", "--boottime", "86400"]
        if subprocess.run(wrapper + ["true"], capture_output=True).returncode != 0:
            self.skipTest("no time namespaces here (unshare --time)")
        with Tracker(shared) as a, Tracker(shared, wrapper=wrapper) as b, Tracker() as own:
            with a.udp(V4) as ca, b.udp(V4) as cb, own.udp(V4) as co:
                cid = ca.connect()
                cb.connection_id = cid
                cb.announce(random_hash(), peer_id(), 6881, event="started", left=1)
                co.connection_id = cid
                with self.assertRaises(UdpError):
                    co.announce(random_hash(), peer_id(), 6881, event="started", left=1)


class ConnectFlood(unittest.TestCase):
    def test_a_connect_flood_from_one_address_is_cut_and_others_are_answered(self):
        """connect_rate / connect_burst per address: 300 connects from 127.0.0.2 within a second
        get at most the burst plus a second's rate answered; 127.0.0.3 is answered meanwhile, and
        the flood gets no bytes back beyond those answers."""
        import socket
        import struct
        import time
        with Tracker({"udp": {"connect_rate": 5, "connect_burst": 10}}, threads=1) as t:
            flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            flood.bind(("127.0.0.2", 0))
            flood.connect(("127.0.0.1", t.udp_port))
            started = time.monotonic()
            for i in range(300):
                flood.send(struct.pack(">QII", 0x41727101980, 0, i))
            flood.settimeout(0.5)
            answers = 0
            try:
                while True:
                    reply = flood.recv(64)
                    self.assertEqual(len(reply), 16)
                    answers += 1
            except socket.timeout:
                pass
            elapsed = time.monotonic() - started
            self.assertGreaterEqual(answers, 10)
            self.assertLessEqual(answers, 10 + int(5 * elapsed) + 1)
            other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            other.bind(("127.0.0.3", 0))
            other.connect(("127.0.0.1", t.udp_port))
            other.settimeout(2)
            other.send(struct.pack(">QII", 0x41727101980, 0, 7))
            self.assertEqual(len(other.recv(64)), 16)
            flood.close()
            other.close()


if __name__ == "__main__":
    unittest_main()
