"""Runs the cache conformance suite against the redis driver on a throwaway redis-server."""
# Usage (ctest does this): run_with_redis.py [--cluster | --unix] <chihaya-conformance> [args...]
# The Redis address (and cluster = true) is added to the kit's arguments as --set KEY=VALUE,
# before the given ones, so a later --set still overrides.

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import redis_fixture  # noqa: E402

SUITE_TIMEOUT_S = 300


def main(argv):
    cluster = unix = False
    if argv and argv[0] == "--cluster":
        cluster, argv = True, argv[1:]
    elif argv and argv[0] == "--unix":
        unix, argv = True, argv[1:]
    if not argv:
        print("usage: run_with_redis.py [--cluster | --unix] <chihaya-conformance> [args...]",
              file=sys.stderr)
        return 2
    if not redis_fixture.have_redis():
        print("redis-server/redis-cli not installed", file=sys.stderr)
        return 2
    server = redis_fixture.RedisCluster() if cluster else redis_fixture.RedisServer()
    with server:
        # Every seed for a cluster: the driver must accept a list and learn the slots from any.
        address = (server.addresses if cluster else
                   server.unix_address if unix else server.address)
        sets = ["--set", "addresses=" + address]
        if cluster:
            sets += ["--set", "cluster=true"]
        print("redis %s at %s" % ("cluster" if cluster else "server", address), flush=True)
        try:
            return subprocess.run(argv[:1] + sets + argv[1:], timeout=SUITE_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            print("conformance suite did not finish within %d s" % SUITE_TIMEOUT_S, file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
