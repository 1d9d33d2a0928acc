"""Runs real redis-server processes (one node or a 3-node cluster) on free loopback ports."""
# Stdlib only, like tracker_fixture.py: used by tests/integration/test_redis*.py and by
# tests/conformance/run_with_redis.py. Every wait is bounded; every process is ours to stop.

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import ports

REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")
REDIS_CLI = os.environ.get("REDIS_CLI", "/usr/bin/redis-cli")

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
CLUSTER_TIMEOUT_S = 20.0
# The cluster bus listens on port + 10000: both must be free for a cluster node.
CLUSTER_BUS_OFFSET = 10000


def _port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(taken=()):
    """A loopback TCP port whose cluster bus port (port + 10000) is free as well.

    Both are drawn below the kernel's ephemeral range: a port from there (bind to 0) stays free
    only until some outgoing connection takes it as its source port, and a starting cluster opens
    many (redis-cli, the nodes' bus links), so a bus port checked free a moment ago was sometimes
    taken by the time its node listened on it ("Address already in use"). ports.py says more."""
    fallback = (ports.kernel_port(HOST) for _ in range(50))
    for port in itertools.chain(ports.candidates(span=CLUSTER_BUS_OFFSET), fallback):
        if port in taken or port + CLUSTER_BUS_OFFSET > 65535:
            continue
        if _port_free(port) and _port_free(port + CLUSTER_BUS_OFFSET):
            return port
    raise RuntimeError("no loopback port free together with its cluster bus port")


class RedisServer:
    """One redis-server. `cluster=True` starts it cluster-enabled (RedisCluster joins them)."""

    def __init__(self, port=None, password=None, cluster=False, node_timeout_ms=2000):
        self.host = HOST
        self.node_timeout_ms = node_timeout_ms
        self.port = port or free_port()
        self.password = password
        self.cluster = cluster
        self._tmp = tempfile.TemporaryDirectory(prefix="chihaya-redis-")
        self.dir = self._tmp.name
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    @property
    def unix_address(self):
        """The same server on its unix socket, as the driver's addresses key spells it."""
        return "unix:" + os.path.join(self.dir, "redis.sock")

    def _args(self):
        args = [REDIS_SERVER, "--bind", self.host, "--port", str(self.port), "--dir", self.dir,
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", self.log_path,
                "--unixsocket", os.path.join(self.dir, "redis.sock"), "--unixsocketperm", "700"]
        if self.password is not None:
            args += ["--requirepass", self.password]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", str(self.node_timeout_ms)]
        return args

    def start(self):
        if self.alive():
            return self
        self.proc = subprocess.Popen(self._args(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited with %d during start-up:\n%s"
                                   % (self.proc.returncode, self.log_text()))
            if self._ping():
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("redis-server on %s did not answer PING within %.0f s:\n%s"
                                   % (self.address, START_TIMEOUT_S, self.log_text()))
            time.sleep(0.05)

    def restart(self):
        """Starts again on the same port (and dir) after stop() or kill()."""
        self.stop()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _port_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.start()

    def _ping(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                if self.password is not None:
                    s.sendall(_resp("AUTH", self.password))
                    if not _read_line(s).startswith(b"+OK"):
                        return False
                s.sendall(_resp("PING"))
                return _read_line(s).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        """SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL, each bounded."""
        if not self.alive():
            return
        try:
            self.cli("SHUTDOWN", "NOSAVE", timeout=STOP_TIMEOUT_S)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self):
        """SIGKILL: the crash case. The process is reaped before this returns."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def pause(self):
        """SIGSTOP: Redis accepts connections (the kernel does) but never answers: 'slow'."""
        if self.alive():
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cli(self, *args, timeout=10.0):
        """Runs redis-cli against this server; returns stdout (raises on a non-zero exit)."""
        cmd = [REDIS_CLI, "-h", self.host, "-p", str(self.port)]
        if self.password is not None:
            cmd += ["-a", self.password, "--no-auth-warning"]
        cmd += [str(a) for a in args]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("redis-cli %s failed (%d): %s"
                               % (" ".join(map(str, args)), p.returncode,
                                  p.stderr.decode("utf-8", "replace")))
        return p.stdout.decode("utf-8", "replace")

    def info(self, section="default"):
        """INFO <section> as a dict of strings."""
        out = {}
        for line in self.cli("INFO", section).splitlines():
            line = line.strip()
            if not line or line.startswith("#") or ":" not in line:
                continue
            k, _, v = line.partition(":")
            out[k] = v
        return out

    def info_cluster(self):
        """CLUSTER INFO as a dict of strings."""
        out = {}
        for line in self.cli("CLUSTER", "INFO").splitlines():
            k, _, v = line.strip().partition(":")
            if k:
                out[k] = v
        return out

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def cleanup(self):
        self.kill()
        self._tmp.cleanup()

    def __enter__(self):
        try:
            return self.start()
        except Exception:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            self.cleanup()


class RedisCluster:
    """`nodes` cluster-enabled masters holding all 16384 slots between them; with `replica`,
    one more node replicating the first master (`self.replica`), known to every node."""

    def __init__(self, nodes=3, password=None, replica=False, node_timeout_ms=2000):
        self.count = nodes
        self.password = password
        self.with_replica = replica
        self.node_timeout_ms = node_timeout_ms
        self.nodes = []
        self.replica = None

    @property
    def addresses(self):
        return ",".join(n.address for n in self.nodes)

    def start(self):
        taken = set()
        for _ in range(self.count + (1 if self.with_replica else 0)):
            port = free_port(taken)
            taken.update((port, port + CLUSTER_BUS_OFFSET))
            self.nodes.append(RedisServer(port=port, password=self.password, cluster=True,
                                          node_timeout_ms=self.node_timeout_ms))
        if self.with_replica:
            self.replica = self.nodes.pop()
        try:
            for n in self.nodes + ([self.replica] if self.replica else []):
                n.start()
            args = ["--cluster", "create"] + [n.address for n in self.nodes] + [
                "--cluster-replicas", "0", "--cluster-yes"]
            self.nodes[0].cli(*args, timeout=CLUSTER_TIMEOUT_S)
            self._wait_ok()
            if self.replica:
                self._add_replica()
        except Exception:
            self.cleanup()
            raise
        return self

    def _wait_ok(self):
        deadline = time.monotonic() + CLUSTER_TIMEOUT_S
        while True:
            states = [n.info_cluster().get("cluster_state") for n in self.nodes]
            if all(s == "ok" for s in states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("cluster not ok within %.0f s: %r" % (CLUSTER_TIMEOUT_S, states))
            time.sleep(0.1)

    def _add_replica(self):
        master = self.nodes[0]
        master_id = master.cli("CLUSTER", "MYID").strip()
        master.cli("--cluster", "add-node", self.replica.address, master.address,
                   "--cluster-slave", "--cluster-master-id", master_id, timeout=CLUSTER_TIMEOUT_S)
        replica_id = self.replica.cli("CLUSTER", "MYID").strip()
        deadline = time.monotonic() + CLUSTER_TIMEOUT_S
        while True:
            synced = self.replica.info("replication").get("master_link_status") == "up"
            known = all(" slave " in _node_line(n.cli("CLUSTER", "NODES"), replica_id)
                        for n in self.nodes)
            if synced and known:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("replica %s not synced and known within %.0f s"
                                   % (self.replica.address, CLUSTER_TIMEOUT_S))
            time.sleep(0.1)

    def all_nodes(self):
        return self.nodes + ([self.replica] if self.replica else [])

    def stop(self):
        for n in self.all_nodes():
            n.stop()

    def cleanup(self):
        for n in self.all_nodes():
            n.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            self.stop()
        finally:
            self.cleanup()


def _node_line(cluster_nodes, node_id):
    """The line of CLUSTER NODES output describing `node_id` (padded with spaces), or ""."""
    for line in cluster_nodes.splitlines():
        if line.startswith(node_id):
            return " %s " % line.replace(",", " ")
    return ""


def _resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(b), b)
    return out


def _read_line(sock):
    data = b""
    while not data.endswith(b"\r\n") and len(data) < 4096:
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def have_redis():
    """True when the redis-server and redis-cli binaries exist (tests skip otherwise)."""
    return os.access(REDIS_SERVER, os.X_OK) and shutil.which(REDIS_CLI) is not None
