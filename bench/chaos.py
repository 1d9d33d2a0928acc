#!/usr/bin/env python3
"""bench/chaos.py: kills and restarts redis-server and the tracker at random under traffic; checks every cycle.

    bench/chaos.py                       50 cycles (the long run)
    bench/chaos.py --cycles 5 --seed 1   the CI-sized run (ctest integration.chaos)

Two trackers run on free loopback ports, one worker each: R on the Redis cache driver (one
redis-server, no persistence), M on the memory cache with a swarm snapshot. Background threads
announce to both over HTTP (keep-alive) and UDP the whole time and classify every answer. Each
cycle waits a random moment, then does one of (the first cycles take each kind once, in a random
order; later ones draw at random):

  redis-kill    SIGKILL redis-server, keep it down a random 0.3-3 s, restart it on the same port
  redis-term    the same with SIGTERM (Redis closes its connections itself)
  tracker-kill  SIGKILL tracker R, restart it on the same ports (its swarms live in Redis)
  memory-term   SIGTERM tracker M, restart it (the snapshot brings its swarms back)
  memory-kill   SIGKILL tracker M, restart it (no snapshot written: it must start and serve)

and asserts:
  - Redis down: tracker R stays alive; a fresh HTTP and UDP announce each get "tracker storage
    unavailable" within --failure-bound; every background answer is that failure (or ok, for a
    request that was under way at the kill), never a hang, a timeout or anything else.
  - Redis back: an announce succeeds within the driver's reconnect backoff cap (2 s, kBackoffMax
    in plugins/redis/connection.cpp; not a config key) plus connect_timeout_ms (set to 500 here)
    plus --slack, measured from the moment redis-server answers PING.
  - A tracker killed or stopped: SIGTERM exits 0 within the fixture's stop timeout; the restart
    serves (HTTP and UDP) within its start timeout; a peer announced before is still in its swarm
    (R: from Redis, M after SIGTERM: from the snapshot).
  - Background answers outside the fault windows are all ok; inside them, only what the fault
    explains (unavailable; refused or unanswered while a tracker is down).
  - At the end both trackers stop cleanly (SIGTERM, exit 0).

Prints a table of cycles with the fault, its down time and the recovery time, then a summary;
exits 0 when every assertion held, 1 when one did not, 2 on a start-up problem. Bounded: at most
--cycles cycles and --duration seconds (reaching the cap is a failure: fewer cycles than asked);
every process started here is stopped at the end, also on failure. Loopback only.
"""

import argparse
import os
import random
import signal
import socket
import statistics
import sys
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

# plugins/redis/connection.cpp: kBackoffMax, the longest wait between two reconnect attempts.
REDIS_BACKOFF_CAP_S = 2.0
CONNECT_TIMEOUT_MS = 500
COMMAND_TIMEOUT_MS = 500
UNAVAILABLE = "tracker storage unavailable"
KINDS = ("redis-kill", "redis-term", "tracker-kill", "memory-term", "memory-kill")
WEIGHTS = (4, 1, 2, 2, 1)
# Background requests that start within this long after redis-server is killed are not held to
# "unavailable": the kill and the driver seeing its socket close are not one instant.
IN_FLIGHT_S = 0.1


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cycles", type=int, default=50)
    p.add_argument("--seed", type=int, default=None, help="default: random, printed")
    p.add_argument("--duration", type=float, default=1800.0,
                   help="cap in seconds on the whole run (default 1800)")
    p.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    p.add_argument("--slack", type=float, default=1.0,
                   help="seconds allowed above the backoff cap + connect timeout (default 1.0)")
    p.add_argument("--failure-bound", type=float, default=2.0,
                   help="seconds within which an announce must fail while Redis is down")
    a = p.parse_args()
    if a.cycles < 1 or a.duration <= 0:
        p.error("--cycles and --duration must be positive")
    return a


ARGS = parse_args()
os.environ.setdefault("CHIHAYA_BIN", os.path.join(ARGS.build_dir, "chihaya"))
os.environ.setdefault("CHIHAYA_PLUGINS_DIR", os.path.join(ARGS.build_dir, "plugins"))
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
from redis_fixture import RedisServer, have_redis  # noqa: E402
from tracker_fixture import (V4, ConnectionClosed, HttpConn, Tracker, UdpClient,  # noqa: E402
                             UdpError, announce_path, bdecode, compact_peers, peer_id,
                             random_hash)

RECOVERY_BOUND_S = REDIS_BACKOFF_CAP_S + CONNECT_TIMEOUT_MS / 1000 + ARGS.slack


class Violation(AssertionError):
    """An assertion of the run that did not hold."""


# ---- one announce, classified ------------------------------------------------------------------

def http_announce(port, conn, info_hash, pid, peer_port, timeout=3.0, **kw):
    """One HTTP announce on `conn` (a HttpConn or None: a fresh one). Returns (outcome, conn to
    reuse or None, peers). Outcomes: ok, unavailable, down (refused, closed, reset), timeout,
    or 'bad: ...' (anything a client could not take for an answer or a clear failure)."""
    try:
        if conn is None:
            conn = HttpConn(V4, port, timeout=timeout)
        r = conn.get(announce_path(info_hash, pid, peer_port, **kw))
    except socket.timeout:
        _close(conn)
        return "timeout", None, None
    except (ConnectionRefusedError, ConnectionResetError, ConnectionClosed, BrokenPipeError):
        _close(conn)
        return "down", None, None
    except OSError as e:
        _close(conn)
        return "bad: %s" % e, None, None
    if r.status != 200:
        _close(conn)
        return "bad: HTTP %d %r" % (r.status, r.body[:100]), None, None
    try:
        d = bdecode(r.body)
    except (ValueError, IndexError) as e:
        _close(conn)
        return "bad: not bencode (%s): %r" % (e, r.body[:100]), None, None
    if not isinstance(d, dict):
        return "bad: not a dict: %r" % r.body[:100], conn, None
    if b"failure reason" in d:
        reason = d[b"failure reason"].decode("utf-8", "replace")
        return ("unavailable" if reason == UNAVAILABLE else "bad: failure %r" % reason), conn, None
    if not isinstance(d.get(b"interval"), int) or not isinstance(d.get(b"peers", b""), bytes):
        return "bad: answer without interval or compact peers: %r" % r.body[:100], conn, None
    try:
        peers = compact_peers(d.get(b"peers", b""), socket.AF_INET)
    except AssertionError as e:
        return "bad: %s" % e, conn, None
    return "ok", conn, peers


def _close(conn):
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


def udp_announce(client, info_hash, pid, peer_port, **kw):
    """One UDP announce on `client` (connect ids survive restarts: the secret is fixed).
    Returns (outcome, peers)."""
    try:
        r = client.announce(info_hash, pid, peer_port, **kw)
    except UdpError as e:
        reason = str(e).rstrip("\0")
        return ("unavailable" if reason == UNAVAILABLE else "bad: error %r" % reason), None
    except ConnectionRefusedError:
        client.connection_id = None
        return "down", None
    except AssertionError as e:
        client.connection_id = None
        client.drain()
        # No reply at all: a hang when the tracker is up, expected when it is down.
        return ("timeout" if "no UDP reply" in str(e) else "bad: %s" % e), None
    except OSError as e:
        client.connection_id = None
        return "bad: %s" % e, None
    return "ok", r["peers"]


# ---- background traffic ------------------------------------------------------------------------

class Traffic:
    """Announces to one tracker over HTTP keep-alive and UDP until stopped, each thread one at a
    time about every PAUSE_S, recording (start, end, protocol, outcome)."""

    PAUSE_S = 0.02

    def __init__(self, name, tracker, seed):
        self.name = name
        self.tracker = tracker  # restarted in place: same ports, same connection id secret
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.results = []
        self.in_flight = {}  # thread name -> start of its request under way
        rng = random.Random(seed)
        self.torrents = [bytes(rng.getrandbits(8) for _ in range(20)) for _ in range(16)]
        self.threads = [threading.Thread(target=f, daemon=True, name="%s-%s" % (name, f.__name__))
                        for f in (self._http, self._udp)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=15)
        if any(t.is_alive() for t in self.threads):
            raise Violation("a %s traffic thread did not stop" % self.name)

    def _begin(self, t0):
        with self.lock:
            self.in_flight[threading.current_thread().name] = t0

    def _record(self, t0, proto, outcome):
        with self.lock:
            self.in_flight.pop(threading.current_thread().name, None)
            self.results.append((t0, time.monotonic(), proto, outcome))

    def settled(self, t):
        """True when no request that started before t is still under way."""
        with self.lock:
            return all(t0 >= t for t0 in self.in_flight.values())

    def _http(self):
        pid, conn, i = peer_id(b"-CH0001-"), None, 0
        while not self.stopping.is_set():
            t0 = time.monotonic()
            self._begin(t0)
            outcome, conn, _ = http_announce(self.tracker.http_port, conn, self.torrents[i % 16], pid, 20001,
                                             left=1, timeout=3.0)
            self._record(t0, "http", outcome)
            i += 1
            self.stopping.wait(self.PAUSE_S)
        _close(conn)

    def _udp(self):
        pid, i = peer_id(b"-CU0001-"), 0
        with UdpClient(V4, self.tracker.udp_port, timeout=3.0) as client:
            while not self.stopping.is_set():
                t0 = time.monotonic()
                self._begin(t0)
                outcome, _ = udp_announce(client, self.torrents[i % 16], pid, 20002, left=1)
                self._record(t0, "udp", outcome)
                i += 1
                self.stopping.wait(self.PAUSE_S)

    def between(self, t_from, t_to):
        """Results of requests that started at or after t_from and ended by t_to."""
        with self.lock:
            return [r for r in self.results if r[0] >= t_from and r[1] <= t_to]

    def overlapping(self, t_from, t_to):
        """Results of requests that were under way at some moment of [t_from, t_to]."""
        with self.lock:
            return [r for r in self.results if r[1] >= t_from and r[0] <= t_to]


# ---- the cycles --------------------------------------------------------------------------------

def wait_for(predicate, bound_s, step_s=0.05):
    """Polls until predicate() is truthy; returns (value, seconds taken), value None on timeout."""
    t0 = time.monotonic()
    while True:
        v = predicate()
        if v:
            return v, time.monotonic() - t0
        if time.monotonic() - t0 > bound_s:
            return None, time.monotonic() - t0
        time.sleep(step_s)


class Chaos:
    """The processes (redis-server, trackers R and M), their traffic, and the cycles' checks."""

    def __init__(self, rng):
        self.rng = rng
        self.redis = RedisServer()
        self.workdir = self.redis.dir  # a temporary dir that goes with the redis fixture
        self.snapshot = os.path.join(self.workdir, "swarms.snapshot")
        secret = "%032x" % rng.getrandbits(128)
        # Probes announce to one torrent: a new one per probe would spend the address's
        # [limits] new_torrents_per_address (every client here is 127.0.0.1), which stays on.
        self.probe_hash = random_hash()
        self.r_overrides = {
            "cache": {"driver": "redis"},
            "cache.redis": {"addresses": self.redis.address,
                            "connect_timeout_ms": CONNECT_TIMEOUT_MS,
                            "command_timeout_ms": COMMAND_TIMEOUT_MS},
            "udp": {"connection_id_secret": secret},
        }
        self.m_overrides = {
            "cache.memory": {"snapshot_path": self.snapshot},
            "udp": {"connection_id_secret": secret},
        }
        self.r = Tracker(self.r_overrides, threads=1)
        self.m = Tracker(self.m_overrides, threads=1)
        self.starts = {"R": 0, "M": 0}
        self.rows = []
        self.traffic = []
        self.t_checked = 0.0  # background answers that started before this are checked
        self.died = set()  # pids of tracker processes that exited unasked

    # Every (re)start of a tracker writes its own log file, so a crash's log survives the restart.
    def start_tracker(self, which):
        t = self.r if which == "R" else self.m
        self.starts[which] += 1
        t.log_path = os.path.join(t.dir.name, "chihaya.%d.log" % self.starts[which])
        t.start()

    def setup(self):
        self.redis.start()
        self.start_tracker("R")
        self.start_tracker("M")
        self.traffic = [Traffic("R", self.r, self.rng.getrandbits(32)).start(),
                        Traffic("M", self.m, self.rng.getrandbits(32)).start()]
        self.t_checked = time.monotonic()

    def teardown(self, check):
        """Stops everything started here; `check`: first the answers since the last cycle."""
        errors = []
        try:
            if check and self.traffic:
                self.check_steady("after the last cycle")
        except Violation as e:
            errors.append(str(e))
        for tr in self.traffic:
            try:
                tr.stop()
            except Violation as e:
                errors.append(str(e))
        for name, t in (("R", self.r), ("M", self.m)):
            try:
                if t.alive():
                    rc = t.stop()
                    if rc != 0:
                        errors.append("tracker %s exited %r on the final SIGTERM:\n%s"
                                      % (name, rc, t.log_text()))
                elif t.proc is not None:
                    self.died.add(t.proc.pid)
                    errors.append("tracker %s was not running at the end (exit %r):\n%s"
                                  % (name, t.proc.returncode, t.log_text()))
            except AssertionError as e:
                errors.append(str(e))
            finally:
                t.cleanup()
        try:
            self.redis.stop()
        finally:
            self.redis.cleanup()
        return errors

    # -- checks shared by the kinds --

    def settle(self, t):
        """Waits (bounded by the clients' 3 s timeout) for the background requests under way at t
        to end, so that each is judged with the window it belongs to, not the next cycle's."""
        wait_for(lambda: all(tr.settled(t) for tr in self.traffic), 4.0, step_s=0.02)

    def check_background(self, name, t_from, t_to, allowed, what, started=False):
        """Background answers of tracker `name` under way in [t_from, t_to] (`started`: only
        those that started in it) must all be in `allowed`."""
        tr = self.traffic[0 if name == "R" else 1]
        results = tr.between(t_from, t_to) if started else tr.overlapping(t_from, t_to)
        bad = [r for r in results if r[3] not in allowed]
        if bad:
            raise Violation("tracker %s, %s: %d background answers not in %s, first: %s"
                            % (name, what, len(bad), sorted(allowed),
                               ", ".join("%s %s after %.2f s" % (r[2], r[3], r[1] - r[0])
                                         for r in bad[:3])))
        return results

    def tracker(self, name):
        return self.r if name == "R" else self.m

    def probe_ok(self, name, info_hash=None, port=7001):
        """A fresh HTTP and UDP announce both ok: the tracker serves. Returns the HTTP peers."""
        t = self.tracker(name)
        h = info_hash or self.probe_hash
        outcome, conn, peers = http_announce(t.http_port, None, h, peer_id(), port, left=1,
                                             timeout=3.0)
        _close(conn)
        if outcome != "ok":
            return None
        with UdpClient(V4, t.udp_port, timeout=3.0) as c:
            if udp_announce(c, h, peer_id(), port + 1, left=1)[0] != "ok":
                return None
        return peers if peers is not None else []

    # -- the kinds --

    def redis_fault(self, sig):
        down_s = self.rng.uniform(0.3, 3.0)
        t_kill = time.monotonic()
        if sig == signal.SIGKILL:
            self.redis.kill()
        else:
            self.redis.proc.send_signal(signal.SIGTERM)
            self.redis.proc.wait(timeout=10)
        time.sleep(min(0.2, down_s))
        self.require_alive("R", "once Redis died")
        # Fresh clients while Redis is down: the clear failure, fast.
        for proto in ("http", "udp"):
            t0 = time.monotonic()
            if proto == "http":
                outcome, conn, _ = http_announce(self.r.http_port, None, self.probe_hash, peer_id(),
                                                 7101, left=1, timeout=ARGS.failure_bound + 3)
                _close(conn)
            else:
                with UdpClient(V4, self.r.udp_port, timeout=ARGS.failure_bound + 3) as c:
                    outcome, _ = udp_announce(c, self.probe_hash, peer_id(), 7102, left=1)
            took = time.monotonic() - t0
            if outcome != "unavailable" or took > ARGS.failure_bound:
                raise Violation("Redis down: a %s announce got %r after %.2f s (expected %r "
                                "within %.1f s)" % (proto, outcome, took, UNAVAILABLE,
                                                    ARGS.failure_bound))
        rest = down_s - (time.monotonic() - t_kill)
        if rest > 0:
            time.sleep(rest)
        self.require_alive("R", "while Redis was down")
        t_restart = time.monotonic()
        self.redis.restart()
        t_up = time.monotonic()
        _, recovery = wait_for(lambda: self.probe_ok("R") is not None, RECOVERY_BOUND_S + 1)
        t_ok = time.monotonic()
        if recovery > RECOVERY_BOUND_S:
            raise Violation("no announce succeeded within %.1f s of Redis answering again "
                            "(backoff cap %.1f s + connect timeout %.1f s + slack %.1f s):\n%s"
                            % (RECOVERY_BOUND_S, REDIS_BACKOFF_CAP_S, CONNECT_TIMEOUT_MS / 1000,
                               ARGS.slack, self.r.log_text()))
        self.require_alive("R", "after Redis came back")
        self.settle(t_ok)
        # Background: while Redis was down, only the clear failure; around it, ok or that failure.
        down = self.check_background("R", t_kill + IN_FLIGHT_S, t_restart, {"unavailable"},
                                     "Redis down", started=True)
        self.check_background("R", t_kill, t_ok, {"ok", "unavailable"}, "Redis down and back")
        self.check_background("M", t_kill, t_ok, {"ok"}, "Redis down (M has no Redis)")
        self.t_checked = t_ok
        return {"down_s": t_up - t_kill, "recovery_s": recovery, "answers": len(down)}

    def tracker_fault(self, name, sig):
        t = self.tracker(name)
        keep = sig == signal.SIGTERM or name == "R"  # must the swarm survive the restart?
        h, port = random_hash(), 7200 + self.rng.randrange(100)
        if self.probe_ok(name, info_hash=h, port=port) is None:
            raise Violation("tracker %s did not serve before the fault" % name)
        t_kill = time.monotonic()
        if sig == signal.SIGKILL:
            t.kill()
        else:
            rc = t.stop(signal.SIGTERM)  # raises past the fixture's stop timeout
            if rc != 0:
                raise Violation("tracker %s exited %r on SIGTERM:\n%s" % (name, rc, t.log_text()))
        time.sleep(self.rng.uniform(0.0, 1.0))
        t_start = time.monotonic()
        self.start_tracker(name)
        t_serving = time.monotonic()
        peers, took = wait_for(lambda: self.probe_ok(name, info_hash=h, port=port + 2),
                               ARGS.failure_bound)
        if peers is None:
            raise Violation("tracker %s restarted but did not serve within %.1f s:\n%s"
                            % (name, ARGS.failure_bound, t.log_text()))
        t_ok = time.monotonic()
        if keep and (V4, port) not in peers:
            raise Violation("tracker %s after %s: the peer announced before is gone (peers %r)"
                            % (name, signal.Signals(sig).name, peers))
        self.settle(t_ok)
        # Under way while it was down: refused, or unanswered (UDP); started once it serves: ok.
        self.check_background(name, t_kill, t_serving, {"ok", "down", "timeout"}, "down")
        self.check_background(name, t_serving, t_ok, {"ok"}, "after the restart", started=True)
        other = "M" if name == "R" else "R"
        self.check_background(other, t_kill, t_ok, {"ok"}, "while %s restarted" % name)
        self.t_checked = t_ok
        return {"down_s": t_serving - t_kill, "recovery_s": t_ok - t_start,
                "answers": len(self.traffic[0 if name == "R" else 1].overlapping(t_kill, t_serving))}

    def check_steady(self, what):
        """Everything started since the last fault window and ended by now: all ok."""
        now = time.monotonic()
        for name in ("R", "M"):
            self.require_alive(name, what)
            self.check_background(name, self.t_checked, now, {"ok"}, what, started=True)

    def require_alive(self, name, what):
        t = self.tracker(name)
        if not t.alive():
            self.died.add(t.proc.pid)
            raise Violation("tracker %s exited (%r) %s:\n%s"
                            % (name, t.proc.returncode, what, t.log_text()))

    def cycle(self, kind):
        time.sleep(self.rng.uniform(0.3, 1.5))  # traffic before the fault
        self.check_steady("before the fault")
        t0 = time.monotonic()
        if kind == "redis-kill":
            row = self.redis_fault(signal.SIGKILL)
        elif kind == "redis-term":
            row = self.redis_fault(signal.SIGTERM)
        elif kind == "tracker-kill":
            row = self.tracker_fault("R", signal.SIGKILL)
        elif kind == "memory-term":
            row = self.tracker_fault("M", signal.SIGTERM)
        else:
            row = self.tracker_fault("M", signal.SIGKILL)
        row.update(kind=kind, cycle_s=time.monotonic() - t0)
        return row


def main():
    if not have_redis():
        print("chaos: redis-server and redis-cli are needed (apt-get install redis-server)",
              file=sys.stderr)
        return 2
    seed = ARGS.seed if ARGS.seed is not None else random.SystemRandom().getrandbits(32)
    rng = random.Random(seed)
    first = list(KINDS)
    rng.shuffle(first)
    plan = [first[i] if i < len(first) else rng.choices(KINDS, WEIGHTS)[0]
            for i in range(ARGS.cycles)]
    print("chaos: seed %d, %d cycles, duration cap %.0f s, recovery bound %.1f s (backoff cap "
          "%.1f + connect timeout %.1f + slack %.1f)" % (seed, ARGS.cycles, ARGS.duration,
                                                       RECOVERY_BOUND_S, REDIS_BACKOFF_CAP_S,
                                                       CONNECT_TIMEOUT_MS / 1000, ARGS.slack),
          flush=True)
    chaos = Chaos(rng)
    failures = []
    t_start = time.monotonic()
    try:
        try:
            chaos.setup()
        except (RuntimeError, OSError) as e:
            print("chaos: start-up failed: %s" % e, file=sys.stderr)
            return 2
        # down_s: fault to Redis answering PING again / to the restarted tracker serving.
        # recovery_s: Redis answering PING to the first ok announce (HTTP and UDP) / the tracker's
        # process start to its first ok announces. answers: background answers in the window.
        print("%5s  %-12s %8s %10s %8s %8s" % ("cycle", "fault", "down_s", "recovery_s",
                                               "answers", "cycle_s"), flush=True)
        for i, kind in enumerate(plan, 1):
            if time.monotonic() - t_start > ARGS.duration:
                failures.append("duration cap of %.0f s reached after %d of %d cycles"
                                % (ARGS.duration, i - 1, ARGS.cycles))
                break
            try:
                row = chaos.cycle(kind)
            except (Violation, AssertionError, RuntimeError) as e:
                failures.append("cycle %d (%s): %s" % (i, kind, e))
                print("%5d  %-12s FAILED: %s" % (i, kind, str(e).splitlines()[0]), flush=True)
                break
            chaos.rows.append(row)
            print("%5d  %-12s %8.2f %10.3f %8d %8.1f" % (i, kind, row["down_s"], row["recovery_s"],
                                                        row["answers"], row["cycle_s"]), flush=True)
    finally:
        failures += chaos.teardown(check=not failures)
    summary(chaos, failures, time.monotonic() - t_start)
    return 1 if failures else 0


def summary(chaos, failures, elapsed):
    print()
    print("%d cycles in %.0f s" % (len(chaos.rows), elapsed))
    for kinds, what in ((("redis-kill", "redis-term"), "Redis back -> first ok announce"),
                        (("tracker-kill", "memory-term", "memory-kill"),
                         "tracker process start -> first ok")):
        rec = [r["recovery_s"] for r in chaos.rows if r["kind"] in kinds]
        if rec:
            print("%-32s n=%-3d min %.3f s  median %.3f s  max %.3f s"
                  % (what, len(rec), min(rec), statistics.median(rec), max(rec)))
    counts = {}
    for tr in chaos.traffic:
        for r in tr.results:
            key = (tr.name, r[3] if not r[3].startswith("bad") else "bad")
            counts[key] = counts.get(key, 0) + 1
    print("background answers: " + ", ".join("%s %s %d" % (k[0], k[1], v)
                                            for k, v in sorted(counts.items())))
    print("tracker starts: R %d, M %d; trackers that died unasked: %d"
          % (chaos.starts["R"], chaos.starts["M"], len(chaos.died)))
    if failures:
        print("FAIL:")
        for f in failures:
            print("  " + f)
    else:
        print("PASS: every assertion held")


if __name__ == "__main__":
    sys.exit(main())
