"""Runs the storage conformance suite against the postgres driver on a throwaway PostgreSQL."""
# Usage (ctest does this): run_with_postgres.py <storage_conformance> [args...]
# CHIHAYA_PLUGIN / CHIHAYA_DRIVER come from the environment as for any driver; conninfo is put in
# front of any CHIHAYA_DRIVER_CONFIG overrides. The suite also gets:
#   CHIHAYA_TEST_PG_ADMIN     a conninfo (unix socket, trust) for its own SQL
#   CHIHAYA_TEST_PG_PASSWORD  the password in conninfo: no log line may contain it
#   CHIHAYA_TEST_PG_CONTROL   a unix socket: send "stop\n" or "start\n", read "ok\n" (or an error
#                             line); the server stays this fixture's, so teardown is ours.

import os
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import postgres_fixture  # noqa: E402

SUITE_TIMEOUT_S = 300


def serve_control(server, listener):
    """Answers stop/start requests from the suite, one connection at a time."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return  # closed at teardown
        with conn:
            conn.settimeout(60)
            try:
                command = conn.makefile("r").readline().strip()
                if command == "stop":
                    server.stop()
                elif command == "start":
                    server.start()
                else:
                    raise ValueError("unknown command %r" % command)
                conn.sendall(b"ok\n")
            except Exception as e:  # reported to the suite, which fails the test case
                try:
                    conn.sendall(("error: %s\n" % str(e).replace("\n", " ")).encode())
                except OSError:
                    pass


def main(argv):
    if not argv:
        print("usage: run_with_postgres.py <storage_conformance> [args...]", file=sys.stderr)
        return 2
    if not postgres_fixture.have_postgres():
        print("PostgreSQL server binaries not found in %s (apt-get install postgresql)"
              % postgres_fixture.PG_BIN, file=sys.stderr)
        return 2
    with postgres_fixture.PostgresServer() as server:
        control_path = os.path.join(server.dir, "control.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(control_path)
        listener.listen(1)
        thread = threading.Thread(target=serve_control, args=(server, listener), daemon=True)
        thread.start()
        extra = os.environ.get("CHIHAYA_DRIVER_CONFIG", "")
        env = dict(os.environ,
                   CHIHAYA_DRIVER_CONFIG="\n".join(["conninfo=" + server.conninfo, extra]).strip(),
                   CHIHAYA_TEST_PG_ADMIN=server.socket_conninfo,
                   CHIHAYA_TEST_PG_PASSWORD=postgres_fixture.PASSWORD,
                   CHIHAYA_TEST_PG_CONTROL=control_path)
        print("postgres on 127.0.0.1:%d" % server.port, flush=True)
        try:
            return subprocess.run(argv, env=env, timeout=SUITE_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            print("storage conformance suite did not finish within %d s" % SUITE_TIMEOUT_S,
                  file=sys.stderr)
            return 1
        finally:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of serve_control
            except OSError:
                pass
            listener.close()
            thread.join(timeout=5)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
