#!/usr/bin/env python3
"""The postgres storage driver's flush benchmark: one throwaway PostgreSQL, postgres_flush in it."""
# Usage: bench/postgres_flush.py [--build-dir build] [--durable] [--set name=value ...]
#                                [postgres_flush args...]
#   --durable   fsync, synchronous_commit and full_page_writes on (the fixture's default is off,
#               as for tests); a production server's commit then costs one WAL flush more.
#   --set       another server setting, e.g. --set shared_buffers=2GB (default 512MB)
# Everything else goes to build/bench/chihaya_postgres_flush (--users, --deltas, --torrents,
# --reader-max, --reader-max-s). Loopback only; the server and its data dir are gone afterwards.

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import postgres_fixture  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"))
    parser.add_argument("--durable", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args, rest = parser.parse_known_args()
    binary = os.path.join(args.build_dir, "chihaya_postgres_flush")
    plugin = os.path.join(args.build_dir, "plugins", "chihaya_postgres.so")
    for path in (binary, plugin):
        if not os.path.exists(path):
            sys.exit("%s not built (cmake --build %s -j2)" % (path, args.build_dir))
    settings = {"shared_buffers": "512MB", "max_wal_size": "4GB", "checkpoint_timeout": "30min"}
    if args.durable:
        settings.update({"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"})
    for pair in args.set:
        name, _, value = pair.partition("=")
        settings[name] = value
    print("settings %s" % " ".join("%s=%s" % kv for kv in sorted(settings.items())), flush=True)
    with postgres_fixture.PostgresServer(settings=settings) as pg:
        print("postgres 127.0.0.1:%d durable=%s" % (pg.port, args.durable), flush=True)
        env = dict(os.environ, CHIHAYA_PLUGIN=plugin, CHIHAYA_DRIVER="postgres",
                   CHIHAYA_DRIVER_CONFIG="conninfo=%s\nstatement_timeout_ms=600000" % pg.conninfo,
                   CHIHAYA_BENCH_ADMIN=pg.socket_conninfo)
        return subprocess.run([binary] + rest, env=env, timeout=3600).returncode


if __name__ == "__main__":
    sys.exit(main())
