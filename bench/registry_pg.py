#!/usr/bin/env python3
"""bench/registry_pg.py: how long a private tracker takes to load a large registry from PostgreSQL.

Fills a throwaway PostgreSQL (tests/integration/postgres_fixture.py) with USERS users and TORRENTS
torrents, starts chihaya in private mode against it, and prints the tracker's own line:
"registry loaded: N users, M torrents, ... in S s, R MiB", plus the driver's progress lines.

Environment: BUILD_DIR=build USERS=1000000 TORRENTS=1000000
"""

import os
import re
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
import tracker_fixture  # noqa: E402
from postgres_fixture import PostgresServer  # noqa: E402

USERS = int(os.environ.get("USERS", "1000000"))
TORRENTS = int(os.environ.get("TORRENTS", "1000000"))
tracker_fixture.START_TIMEOUT_S = 120.0


def main():
    with PostgresServer() as pg:
        t0 = time.monotonic()
        # 32-character passkeys and 20-byte info_hashes, as a web application has them.
        pg.sql("INSERT INTO users (id, passkey) SELECT i, md5(i::text) FROM generate_series(1, %d) i"
               % USERS, timeout=600)
        pg.sql("INSERT INTO torrents (id, info_hash) SELECT i, decode(lpad(to_hex(i), 40, '0'), 'hex') "
               "FROM generate_series(1, %d) i" % TORRENTS, timeout=600)
        pg.sql("VACUUM ANALYZE users, torrents", timeout=600)
        print("database filled in %.1f s" % (time.monotonic() - t0), flush=True)
        spool = tempfile.mkdtemp(prefix="chihaya-bench-spool-")
        t = tracker_fixture.Tracker({
            "tracker": {"mode": "private"},
            "storage": {"driver": "postgres", "spool_dir": spool},
            "storage.postgres": {"conninfo": pg.conninfo},
        }, threads=1)
        try:
            t.start()
            log = t.log_text(full=True)
            for line in log.splitlines():
                if re.search(r"postgres: |registry loaded", line):
                    print(line)
            t.stop_checked()
        finally:
            t.cleanup()


if __name__ == "__main__":
    main()
