#!/usr/bin/env python3
"""Redis CPU per announce of the redis driver's announce script, without the tracker.

Starts a throwaway redis-server (tests/integration/redis_fixture.py), fills TORRENTS x PEERS
IPv4 peers through the script itself, then replays announces of known peers in batches of
--batch (what the driver's coalescing sends) and prints Redis' own CPU time per announce
(INFO cpu, user + sys) and used_memory per peer. Loopback only; every loop is bounded.

  bench/redis_script.py [--script plugins/redis/scripts.hpp] [--torrents 20000] [--batch 16]
                        [--limits all|global|address]

--limits sends every announce with ABI 2.3 budgets high enough never to refuse: `global`
max_torrents and max_peers (the script keeps its ledger), `address` max_peers_per_address (the
per-address counts), `all` both: the cost of [limits] on a single node.
"""
import argparse
import os
import random
import re
import socket
import struct
import sys
import time

OLD = False
LIMITS = None
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from redis_fixture import RedisServer  # noqa: E402


def script_text(path, name="kAnnounce"):
    src = open(path).read()
    m = re.search(name + r' = R"lua\((.*?)\)lua"', src, re.S)
    if not m:
        raise SystemExit("%s: no %s script" % (path, name))
    return m.group(1)


def resp(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.f = self.s.makefile("rb")

    def send(self, data):
        self.s.sendall(data)

    def read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t in (b"+", b":"):
            return rest
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RuntimeError("bad reply %r" % line)

    def call(self, *args):
        self.send(resp(args))
        return self.read()


def member(t, p):
    # One address per peer, as in real swarms (what max_peers_per_address keeps a count of).
    a = (t * 1024 + p) & 0xffffff
    return bytes([10, (a >> 16) & 255, (a >> 8) & 255, a & 255]) + struct.pack(">H", 1000 + p)


def single(sha, items, prefix=b"chihaya"):
    """The layout before batching (git show 6d07bff~1:plugins/redis/scripts.hpp): one call per
    announce, keys s4 l4 s6 l6 n c. For before/after comparisons with --old."""
    out = []
    for t, p, seeder, event in items:
        base = prefix + b":{" + ("%040x" % t).encode() + b"}:"
        out.append(resp([b"EVALSHA", sha, b"6"] + [base + x for x in (b"s4", b"l4", b"s6", b"l6", b"n", b"c")] +
                        [member(t, p), b"4", str(event), str(seeder), b"50", b"3600000", b"0", b"0", b"0",
                         str(random.getrandbits(31))]))
    return b"".join(out)


def batch(sha, items, prefix=b"chihaya"):
    if OLD:
        return single(sha, items, prefix)
    keys, argv = [], [str(random.getrandbits(31))]
    for t, p, seeder, event in items:
        base = prefix + b":{" + ("%040x" % t).encode() + b"}:"
        keys += [base + b"4", base + b"6", base + b"p"]
        ctl = struct.pack(">BBBIII", event, seeder, 0, 50, 3600, 0x1000 + p)
        if LIMITS:  # '>BI4dd': no_new_swarm, max_peers_per_address, max_torrents, max_peers
            per_address = 0 if LIMITS == "global" else 1000
            budget = 0 if LIMITS == "address" else 1e9
            ctl += struct.pack(">BIdd", 0, per_address, budget, budget)
        argv += [member(t, p), ctl, b""]
    if LIMITS in ("all", "global"):  # the ledger, and what other slots hold (none: one node)
        keys.append(prefix + b":{limits}")
        argv += [b"0", b"0"]
    return resp([b"EVALSHA", sha, str(len(keys))] + keys + argv)  # keys: 3 per announce


def cpu(c):
    info = dict(l.split(b":", 1) for l in c.call("INFO", "cpu").split(b"\r\n") if b":" in l)
    return float(info[b"used_cpu_user"]) + float(info[b"used_cpu_sys"])


def run(c, sha, items, size, window=64):
    """Pipelines batches of `size`, at most `window` unanswered; returns Redis CPU seconds."""
    t0 = cpu(c)
    sent = got = 0
    batches = [items[i:i + size] for i in range(0, len(items), size)]
    while got < len(batches):
        while sent < len(batches) and sent - got < window:
            c.send(batch(sha, batches[sent]))
            sent += 1
        for _ in range(len(batches[got]) if OLD else 1):
            c.read()
        got += 1
    return cpu(c) - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--script", default=os.path.join(HERE, "..", "plugins", "redis", "scripts.hpp"))
    ap.add_argument("--torrents", type=int, default=20000)
    ap.add_argument("--peers", type=int, default=5)
    ap.add_argument("--announces", type=int, default=50000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--old", action="store_true", help="--script holds the one-call-per-announce layout")
    ap.add_argument("--limits", choices=("all", "global", "address"),
                    help="every announce carries ABI 2.3 budgets (never reached)")
    a = ap.parse_args()
    global OLD, LIMITS
    OLD = a.old
    LIMITS = a.limits
    text = script_text(a.script)
    with RedisServer() as server:
        c = Conn(server.port)
        sha = c.call("SCRIPT", "LOAD", text)
        mem0 = int(server.info("memory")["used_memory"])
        # 2 of every 5 peers seed; every peer gives a BEP 7 key, as clients do.
        fill = [(t, p, 1 if p % 5 < 2 else 0, 2) for t in range(a.torrents) for p in range(a.peers)]
        fill_cpu = run(c, sha, fill, 64)
        mem1 = int(server.info("memory")["used_memory"])
        rnd = random.Random(1)
        items = [(rnd.randrange(a.torrents), p, 1 if p % 5 < 2 else 0, 0)
                 for p in (rnd.randrange(a.peers) for _ in range(a.announces))]
        perf = None
        if os.environ.get("PERF_OUT"):  # profile the steady phase: perf record into PERF_OUT
            import subprocess
            perf = subprocess.Popen(["perf", "record", "-q", "-g", "-o", os.environ["PERF_OUT"], "-p",
                                     str(server.proc.pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        c.call("CONFIG", "RESETSTAT")
        spent = run(c, sha, items, a.batch)
        if os.environ.get("COMMANDSTATS"):  # calls per announce and usec per call, by command
            for line in c.call("INFO", "commandstats").decode().split("\r\n"):
                if line.startswith("cmdstat_"):
                    name, _, rest = line[8:].partition(":")
                    f = dict(kv.split("=") for kv in rest.split(","))
                    print("  %-16s %6.2f calls/announce %6.2f us/call"
                          % (name, int(f["calls"]) / len(items), float(f["usec_per_call"])))
        if perf:
            perf.send_signal(2)
            perf.wait(timeout=30)
        peers = a.torrents * a.peers
        print("script %s: fill %.1f us/announce (batch 64); steady %.1f us/announce (batch %d); "
              "%.1f bytes/peer, keys %s" % (os.path.basename(a.script), fill_cpu * 1e6 / len(fill),
                                            spent * 1e6 / len(items), a.batch,
                                            (mem1 - mem0) / peers, c.call("DBSIZE").decode()))


if __name__ == "__main__":
    main()
