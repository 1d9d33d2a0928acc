#!/usr/bin/env python3
"""bench/private.py: private mode against open mode on one core, same generator, same workload.

Starts a throwaway PostgreSQL (tests/integration/postgres_fixture.py) holding one user per
--passkeys and every torrent of the workload, then for each run starts chihaya twice on core
TASKSET_TRACKER, open and private (memory cache), fills the swarms and measures each mode's
steady announces/s with chihaya_loadgen on core TASKSET_LOADGEN (passkeys in the URLs in private
mode: /<passkey>/announce over HTTP, BEP 41 URL data over UDP). Prints medians and the ratio; the
issue's target is private >= 80 % of open.

Environment: BUILD_DIR=build RUNS=3 DURATION=5 TORRENTS=100000 PEERS_PER_TORRENT=5 USERS=100000
             MODES="udp http" TASKSET_TRACKER=0 TASKSET_LOADGEN=1
             FLUSH_MS=3000 MAX_BATCH=100000 (the private tracker's flush settings. PostgreSQL
             shares this machine's two cores: its applies compete with the tracker and the
             generator. FLUSH_MS=600000 MAX_BATCH=10000000 measures the announce path alone.)
Loopback only; every run is bounded by DURATION and the generator's own caps.
"""

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")

BUILD = os.path.abspath(os.environ.get("BUILD_DIR", os.path.join(REPO, "build")))
os.environ.setdefault("CHIHAYA_BIN", os.path.join(BUILD, "chihaya"))
os.environ.setdefault("CHIHAYA_PLUGINS_DIR", os.path.join(BUILD, "plugins"))
from postgres_fixture import PostgresServer  # noqa: E402
from tracker_fixture import V4, Tracker, addr_port  # noqa: E402

LOADGEN = os.path.join(BUILD, "chihaya_loadgen")
RUNS = int(os.environ.get("RUNS", "3"))
DURATION = os.environ.get("DURATION", "5")
TORRENTS = int(os.environ.get("TORRENTS", "100000"))
PEERS = int(os.environ.get("PEERS_PER_TORRENT", "5"))
USERS = int(os.environ.get("USERS", "100000"))
MODES = os.environ.get("MODES", "udp http").split()
CORE_TRACKER = os.environ.get("TASKSET_TRACKER", "0")
CORE_LOADGEN = os.environ.get("TASKSET_LOADGEN", "1")
FLUSH_MS = int(os.environ.get("FLUSH_MS", "3000"))
MAX_BATCH = int(os.environ.get("MAX_BATCH", "100000"))
WORKLOAD = ["--torrents", str(TORRENTS), "--peers-per-torrent", str(PEERS)]


def loadgen(*args, cpus=CORE_LOADGEN, timeout=600):
    cmd = ([] if not cpus else ["taskset", "-c", cpus]) + [LOADGEN] + list(args)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("chihaya_loadgen %s failed:\n%s" % (" ".join(args), p.stderr.decode()))
    return p.stdout.decode()


def parse(out):
    return {r["phase"]: r for r in (dict(kv.split("=", 1) for kv in line.split())
                                    for line in out.splitlines() if "phase=" in line)}


def fill_registry(pg):
    """One user per bench passkey, every torrent of the workload, in one SQL file each."""
    hashes = loadgen("--print-info-hashes", *WORKLOAD, cpus=None).split()
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write("INSERT INTO users (id, passkey) SELECT i + 1, 'bench' || lpad(i::text, 27, '0') "
                "FROM generate_series(0, %d) AS i;\n" % (USERS - 1))
        for start in range(0, len(hashes), 10000):
            chunk = hashes[start:start + 10000]
            f.write("INSERT INTO torrents (id, info_hash) VALUES %s;\n" % ",".join(
                "(%d, decode('%s', 'hex'))" % (start + i + 1, h) for i, h in enumerate(chunk)))
        path = f.name
    try:
        pg.sql_file(path, timeout=600)
    finally:
        os.unlink(path)


def measure(tracker, mode, passkeys):
    extra = ["--passkeys", str(USERS)] if passkeys else []
    target = addr_port(V4, tracker.udp_port if mode == "udp" else tracker.http_port)
    fill = parse(loadgen("--mode", "udp", "--target", addr_port(V4, tracker.udp_port),
                         "--prepopulate-only", *WORKLOAD, *extra))["prepopulate"]
    if fill["errors"] != "0" or fill["timeouts"] != "0":
        raise RuntimeError("prepopulate: %r\n%s" % (fill, tracker.log_text()))
    steady = parse(loadgen("--mode", mode, "--target", target, "--no-prepopulate",
                           "--duration", DURATION, *WORKLOAD, *extra))["steady"]
    if steady["errors"] != "0" or steady["timeouts"] != "0":
        raise RuntimeError("steady: %r\n%s" % (steady, tracker.log_text()))
    return float(steady["rate"]), int(steady["p99_us"])


def main():
    if not os.access(LOADGEN, os.X_OK):
        sys.exit("bench/private.py: build first (%s missing)" % LOADGEN)
    results = {(m, p): [] for m in MODES for p in ("open", "private")}
    with PostgresServer(settings={"fsync": "off"}) as pg:
        t0 = time.monotonic()
        fill_registry(pg)
        print("registry: %d users, %d torrents in %.1f s" % (USERS, TORRENTS, time.monotonic() - t0))
        spool = tempfile.mkdtemp(prefix="chihaya-bench-spool-")
        for run in range(RUNS):
            for private in (False, True):
                # The workload fills every torrent from one address: [limits] off, or the
                # figures would measure the flood defences' refusals.
                overrides = {"workers": {"threads": 1}, "log": {"level": "warning"},
                             "limits": {"max_torrents": 0, "max_peers": 0, "max_peers_per_address": 0,
                                        "new_torrents_per_address": 0}}
                if private:
                    overrides.update({
                        "tracker": {"mode": "private"},
                        "storage": {"driver": "postgres", "spool_dir": spool, "flush_interval_ms": FLUSH_MS,
                                    "max_batch": MAX_BATCH},
                        "storage.postgres": {"conninfo": pg.conninfo},
                    })
                t = Tracker(overrides, threads=1, log_level="warning",
                            wrapper=["taskset", "-c", CORE_TRACKER] if CORE_TRACKER else [])
                try:
                    t.start()
                    for mode in MODES:
                        rate, p99 = measure(t, mode, private)
                        results[(mode, "private" if private else "open")].append((rate, p99))
                        print("run %d %-7s %-4s %10.0f announces/s  p99 %6d us"
                              % (run + 1, "private" if private else "open", mode, rate, p99), flush=True)
                    t.stop_checked(signal.SIGTERM)
                finally:
                    t.cleanup()
    print("\nmedians of %d runs, tracker on core %s, generator on core %s" % (RUNS, CORE_TRACKER, CORE_LOADGEN))
    print("| mode | open announces/s | private announces/s | private / open | p99 open / private |")
    print("|---|---|---|---|---|")
    for mode in MODES:
        o = statistics.median(r for r, _ in results[(mode, "open")])
        p = statistics.median(r for r, _ in results[(mode, "private")])
        po = statistics.median(q for _, q in results[(mode, "open")])
        pp = statistics.median(q for _, q in results[(mode, "private")])
        print("| %s | %.0f | %.0f | %.1f %% | %d / %d us |" % (mode, o, p, 100.0 * p / o, po, pp))


if __name__ == "__main__":
    main()
