"""Runs redis_limits_test (the redis driver's ABI 2.3 budgets) on a throwaway Redis."""
# Usage (ctest does this): run_redis_limits.py [--cluster] <redis_limits_test> [doctest args...]
# The plugin is CHIHAYA_PLUGIN, or <build>/plugins/chihaya_redis.so next to the test binary's
# build tree (so that tests/mutation_check.py can run it as is). The suite gets the driver's
# config in CHIHAYA_DRIVER_CONFIG and the nodes to read the store from in
# CHIHAYA_TEST_REDIS_NODES ("host:port,..."), CHIHAYA_TEST_REDIS_CLUSTER=1 for a cluster.

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import redis_fixture  # noqa: E402

SUITE_TIMEOUT_S = 240


def main(argv):
    cluster = bool(argv) and argv[0] == "--cluster"
    if cluster:
        argv = argv[1:]
    if not argv:
        print("usage: run_redis_limits.py [--cluster] <redis_limits_test> [args...]", file=sys.stderr)
        return 2
    if not redis_fixture.have_redis():
        print("redis-server/redis-cli not installed", file=sys.stderr)
        return 2
    binary = os.path.abspath(argv[0])
    build = os.path.dirname(os.path.dirname(os.path.dirname(binary)))  # <build>/tests/bin/x
    env = dict(os.environ)
    env.setdefault("CHIHAYA_PLUGIN", os.path.join(build, "plugins", "chihaya_redis.so"))
    env["CHIHAYA_DRIVER"] = "redis"
    server = redis_fixture.RedisCluster() if cluster else redis_fixture.RedisServer()
    with server:
        if cluster:
            address = server.addresses
            env["CHIHAYA_DRIVER_CONFIG"] = 'addresses="%s"\ncluster=true' % address
            env["CHIHAYA_TEST_REDIS_CLUSTER"] = "1"
        else:
            address = server.address
            env["CHIHAYA_DRIVER_CONFIG"] = 'addresses="%s"' % address
        env["CHIHAYA_TEST_REDIS_NODES"] = address
        print("redis %s at %s" % ("cluster" if cluster else "server", address), flush=True)
        try:
            return subprocess.run([binary] + argv[1:], env=env, timeout=SUITE_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            print("suite did not finish within %d s" % SUITE_TIMEOUT_S, file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
