"""Runs the real chihaya binary on free loopback ports and speaks HTTP and BEP 15 UDP to it."""
# Shared by tests/integration, tests/e2e and bench/smoke_test.py: stdlib only, so it runs under
# the system interpreter that python3-libtorrent is built for.

import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import ports

CHIHAYA_BIN = os.environ.get("CHIHAYA_BIN", "")
CHIHAYA_PLUGINS_DIR = os.environ.get("CHIHAYA_PLUGINS_DIR", "")
CHIHAYA_SOURCE_DIR = os.environ.get(
    "CHIHAYA_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

# The build's sanitizer ("address": ASan + UBSan, "thread": TSan, "" for none), set by ctest
# (cmake/sanitizers.cmake): tests that cannot run under it skip themselves with the reason.
SANITIZER = os.environ.get("CHIHAYA_SANITIZE", "")
# The first line of any ASan, LSan, UBSan or TSan report. A report in a tracker's log fails the
# test even when the process exited as the test expected (a leak found at exit, a race).
SANITIZER_REPORT = re.compile(r"^(==\d+==)?(ERROR|WARNING): \w+Sanitizer|^\S+:\d+:\d+: runtime error: ",
                              re.M)

V4 = "127.0.0.1"
V6 = "::1"
FAMILIES = {V4: socket.AF_INET, V6: socket.AF_INET6}

START_TIMEOUT_S = 10.0
SERVING_LINE = "main: serving on"
SERVING_JSON = '"source":"main","message":"serving on'
# Above main.cpp's 5 s shutdown grace: a stop that takes longer is a hang, not a slow drain.
STOP_TIMEOUT_S = 8.0

UDP_PROTOCOL_ID = 0x41727101980
UDP_CONNECT, UDP_ANNOUNCE, UDP_SCRAPE, UDP_ERROR = 0, 1, 2, 3
EVENT_CODES = {None: 0, "none": 0, "completed": 1, "started": 2, "stopped": 3}


def skip_under_sanitizer(test, why):
    """Skips `test` (a TestCase) in a sanitizer build, saying why it cannot run there."""
    if SANITIZER:
        test.skipTest("cannot run under -fsanitize=%s: %s" % (SANITIZER, why))


def assert_no_sanitizer_report(output, what):
    """Raises with the report when `output` (a process's stdout + stderr) holds a sanitizer's."""
    m = SANITIZER_REPORT.search(output)
    if m:
        raise AssertionError("sanitizer report in %s:\n%s" % (what, output[m.start():][:12000]))


def require_binary():
    if not CHIHAYA_BIN or not os.access(CHIHAYA_BIN, os.X_OK):
        raise RuntimeError("CHIHAYA_BIN must name the built chihaya binary (got %r)" % CHIHAYA_BIN)
    if not CHIHAYA_PLUGINS_DIR or not os.path.isdir(CHIHAYA_PLUGINS_DIR):
        raise RuntimeError("CHIHAYA_PLUGINS_DIR must name the build's plugins dir (got %r)"
                           % CHIHAYA_PLUGINS_DIR)


# ---- ports -------------------------------------------------------------------------------------

def _free_on(family, host, kind, port):
    s = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host, port))
        return s.getsockname()[1]
    except OSError:
        return None
    finally:
        s.close()


def free_port(kind, taken=()):
    """A port free for `kind` (SOCK_STREAM/SOCK_DGRAM) on both 127.0.0.1 and ::1.

    Drawn below the ephemeral range (ports.py says why), the kernel's choice as a fallback; free
    on IPv6 too, because the tracker binds both and a port free on one family only would make
    start-up fail for reasons unrelated to the test."""
    for port in ports.candidates() + [0] * 200:
        port = _free_on(socket.AF_INET, V4, kind, port)
        if port and port not in taken and _free_on(socket.AF_INET6, V6, kind, port):
            return port
    raise RuntimeError("no loopback port free on both IPv4 and IPv6")


# ---- a process's figures -----------------------------------------------------------------------

def rss_kib(pid):
    """VmRSS of `pid` in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


def cpu_seconds(pid):
    """User + system CPU time of every thread of `pid` so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- config ------------------------------------------------------------------------------------

def toml_value(v):
    if isinstance(v, bool):  # before int: bool is an int in Python
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError("no TOML form for %r" % (v,))


def render_config(top, tables):
    """`top`: top-level keys; `tables`: {"tracker": {...}, "cache.memory": {...}} in order."""
    lines = ["%s = %s" % (k, toml_value(v)) for k, v in top.items()]
    for name, keys in tables.items():
        lines.append("")
        lines.append("[%s]" % name)
        lines.extend("%s = %s" % (k, toml_value(v)) for k, v in keys.items())
    return "\n".join(lines) + "\n"


def addr_port(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


# ---- the process -------------------------------------------------------------------------------

class Tracker:
    """One chihaya process. `overrides` merges into the tables, e.g. {"tracker": {...}}.

    `binary` runs another chihaya than CHIHAYA_BIN (an installed one); plugins_dir=False leaves
    plugins_dir out of the config, so the binary's default applies."""

    def __init__(self, overrides=None, udp=True, http=True, threads=2, log_level="info",
                 plugins_dir=None, wrapper=(), binary=None, admin=False):
        if binary is None:
            require_binary()
        self.binary = binary or CHIHAYA_BIN
        self.dir = tempfile.TemporaryDirectory(prefix="chihaya-test-")
        self.udp_port = free_port(socket.SOCK_DGRAM) if udp else None
        self.http_port = free_port(socket.SOCK_STREAM) if http else None
        # The admin listener (/metrics, /healthz, /readyz), on 127.0.0.1 only, when asked for.
        self.admin_port = (free_port(socket.SOCK_STREAM, taken=(self.http_port,))
                           if admin else None)
        tables = {
            "tracker": {},
            "udp": {"enabled": udp},
            "http": {"enabled": http},
            "workers": {"threads": threads},
            "log": {"level": log_level},
            "cache": {"driver": "memory"},
            "storage": {"driver": "none"},
        }
        if udp:
            tables["udp"]["listen"] = [addr_port(V4, self.udp_port), addr_port(V6, self.udp_port)]
        if http:
            tables["http"]["listen"] = [addr_port(V4, self.http_port),
                                        addr_port(V6, self.http_port)]
        if admin:
            tables["admin"] = {"listen": addr_port(V4, self.admin_port)}
        for name, keys in (overrides or {}).items():
            tables.setdefault(name, {}).update(keys)
        self.top = {} if plugins_dir is False else {"plugins_dir": plugins_dir or CHIHAYA_PLUGINS_DIR}
        self.tables = tables
        self.config_path = os.path.join(self.dir.name, "chihaya.toml")
        self.write_config(tables)
        self.log_path = os.path.join(self.dir.name, "chihaya.log")
        self.proc = None
        self.stop_seconds = None
        self.wrapper = list(wrapper)  # e.g. unshare(1) options: runs the binary under them
        # Ready means serving: main.cpp logs this once every worker runs (at info and below), in
        # the human format or as a JSON line.
        self.ready_line = None
        if tables["log"].get("level") in ("debug", "info"):
            self.ready_line = (SERVING_JSON if tables["log"].get("format") == "json" else SERVING_LINE)

    def start(self):
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.wrapper + [self.binary, "--config", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        pending = self._probes()
        if self.ready_line:
            pending.append(("the log line %r" % self.ready_line,
                            lambda: self.ready_line in self.log_text()))
        while pending:
            if self.proc.poll() is not None:
                raise RuntimeError("chihaya exited with %d during start-up:\n%s"
                                   % (self.proc.returncode, self.log_text()))
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("chihaya did not answer on %s within %.0f s:\n%s"
                                   % (", ".join(p[0] for p in pending), START_TIMEOUT_S,
                                      self.log_text()))
            pending = [p for p in pending if not p[1]()]
            if pending:
                time.sleep(0.05)
        return self

    def write_config(self, tables=None, text=None):
        """Writes the config file (what a SIGHUP then reads): `tables` rendered, or raw `text`."""
        self.config_text = text if text is not None else render_config(self.top, tables)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.config_text)
        os.replace(tmp, self.config_path)

    def reload(self, overrides=None, text=None):
        """Rewrites the config with `overrides` merged into the running tables (or `text`) and
        sends SIGHUP; returns once the tracker logged the outcome (bounded wait)."""
        if text is None:
            tables = {k: dict(v) for k, v in self.tables.items()}
            for name, keys in (overrides or {}).items():
                tables.setdefault(name, {}).update(keys)
            self.tables = tables
        before = self.log_text(full=True).count("SIGHUP")
        self.write_config(self.tables if text is None else None, text)
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.log_text(full=True).count("SIGHUP") > before:
                time.sleep(0.05)  # the posted [http] settings reach the workers right after
                return
            time.sleep(0.02)
        raise AssertionError("no reload logged within 5 s of SIGHUP:\n" + self.log_text())

    def admin_get(self, path, timeout=5.0):
        """GET on the admin listener: (status, body as text)."""
        url = "http://%s/%s" % (addr_port(V4, self.admin_port), path.lstrip("/"))
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8")

    def metrics(self):
        """The /metrics exposition parsed by prometheus_client's parser (python3-prometheus-client):
        {family name: Metric}; raises if the text does not parse."""
        from prometheus_client.parser import text_string_to_metric_families
        status, text = self.admin_get("/metrics")
        if status != 200:
            raise AssertionError("/metrics answered %d: %s" % (status, text[:200]))
        return {f.name: f for f in text_string_to_metric_families(text)}

    def assert_log_free_of(self, secrets):
        """Fails naming the line when any of `secrets` (str or bytes) appears anywhere in the
        tracker's whole log, so far."""
        with open(self.log_path, "rb") as f:
            data = f.read()
        for secret in secrets:
            needle = secret.encode() if isinstance(secret, str) else secret
            if not needle:
                continue
            for forms in (needle, needle.hex().encode(), urllib.parse.quote_from_bytes(needle).encode()):
                at = data.find(forms)
                if at >= 0:
                    start = data.rfind(b"\n", 0, at) + 1
                    end = data.find(b"\n", at)
                    raise AssertionError("a secret (%r) is in the log: %r"
                                         % (secret, data[start:end if end >= 0 else None]))

    def _probes(self):
        probes = []
        if self.admin_port:
            probes.append(("admin %s" % addr_port(V4, self.admin_port),
                           lambda: self._admin_ready()))
        for host in (V4, V6):
            if self.udp_port:
                probes.append(("udp %s" % addr_port(host, self.udp_port),
                               lambda h=host: self._udp_ready(h)))
            if self.http_port:
                probes.append(("http %s" % addr_port(host, self.http_port),
                               lambda h=host: self._http_ready(h)))
        return probes

    def _admin_ready(self):
        try:
            return self.admin_get("/healthz", timeout=0.5)[0] == 200
        except OSError:
            return False

    def _udp_ready(self, host):
        try:
            with UdpClient(host, self.udp_port, timeout=0.2) as c:
                c.connect()
            return True
        except (OSError, AssertionError):
            return False

    def _http_ready(self, host):
        try:
            socket.create_connection((host, self.http_port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM):
        """Signals the tracker and returns its exit code; raises if it hangs past STOP_TIMEOUT_S."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("chihaya did not exit within %.0f s of %s:\n%s"
                                 % (STOP_TIMEOUT_S, signal.Signals(sig).name, self.log_text()))
        self.stop_seconds = time.monotonic() - t0
        self._log.close()
        return rc

    def stop_checked(self, sig=signal.SIGTERM):
        rc = self.stop(sig)
        if rc != 0:
            raise AssertionError("chihaya exited with %r after %s, expected 0:\n%s"
                                 % (rc, signal.Signals(sig).name, self.log_text()))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self._log.close()  # as stop() does: a killed tracker writes no more

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self, full=False):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
                return text if full else text[-8000:]
        except OSError:
            return ""

    def cleanup(self):
        self.kill()
        log = self.log_text(full=True)
        self.dir.cleanup()
        assert_no_sanitizer_report(log, "the tracker's log")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.stop_checked()
        finally:
            self.cleanup()

    # Shorthands for tests.
    def udp(self, host=V4, timeout=2.0):
        return UdpClient(host, self.udp_port, timeout=timeout)

    def http(self, host=V4, timeout=5.0):
        return HttpConn(host, self.http_port, timeout=timeout)


def start_module_tracker(overrides=None):
    """A Tracker shared by a whole test module (setUpModule); cleaned up if start-up fails."""
    t = Tracker(overrides)
    try:
        return t.start()
    except Exception:
        t.cleanup()
        raise


def stop_module_tracker(t):
    """tearDownModule's half: a clean, checked stop, then the temporary files go."""
    try:
        t.stop_checked()
    finally:
        t.cleanup()


def unittest_main():
    """unittest.main for the test scripts, except that a run with skipped tests and no failures
    exits 77, which ctest (SKIP_RETURN_CODE 77) shows as skipped instead of passed."""
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    if result.skipped:
        print("skipped: %s" % "; ".join("%s: %s" % (t.id(), why) for t, why in result.skipped))
        sys.exit(77)
    sys.exit(0)


def run_binary(args, timeout=15):
    """Runs chihaya with `args` to completion: (exit code, stdout + stderr as text)."""
    require_binary()
    p = subprocess.run([CHIHAYA_BIN] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    output = p.stdout.decode("utf-8", "replace")
    assert_no_sanitizer_report(output, "chihaya %s" % " ".join(args))
    return p.returncode, output


# ---- bencode -----------------------------------------------------------------------------------

class BencodeError(ValueError):
    pass


def bdecode(data):
    value, end = _bdecode_at(data, 0)
    if end != len(data):
        raise BencodeError("%d trailing bytes after the value" % (len(data) - end))
    return value


def _bdecode_at(data, i):
    if i >= len(data):
        raise BencodeError("truncated")
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if c == b"l":
        i += 1
        out = []
        while data[i:i + 1] != b"e":
            v, i = _bdecode_at(data, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        i += 1
        out = {}
        while data[i:i + 1] != b"e":
            k, i = _bdecode_at(data, i)
            if not isinstance(k, bytes):
                raise BencodeError("non-string dict key")
            out[k], i = _bdecode_at(data, i)
        return out, i + 1
    if c.isdigit():
        colon = data.index(b":", i)
        n = int(data[i:colon])
        if colon + 1 + n > len(data):
            raise BencodeError("string past the end")
        return data[colon + 1:colon + 1 + n], colon + 1 + n
    raise BencodeError("unexpected byte %r at %d" % (c, i))


# ---- HTTP --------------------------------------------------------------------------------------

def q(b):
    return urllib.parse.quote_from_bytes(b, safe="")


def announce_path(info_hash, peer_id, port, event=None, left=0, compact=1, numwant=None,
                  uploaded=0, downloaded=0, extra="", passkey=None):
    parts = ["info_hash=" + q(info_hash), "peer_id=" + q(peer_id), "port=%d" % port,
             "uploaded=%d" % uploaded, "downloaded=%d" % downloaded, "left=%d" % left]
    if compact is not None:
        parts.append("compact=%d" % compact)
    if event:
        parts.append("event=" + event)
    if numwant is not None:
        parts.append("numwant=%d" % numwant)
    if extra:
        parts.append(extra)
    return ("/%s/announce?" % passkey if passkey else "/announce?") + "&".join(parts)


def scrape_path(hashes):
    return "/scrape" + ("?" + "&".join("info_hash=" + q(h) for h in hashes) if hashes else "")


class HttpResponse:
    def __init__(self, version, status, reason, headers, body):
        self.version, self.status, self.reason = version, status, reason
        self.headers, self.body = headers, body

    def bencoded(self):
        return bdecode(self.body)

    def __repr__(self):
        return "<HTTP %s %d %s %r>" % (self.version, self.status, self.reason, self.body[:200])


class ConnectionClosed(Exception):
    pass


class HttpConn:
    """A raw HTTP/1.x client on one TCP connection, so tests control keep-alive and bytes."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def get(self, path, version="HTTP/1.1", headers=()):
        head = "GET %s %s\r\nHost: tracker\r\n" % (path, version)
        head += "".join("%s: %s\r\n" % h for h in headers)
        self.send((head + "\r\n").encode("latin-1"))
        return self.read_response()

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise ConnectionClosed("connection closed with %d bytes buffered" % len(self.buf))
        self.buf += chunk

    def read_response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            raise AssertionError("chunked response; trackers answer with Content-Length")
        else:
            body = self.read_to_eof()
        return HttpResponse(version, int(status), reason, headers, body)

    def read_to_eof(self):
        while True:
            try:
                self._fill()
            except ConnectionClosed:
                out, self.buf = self.buf, b""
                return out

    def closed_within(self, seconds):
        """True when the server closes the connection (EOF or reset) within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False


def is_rejection(resp):
    """A refused request: a 4xx, or a 200 whose bencoded body carries a failure reason."""
    if 400 <= resp.status < 500:
        return True
    if resp.status == 200:
        try:
            d = resp.bencoded()
        except (BencodeError, ValueError):
            return False
        return isinstance(d, dict) and b"failure reason" in d
    return False


def compact_peers(blob, family):
    size = 6 if family == socket.AF_INET else 18
    if len(blob) % size:
        raise AssertionError("compact peers of %d bytes is not a multiple of %d" % (len(blob), size))
    out = []
    for i in range(0, len(blob), size):
        addr = socket.inet_ntop(family, blob[i:i + size - 2])
        (port,) = struct.unpack(">H", blob[i + size - 2:i + size])
        out.append((addr, port))
    return out


# ---- UDP (BEP 15) ------------------------------------------------------------------------------

class UdpError(Exception):
    """The tracker answered with action 3."""


class UdpClient:
    def __init__(self, host, port, timeout=2.0):
        self.host, self.port = host, port
        self.family = FAMILIES[host]
        self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.connection_id = None

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def exchange(self, payload, timeout=None):
        """Sends one datagram and returns the reply, or None when none comes in time."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        self.sock.send(payload)
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            return None

    def drain(self):
        """Drops replies still queued from an earlier request (a late one would confuse the next)."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(65536)
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
            self.sock.settimeout(2.0)

    @staticmethod
    def tid():
        return random.getrandbits(32)

    def _checked(self, reply, action, tid):
        if reply is None:
            raise AssertionError("no UDP reply")
        if len(reply) < 8:
            raise AssertionError("UDP reply of %d bytes" % len(reply))
        got_action, got_tid = struct.unpack(">II", reply[:8])
        if got_tid != tid:
            raise AssertionError("transaction id %08x, sent %08x" % (got_tid, tid))
        if got_action == UDP_ERROR:
            raise UdpError(reply[8:].decode("utf-8", "replace"))
        if got_action != action:
            raise AssertionError("action %d, expected %d" % (got_action, action))
        return reply

    def connect(self):
        tid = self.tid()
        reply = self.exchange(struct.pack(">QII", UDP_PROTOCOL_ID, UDP_CONNECT, tid))
        reply = self._checked(reply, UDP_CONNECT, tid)
        if len(reply) != 16:
            raise AssertionError("connect reply of %d bytes" % len(reply))
        (self.connection_id,) = struct.unpack(">Q", reply[8:16])
        return self.connection_id

    def announce_packet(self, info_hash, peer_id, port, event=None, left=0, numwant=-1,
                        uploaded=0, downloaded=0, key=0, ip=0, tid=None, connection_id=None,
                        action=UDP_ANNOUNCE, url_data=None):
        cid = self.connection_id if connection_id is None else connection_id
        packet = struct.pack(">QII20s20sQQQIIIiH", cid, action, self.tid() if tid is None else tid,
                             info_hash, peer_id, downloaded, left, uploaded, EVENT_CODES[event],
                             ip, key, numwant, port)
        if url_data is not None:
            # BEP 41: URLData options of at most 255 bytes each, then EndOfOptions.
            data = url_data.encode() if isinstance(url_data, str) else url_data
            for i in range(0, len(data), 255):
                chunk = data[i:i + 255]
                packet += bytes([2, len(chunk)]) + chunk
            packet += b"\x00"
        return packet

    def announce(self, info_hash, peer_id, port, **kw):
        if self.connection_id is None:
            self.connect()
        tid = self.tid()
        packet = self.announce_packet(info_hash, peer_id, port, tid=tid, **kw)
        reply = self._checked(self.exchange(packet), UDP_ANNOUNCE, tid)
        if len(reply) < 20:
            raise AssertionError("announce reply of %d bytes" % len(reply))
        interval, leechers, seeders = struct.unpack(">III", reply[8:20])
        return {"interval": interval, "leechers": leechers, "seeders": seeders,
                "peers": compact_peers(reply[20:], self.family), "raw": reply}

    def scrape(self, hashes):
        if self.connection_id is None:
            self.connect()
        tid = self.tid()
        packet = struct.pack(">QII", self.connection_id, UDP_SCRAPE, tid) + b"".join(hashes)
        reply = self._checked(self.exchange(packet), UDP_SCRAPE, tid)
        if len(reply) != 8 + 12 * len(hashes):
            raise AssertionError("scrape reply of %d bytes for %d hashes" % (len(reply), len(hashes)))
        return [dict(zip(("seeders", "completed", "leechers"),
                         struct.unpack(">III", reply[8 + 12 * i:20 + 12 * i])))
                for i in range(len(hashes))]


def random_hash():
    return os.urandom(20)


def peer_id(tag=b"-CT0001-"):
    return tag + os.urandom(20 - len(tag))
