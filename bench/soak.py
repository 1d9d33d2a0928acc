#!/usr/bin/env python3
"""bench/soak.py: chihaya at half its measured capacity for --minutes with peer churn; RSS, descriptors, errors.

    bench/soak.py                        measure capacity, then 30 minutes at half of it
    bench/soak.py --minutes 2 --warmup-minutes 0.5 --sample-seconds 5    a quick look

1. One tracker (one worker, the memory cache, the admin listener for its peer gauges) on free
   loopback ports, with a short announce interval and peer lifetime (15 s / 30 s by default), so
   that peers really expire during the run.
2. Capacity: the swarms are filled (--torrents x --peers-per-torrent peers, every one
   "started"), then chihaya_loadgen runs closed-loop UDP for --capacity-seconds, --capacity-runs
   times; the median rate is the capacity. On a shared machine it is whatever it is: reported.
3. Soak: chihaya_loadgen paced to --fraction of that rate (UDP), plus a small paced stream of
   HTTP announces with a connection each (--http-rate), in back-to-back runs of --sample-seconds
   (each its own sequence of announces over the same swarms, --run k). The workload's events
   give the churn: 5 % started, 3 % completed, 2 % stopped; peers not picked within the lifetime
   expire. Every reply is validated by the generator (errors, timeouts). After each run: VmRSS,
   open descriptors (/proc/PID/fd), live peers and torrents (/metrics), announces/s achieved,
   the UDP p99 latency and the tracker's CPU (all its threads, % of one core) over the run.
4. Verdict: RSS growth from the first sample after --warmup-minutes to the last under
   --max-rss-growth (5 %), the descriptor count flat after warm-up (spread at most
   --fd-tolerance), zero errors and timeouts over the whole run (fill and capacity runs included). Exit 0 when all hold, 1 when one
   does not, 2 on a usage or start-up problem.

Bounded: the soak stops after --minutes, every generator run after --sample-seconds (plus its
drain), and the tracker is stopped (SIGTERM, then SIGKILL) whatever happens. Loopback only.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    p.add_argument("--minutes", type=float, default=30.0, help="soak length (default 30)")
    p.add_argument("--warmup-minutes", type=float, default=5.0,
                   help="samples before this are warm-up: not in the RSS and descriptor verdicts")
    p.add_argument("--sample-seconds", type=float, default=10.0)
    p.add_argument("--fraction", type=float, default=0.5, help="of the measured capacity")
    p.add_argument("--rate", type=float, default=0,
                   help="UDP announces/s to soak at; skips the capacity measurement")
    p.add_argument("--capacity-seconds", type=float, default=5.0)
    p.add_argument("--capacity-runs", type=int, default=3)
    p.add_argument("--http-rate", type=float, default=200.0,
                   help="HTTP announces/s, one connection each, beside the UDP load (0: none)")
    p.add_argument("--torrents", type=int, default=100000)
    p.add_argument("--peers-per-torrent", type=int, default=5)
    p.add_argument("--announce-interval", type=int, default=15)
    p.add_argument("--peer-lifetime", type=int, default=30)
    p.add_argument("--max-rss-growth", type=float, default=5.0, help="percent (default 5)")
    p.add_argument("--fd-tolerance", type=int, default=2)
    p.add_argument("--keep-log", help="copy the tracker's log here at the end")
    return p.parse_args()


ARGS = parse_args()
os.environ.setdefault("CHIHAYA_BIN", os.path.join(ARGS.build_dir, "chihaya"))
os.environ.setdefault("CHIHAYA_PLUGINS_DIR", os.path.join(ARGS.build_dir, "plugins"))
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
from tracker_fixture import V4, Tracker, addr_port, cpu_seconds, rss_kib  # noqa: E402

LOADGEN = os.environ.get("CHIHAYA_LOADGEN", os.path.join(ARGS.build_dir, "chihaya_loadgen"))


def parse_line(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def loadgen_args(mode, port, *extra):
    return [LOADGEN, "--mode", mode, "--target", addr_port(V4, port),
            "--torrents", str(ARGS.torrents), "--peers-per-torrent", str(ARGS.peers_per_torrent),
            "--numwant", "50", "--timeout-ms", "2000"] + [str(x) for x in extra]


def run_loadgen(args, limit_s):
    """One generator run to its end (bounded): ({phase: its key=value figures}, its stderr)."""
    return run_side_by_side([(args, limit_s)])[0]


def run_side_by_side(runs):
    """Generator runs [(args, time limit)] started together; their results in order. A run past
    its limit, or one that exits other than 0 or 1 (errors seen), raises; none outlives this."""
    started = [subprocess.Popen(a, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True) for a, _ in runs]
    results = []
    try:
        for p, (a, limit_s) in zip(started, runs):
            try:
                out, err = p.communicate(timeout=limit_s)
            except subprocess.TimeoutExpired:
                raise RuntimeError("chihaya_loadgen ran past %.0f s: %s" % (limit_s, " ".join(a)))
            if p.returncode not in (0, 1):
                raise RuntimeError("chihaya_loadgen exited %d: %s\n%s"
                                   % (p.returncode, " ".join(a), err.decode()))
            phases = {}
            for line in out.decode().splitlines():
                r = parse_line(line)
                if "phase" in r:
                    phases[r["phase"]] = r
            results.append((phases, err.decode()))
    finally:
        for p in started:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return results


def proc_figures(pid):
    return rss_kib(pid), len(os.listdir("/proc/%d/fd" % pid)), cpu_seconds(pid)


def swarm_gauges(tracker):
    """(live peers, torrents) from /metrics: the memory driver's own counters."""
    status, text = tracker.admin_get("/metrics")
    if status != 200:
        raise RuntimeError("/metrics answered %d" % status)
    peers = torrents = 0
    for line in text.splitlines():
        if line.startswith("chihaya_peers{"):
            peers += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("chihaya_torrents "):
            torrents = int(float(line.rsplit(" ", 1)[1]))
    return peers, torrents


def checked_phase(phases, name, err, failures, what):
    """The phase's figures; its errors and timeouts (or its absence) go into `failures`."""
    r = phases.get(name)
    if r is None or int(r["errors"]) or int(r["timeouts"]):
        failures.append("%s: %s" % (what, "no %s phase" % name if r is None else
                                    "%s errors, %s timeouts" % (r["errors"], r["timeouts"])))
        if err.strip():
            print(err.rstrip(), file=sys.stderr)
    return r or {}


def fill(tracker, failures):
    """Phase 1: every peer of the workload announced once, "started"."""
    phases, err = run_loadgen(loadgen_args("udp", tracker.udp_port, "--prepopulate-only",
                                           "--prepopulate-seconds", 120), 180)
    f = checked_phase(phases, "prepopulate", err, failures, "fill")
    print("fill: %s announces in %s s, errors=%s timeouts=%s"
          % (f.get("announces"), f.get("seconds"), f.get("errors"), f.get("timeouts")), flush=True)


def measure_capacity(tracker, failures):
    """The median closed-loop UDP rate of --capacity-runs runs (errors count as failures)."""
    rates = []
    for k in range(ARGS.capacity_runs):
        phases, err = run_loadgen(loadgen_args("udp", tracker.udp_port, "--no-prepopulate",
                                               "--duration", ARGS.capacity_seconds,
                                               "--run", 1000 + k), ARGS.capacity_seconds + 60)
        s = checked_phase(phases, "steady", err, failures, "capacity run %d" % (k + 1))
        if not s:
            raise RuntimeError("capacity run %d reported nothing:\n%s" % (k + 1, err))
        rates.append(float(s["rate"]))
        print("capacity run %d: %s announces/s closed loop (p99 %s us, errors=%s timeouts=%s)"
              % (k + 1, s["rate"], s["p99_us"], s["errors"], s["timeouts"]), flush=True)
    return statistics.median(rates)


def main():
    # One loopback address plays every peer: [limits] new_torrents_per_address (a flood guard
    # against one client creating swarms) would refuse the fill, and the swarms that expiry
    # empties and announces create again. The per-swarm and global budgets stay at their defaults
    # (5 ports per swarm, 500,000 peers are well inside them).
    tracker = Tracker({"tracker": {"announce_interval": ARGS.announce_interval,
                                   "min_interval": max(1, ARGS.announce_interval // 2),
                                   "peer_lifetime": ARGS.peer_lifetime},
                       "limits": {"new_torrents_per_address": 0}},
                      threads=1, log_level="warning", admin=True)
    try:
        tracker.start()
    except Exception:
        tracker.cleanup()
        raise
    failures = []
    rows = []
    try:
        pid = tracker.proc.pid
        print("soak: chihaya pid %d, one worker, memory cache, udp %d, http %d, admin %d; "
              "announce_interval %d s, peer_lifetime %d s; %d torrents x %d peers; machine load %s"
              % (pid, tracker.udp_port, tracker.http_port, tracker.admin_port,
                 ARGS.announce_interval, ARGS.peer_lifetime, ARGS.torrents,
                 ARGS.peers_per_torrent, open("/proc/loadavg").read().split()[0]), flush=True)
        fill(tracker, failures)
        if ARGS.rate > 0:
            capacity, rate = None, ARGS.rate
        else:
            capacity = measure_capacity(tracker, failures)
            rate = round(capacity * ARGS.fraction)
            print("capacity: %.0f announces/s (median of %d); soaking at %.0f %%: %d UDP + %d "
                  "HTTP announces/s" % (capacity, ARGS.capacity_runs, ARGS.fraction * 100, rate,
                                        ARGS.http_rate), flush=True)
        header = ("%6s %9s %5s %9s %9s %8s %8s %7s %7s %9s %8s"
                  % ("t_s", "rss_kb", "fds", "udp/s", "http/s", "err", "timeout", "p99_us",
                     "cpu_%", "peers", "torrents"))
        print(header, flush=True)
        t0 = time.monotonic()
        end = t0 + ARGS.minutes * 60
        k = 0
        _, _, cpu_prev = proc_figures(pid)
        t_prev = time.monotonic()
        while time.monotonic() < end:
            k += 1
            seconds = min(ARGS.sample_seconds, max(1.0, end - time.monotonic()))
            runs = [(loadgen_args("udp", tracker.udp_port, "--no-prepopulate", "--duration",
                                  seconds, "--rate", rate, "--run", k), seconds + 30)]
            if ARGS.http_rate > 0:
                runs.append((loadgen_args("http-close", tracker.http_port, "--no-prepopulate",
                                          "--duration", seconds, "--rate", ARGS.http_rate,
                                          "--connections", 4, "--run", k), seconds + 30))
            results = [(phases.get("steady", {}), err) for phases, err in run_side_by_side(runs)]
            if not tracker.alive():
                failures.append("the tracker exited (%s) at %.0f s"
                                % (tracker.proc.returncode, time.monotonic() - t0))
                break
            rss_kb, fds, cpu = proc_figures(pid)
            now = time.monotonic()
            cpu_pct = 100 * (cpu - cpu_prev) / max(1e-9, now - t_prev)
            cpu_prev, t_prev = cpu, now
            peers, torrents = swarm_gauges(tracker)
            udp = results[0][0]
            http = results[1][0] if len(results) > 1 else {}
            errors = sum(int(r.get("errors", 0)) for r, _ in results)
            timeouts = sum(int(r.get("timeouts", 0)) for r, _ in results)
            for r, err in results:
                if (not r or int(r.get("errors", 0)) or int(r.get("timeouts", 0))) and err.strip():
                    print(err.rstrip(), file=sys.stderr)
                if not r:
                    failures.append("a generator run reported no steady phase at sample %d" % k)
            row = {"t": now - t0, "rss": rss_kb, "fds": fds, "udp": float(udp.get("rate", 0)),
                   "http": float(http.get("rate", 0)), "errors": errors, "timeouts": timeouts,
                   "p99": int(udp.get("p99_us", 0)), "cpu": cpu_pct, "peers": peers,
                   "torrents": torrents}
            rows.append(row)
            print("%6.0f %9d %5d %9.0f %9.0f %8d %8d %7d %7.0f %9d %8d"
                  % (row["t"], rss_kb, fds, row["udp"], row["http"], errors, timeouts,
                     row["p99"], cpu_pct, peers, torrents), flush=True)
    finally:
        rc = None
        try:
            rc = tracker.stop()
        finally:
            if ARGS.keep_log:
                with open(ARGS.keep_log, "w") as f:
                    f.write(tracker.log_text(full=True))
            tracker.cleanup()
    if rc != 0:
        failures.append("the tracker's stop exited %r" % rc)
    return verdict(rows, capacity, rate, failures)


def verdict(rows, capacity, rate, failures):
    warm = [r for r in rows if r["t"] >= ARGS.warmup_minutes * 60]
    print()
    if capacity is not None:
        print("capacity (closed loop, one worker, UDP): %.0f announces/s" % capacity)
    if rows:
        span = rows[-1]["t"]
        total_udp = statistics.mean(r["udp"] for r in rows)
        print("soak: %.1f min, %d samples, target %d UDP/s (mean achieved %.0f) + %.0f HTTP/s"
              % (span / 60, len(rows), rate, total_udp, ARGS.http_rate))
    errors = sum(r["errors"] for r in rows)
    timeouts = sum(r["timeouts"] for r in rows)
    print("errors: %d, timeouts: %d" % (errors, timeouts))
    if errors or timeouts:
        failures.append("%d errors and %d timeouts" % (errors, timeouts))
    if len(warm) >= 2:
        base, last = warm[0]["rss"], warm[-1]["rss"]
        growth = 100.0 * (last - base) / base
        peak = max(r["rss"] for r in warm)
        print("RSS: %d kB at warm-up end (t=%.0f s), %d kB at the end, peak %d kB: growth %.2f %%"
              % (base, warm[0]["t"], last, peak, growth))
        if growth >= ARGS.max_rss_growth:
            failures.append("RSS grew %.2f %% after warm-up (limit %.1f %%)"
                            % (growth, ARGS.max_rss_growth))
        fds = [r["fds"] for r in warm]
        print("descriptors after warm-up: min %d, max %d, first %d, last %d"
              % (min(fds), max(fds), fds[0], fds[-1]))
        if max(fds) - min(fds) > ARGS.fd_tolerance:
            failures.append("descriptors moved from %d to %d after warm-up (tolerance %d)"
                            % (min(fds), max(fds), ARGS.fd_tolerance))
        peers = [r["peers"] for r in warm]
        print("live peers after warm-up: %d..%d of %d announced (the rest expired or stopped)"
              % (min(peers), max(peers), ARGS.torrents * ARGS.peers_per_torrent))
    else:
        failures.append("fewer than 2 samples after warm-up: no RSS or descriptor verdict")
    print("verdict: %s" % ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, OSError) as e:
        print("soak: %s" % e, file=sys.stderr)
        sys.exit(2)
