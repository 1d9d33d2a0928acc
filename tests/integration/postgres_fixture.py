"""Runs a throwaway PostgreSQL server (initdb + postgres) on a free loopback port, schema applied."""
# Stdlib only, like redis_fixture.py: used by tests/conformance/run_with_postgres.py, by
# bench/postgres_flush.py and by any private-mode test:
#
#     with PostgresServer() as pg:
#         pg.sql("INSERT INTO users (id, passkey) VALUES (1, 'abc')")
#         chihaya_config = 'conninfo = "%s"' % pg.conninfo
#         pg.stop(); ...; pg.start()        # an outage, same data dir and port
#
# PostgreSQL refuses to run as root: as root, initdb and postgres run as the `postgres` system
# user (Debian's postgresql package creates it) through Popen(user=...), so that the process we
# hold is the postmaster itself and kill() reaches it; as any other user they run directly.
# Every wait is bounded; every process is ours to stop. The data dir is deleted on exit.

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import ports

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"
DATABASE = "chihaya"
USER = "chihaya"
PASSWORD = "fixture-secret-pw"  # scram over TCP: the driver's conninfo really carries a password
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
SQL_TIMEOUT_S = 60.0
SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "etc", "postgres",
                      "schema.sql")


def have_postgres():
    """True when the server binaries exist (tests skip otherwise)."""
    return all(os.access(os.path.join(PG_BIN, b), os.X_OK) for b in ("initdb", "postgres", "psql"))


def free_port():
    """A loopback port below the ephemeral range (ports.py says why)."""
    for port in ports.candidates():
        if _port_free(port):
            return port
    return ports.kernel_port(HOST)


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


class PostgresServer:
    """One PostgreSQL server with database `chihaya` and etc/postgres/schema.sql applied.

    conninfo: what the driver's `conninfo` key takes (TCP, password auth).
    sql(query): runs psql -At over the unix socket; returns stdout without the trailing newline.
    stop() / start(): a clean outage on the same data dir and port; kill(): SIGKILL, the crash.
    `settings` are extra `-c name=value` server settings (the bench turns fsync back on).
    """

    def __init__(self, port=None, schema=SCHEMA, settings=None):
        self.host = HOST
        self.port = port or free_port()
        self.schema = schema
        self.settings = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        self.settings.update(settings or {})
        self._tmp = tempfile.TemporaryDirectory(prefix="chihaya-pg-")
        self.dir = self._tmp.name
        self.data_dir = os.path.join(self.dir, "data")
        self.socket_dir = os.path.join(self.dir, "sock")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.proc = None
        self._log = None
        self._as = None  # (uid, gid) to run the server as, when we are root
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and no `postgres` user: "
                                   "apt-get install postgresql creates it")
            self._as = (pw.pw_uid, pw.pw_gid)

    @property
    def conninfo(self):
        return ("host=%s port=%d dbname=%s user=%s password=%s"
                % (self.host, self.port, DATABASE, USER, PASSWORD))

    @property
    def socket_conninfo(self):
        return "host=%s port=%d dbname=%s user=%s" % (self.socket_dir, self.port, DATABASE, USER)

    # -- processes -------------------------------------------------------------------------

    def _popen_args(self):
        if self._as is None:
            return {}
        return {"user": self._as[0], "group": self._as[1], "extra_groups": []}

    def _run_as_server_user(self, args, timeout):
        p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, cwd=self.dir,
                           **self._popen_args())
        if p.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s" % (os.path.basename(args[0]), p.returncode,
                                                          p.stdout.decode("utf-8", "replace")))

    def _initdb(self):
        os.makedirs(self.socket_dir)
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        if self._as is not None:
            for path in (self.dir, self.socket_dir, pwfile):
                os.chown(path, *self._as)
        os.chmod(self.dir, 0o700)
        self._run_as_server_user(
            [os.path.join(PG_BIN, "initdb"), "-D", self.data_dir, "-U", USER, "-E", "UTF8",
             "--locale=C", "--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256",
             "--pwfile=" + pwfile], timeout=120)
        os.unlink(pwfile)

    def start(self):
        """Starts the server (initdb and schema the first time); returns self."""
        if self.alive():
            return self
        first = not os.path.exists(self.data_dir)
        if first:
            self._initdb()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _port_free(self.port):  # after stop()/kill(): the old one may still hold it
            if time.monotonic() > deadline:
                raise RuntimeError("port %d still busy" % self.port)
            time.sleep(0.05)
        args = [os.path.join(PG_BIN, "postgres"), "-D", self.data_dir, "-p", str(self.port),
                "-c", "listen_addresses=" + self.host, "-c", "unix_socket_directories=" + self.socket_dir,
                "-c", "max_connections=50", "-c", "logging_collector=off"]
        for k, v in self.settings.items():
            args += ["-c", "%s=%s" % (k, v)]
        while True:
            self._log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT, cwd=self.dir,
                                         **self._popen_args())
            started = self._wait_ready(deadline)
            if started:
                break
            # Backends of a killed postmaster can hold its shared memory for a moment: retry.
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("postgres on port %d did not start within %.0f s:\n%s"
                                   % (self.port, START_TIMEOUT_S, self.log_text()))
            time.sleep(0.2)
        if first:
            self._psql(["-d", "postgres", "-c", "CREATE DATABASE %s" % DATABASE])
            self.apply_schema()
        return self

    def _wait_ready(self, deadline):
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            p = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-q", "-h", self.socket_dir,
                                "-p", str(self.port), "-t", "1"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=5)
            if p.returncode == 0:
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        """Fast shutdown (SIGINT: sessions are disconnected), then SIGKILL, each bounded."""
        if not self.alive():
            self._close_log()
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_log()

    def kill(self):
        """SIGKILL the postmaster: the crash case. Reaped before this returns."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._close_log()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _close_log(self):
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- SQL -------------------------------------------------------------------------------

    def _psql(self, args, timeout=SQL_TIMEOUT_S, input_text=None):
        cmd = [os.path.join(PG_BIN, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
               "-h", self.socket_dir, "-p", str(self.port), "-U", USER] + args
        p = subprocess.run(cmd, input=input_text.encode() if input_text is not None else None,
                           stdin=None if input_text is not None else subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("psql failed (%d): %s" % (p.returncode,
                                                         p.stderr.decode("utf-8", "replace")))
        out = p.stdout.decode("utf-8", "replace")
        return out[:-1] if out.endswith("\n") else out

    def sql(self, query, timeout=SQL_TIMEOUT_S):
        """Runs `query` (one or more statements) in database chihaya; returns psql -At output."""
        return self._psql(["-d", DATABASE, "-c", query], timeout=timeout)

    def sql_file(self, path, timeout=SQL_TIMEOUT_S):
        return self._psql(["-d", DATABASE, "-f", path], timeout=timeout)

    def apply_schema(self):
        return self.sql_file(self.schema)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    # -- lifetime --------------------------------------------------------------------------

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


def main():
    """python3 postgres_fixture.py: start one, check the schema applies twice, stop."""
    with PostgresServer() as pg:
        pg.apply_schema()  # idempotent
        print(pg.sql("SELECT count(*) FROM information_schema.tables WHERE table_schema='public'"))
        print(pg.conninfo.replace(PASSWORD, "***"))


if __name__ == "__main__":
    main()
