#!/usr/bin/env python3
"""bench/hostile_http.py: another client's HTTP latency while attackers hold the tracker's sockets.

Issue 11's hostile-HTTP target: idle connections (IDLE, default 10,000), slowloris connections
trickling a head one byte a second (SLOW), and header bombs (BOMBS heads of thousands of header
lines, past the 8 KiB head cap) must leave another client's p99 within 2x of normal, and the
tracker's descriptors must come back to their baseline once the attackers leave.

One tracker (memory cache, one worker, HTTP only, the default per-address cap of 64 and
[http] max_connections raised to hold IDLE), a victim on 127.0.0.1 doing REQUESTS keep-alive
announces before and during the attack; the attackers come from 127.9.0.0/16, 60 connections an
address. Prints both latency figures, the ratio, the bombs' answers and the descriptor counts;
exits 1 when a target is missed.

Environment: BUILD_DIR=build IDLE=10000 SLOW=200 BOMBS=200 REQUESTS=3000
Loopback only; every loop is bounded in count and every socket operation in time.
"""

import os
import resource
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
BUILD = os.path.abspath(os.environ.get("BUILD_DIR", os.path.join(REPO, "build")))
os.environ.setdefault("CHIHAYA_BIN", os.path.join(BUILD, "chihaya"))
os.environ.setdefault("CHIHAYA_PLUGINS_DIR", os.path.join(BUILD, "plugins"))
from tracker_fixture import V4, Tracker, announce_path, peer_id, random_hash  # noqa: E402

IDLE = int(os.environ.get("IDLE", "10000"))
SLOW = int(os.environ.get("SLOW", "200"))
BOMBS = int(os.environ.get("BOMBS", "200"))
REQUESTS = int(os.environ.get("REQUESTS", "3000"))
PER_SOURCE = 60  # below the default max_connections_per_address (64)
SETTLE_S = 10.0


def source(k):
    """The k-th attacker address, in 127.9.0.0/16."""
    return "127.9.%d.%d" % (k // 250, k % 250 + 1)


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def victim(tracker, n):
    """p50 and p99 (ms) of n keep-alive announces from 127.0.0.1, every answer checked."""
    took = []
    h, pid = random_hash(), peer_id()
    with tracker.http(V4) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.get(announce_path(h, pid, 6881, left=10))
            took.append(time.perf_counter() - t0)
            if r.status != 200 or b"failure reason" in r.bencoded():
                raise RuntimeError("the victim's announce failed: %r" % (r.bencoded(),))
    took.sort()
    return 1000 * took[len(took) // 2], 1000 * took[int(len(took) * 0.99)]


def open_from(port, k):
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=5.0,
                                        source_address=(source(k // PER_SOURCE), 0))
    except OSError:
        return None


def bomb(port, k):
    """A head of thousands of header lines; returns what came back: a status line or 'closed'."""
    s = open_from(port, k)
    if s is None:
        return "refused"
    with s:
        head = b"GET /announce?info_hash=x HTTP/1.1\r\n" + b"X-Bomb: b\r\n" * 3000 + b"\r\n"
        try:
            s.sendall(head)
        except OSError:
            pass  # the tracker may close once the cap is passed: what it answered still counts
        try:
            first = s.recv(64)
        except OSError:
            return "closed"
    return first.split(b"\r\n", 1)[0].decode("latin-1") if first else "closed"


def main():
    # Descriptors for our sockets, and a hard limit the tracker (our child) can raise its own to:
    # it needs one per connection it holds, plus its own (it logs it when it cannot).
    want = 2 * (IDLE + SLOW + BOMBS) + 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
        except (ValueError, OSError):  # no CAP_SYS_RESOURCE: as far as the hard limit goes
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    overrides = {"workers": {"threads": 1}, "log": {"level": "warning"},
                 "http": {"max_connections": IDLE + SLOW + BOMBS + 1000}}
    failures = []
    with Tracker(overrides, udp=False, threads=1, log_level="warning") as t:
        port = t.http_port
        victim(t, 200)  # warm-up
        base_fds = fds(t.proc.pid)
        quiet = victim(t, REQUESTS)
        print("quiet:        p50 %.3f ms  p99 %.3f ms  (%d announces)" % (quiet[0], quiet[1], REQUESTS))

        t0 = time.monotonic()
        idle = [s for s in (open_from(port, k) for k in range(IDLE)) if s is not None]
        slow = [s for s in (open_from(port, IDLE + k) for k in range(SLOW)) if s is not None]
        time.sleep(1.0)  # the worker accepts what the kernel's backlog holds
        held = fds(t.proc.pid)
        print("attack:       %d idle and %d slowloris connections open in %.1f s; tracker fds %d"
              % (len(idle), len(slow), time.monotonic() - t0, held))
        if held < base_fds + len(idle) + len(slow):
            failures.append("the tracker holds %d descriptors: not every attacker's connection"
                            % held)
        stop = threading.Event()

        def trickle():  # one byte a second on every slowloris connection, while the victim runs
            for s in slow:
                try:
                    s.send(b"GET /announce?info_hash=")
                except OSError:
                    pass
            while not stop.wait(1.0):
                for s in slow:
                    try:
                        s.send(b"a")
                    except OSError:
                        pass

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        answers = {}
        for k in range(BOMBS):
            a = bomb(port, IDLE + SLOW + k)
            answers[a] = answers.get(a, 0) + 1
        under = victim(t, REQUESTS)
        stop.set()
        trickler.join(5.0)
        ratio = under[1] / quiet[1]
        print("under attack: p50 %.3f ms  p99 %.3f ms  (%d announces): p99 %.2fx quiet"
              % (under[0], under[1], REQUESTS, ratio))
        print("header bombs: %s" % ", ".join("%d %s" % (n, a) for a, n in sorted(answers.items())))
        if ratio > 2.0:
            failures.append("p99 under attack %.2fx the quiet one (target <= 2x)" % ratio)
        if any(a.startswith("HTTP/1.1 200") for a in answers):
            failures.append("a header bomb was answered 200")

        for s in idle + slow:
            s.close()
        deadline = time.monotonic() + SETTLE_S
        while fds(t.proc.pid) > base_fds and time.monotonic() < deadline:
            time.sleep(0.1)
        after = fds(t.proc.pid)
        print("descriptors:  %d before, %d after the attackers left" % (base_fds, after))
        if after > base_fds:
            failures.append("descriptors %d after, %d before" % (after, base_fds))
        if not t.alive():
            failures.append("the tracker died")
        if failures:
            print(t.log_text()[-2000:])
    for f in failures:
        print("MISS " + f)
    print("verdict: " + ("PASS" if not failures else "FAIL"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
