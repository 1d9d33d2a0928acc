"""The SDK as a driver author meets it: install, build an example out of tree, load, serve.

Usage (ctest does this): test_sdk.py <install | cache_example_cmake | cache_example_pkgconfig |
                                      cache_example_libcxx | storage_example_cmake |
                                      storage_example_pkgconfig>
`install` puts the build into CHIHAYA_SDK_PREFIX with cmake --install; every other step copies
that prefix into a temp dir of its own (an installed tree must work where it is moved to), copies
one example from sdk/examples into an empty directory and builds it against that prefix alone:
CMAKE_PREFIX_PATH or PKG_CONFIG_LIBDIR point there and nowhere else.
"""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from tracker_fixture import V4, V6, Tracker, announce_path, peer_id, random_hash  # noqa: E402

BUILD = os.environ["CHIHAYA_BUILD_DIR"]
PREFIX = os.environ["CHIHAYA_SDK_PREFIX"]
SOURCE = os.environ["CHIHAYA_SOURCE_DIR"]
CXX = os.environ.get("CHIHAYA_CXX", "c++")


def run(args, cwd=None, env=None, check=True, timeout=240):
    print("+ " + " ".join(args), flush=True)
    p = subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise AssertionError("exit %d from %s:\n%s" % (p.returncode, " ".join(args), out))
    return p.returncode, out


def expect(condition, what, detail=""):
    if not condition:
        raise AssertionError(what + ("\n" + detail if detail else ""))


class Workspace:
    """A temp dir holding a copy of the installed prefix and an empty project dir."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="chihaya-sdk-")
        os.chmod(self.root, 0o755)
        self.prefix = os.path.join(self.root, "prefix")
        shutil.copytree(PREFIX, self.prefix, symlinks=True)
        self.project = os.path.join(self.root, "project")
        os.mkdir(self.project)

    def bin(self, name):
        return os.path.join(self.prefix, "bin", name)

    def plugins_dir(self):
        return os.path.join(self.prefix, "lib", "chihaya", "plugins")

    def copy_example(self, example):
        src = os.path.join(SOURCE, "sdk", "examples", example)
        for name in os.listdir(src):
            shutil.copy(os.path.join(src, name), self.project)

    def cmake_build(self, extra=()):
        """Configure, build and install the example with CMake against the prefix alone."""
        build = os.path.join(self.root, "build")
        run(["cmake", "-S", self.project, "-B", build, "-DCMAKE_PREFIX_PATH=" + self.prefix,
             "-DCMAKE_INSTALL_PREFIX=" + self.prefix, "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF",
             "-DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF"] + list(extra))
        run(["cmake", "--build", build, "-j2"])
        run(["cmake", "--install", build])
        return build

    def pkgconfig_build(self, source, output):
        """g++ with the flags pkg-config gives for the installed chihaya-sdk.pc only."""
        env = dict(os.environ, PKG_CONFIG_LIBDIR=os.path.join(self.prefix, "lib", "pkgconfig"),
                   PKG_CONFIG_PATH="")
        _, cflags = run(["pkg-config", "--cflags", "chihaya-sdk"], env=env)
        _, libs = run(["pkg-config", "--libs", "chihaya-sdk"], env=env)
        _, plugindir = run(["pkg-config", "--variable=plugindir", "chihaya-sdk"], env=env)
        expect(os.path.realpath(plugindir.strip()) == os.path.realpath(self.plugins_dir()),
               "pkg-config plugindir is %r, want %r" % (plugindir, self.plugins_dir()))
        _, version = run(["pkg-config", "--modversion", "chihaya-sdk"], env=env)
        expect(version.strip() == "2.3", "chihaya-sdk.pc version %r" % version)
        out = os.path.join(self.project, output)
        run([CXX, "-std=c++20", "-O2", "-fno-gnu-unique"] + cflags.split() +
            ['-DCHIHAYA_PLUGIN_VERSION="1.0.0-pc"', os.path.join(self.project, source), "-o", out] +
            libs.split(), cwd=self.project)
        shutil.copy(out, plugindir.strip())
        os.chmod(os.path.join(plugindir.strip(), output), 0o644)
        return out

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


def serve_through_example(ws):
    """Runs the installed host with no plugins_dir in its config and answers real announces."""
    t = Tracker({"cache": {"driver": "example"}}, plugins_dir=False, binary=ws.bin("chihaya"))
    with t:
        h = random_hash()
        seeder, leecher = peer_id(), peer_id()
        with t.http(V4) as c:
            r = c.get(announce_path(h, seeder, 7000, event="started", left=0)).bencoded()
            expect(r.get(b"complete") == 1 and r.get(b"incomplete") == 0, "first announce", repr(r))
            r = c.get(announce_path(h, leecher, 7001, event="started", left=5)).bencoded()
            expect((r[b"complete"], r[b"incomplete"]) == (1, 1), "second announce", repr(r))
            expect(r[b"peers"] == bytes([127, 0, 0, 1, 7000 >> 8, 7000 & 0xff]),
                   "the leecher is given the seeder", repr(r))
        with t.udp(V6) as u:
            u.connect()
            reply = u.announce(h, peer_id(), 7002, event="started", left=5)
            expect(reply["seeders"] == 1 and reply["leechers"] == 2, "UDP announce", repr(reply))
        log = t.log_text()
        expect(ws.plugins_dir() in log or "chihaya_example_cache.so: loaded" in log,
               "the installed plugins_dir was used", log)
        expect('cache "example"' in log, "the example cache served", log)
        t.stop_checked()


def step_install():
    shutil.rmtree(PREFIX, ignore_errors=True)
    run(["cmake", "--install", BUILD, "--prefix", PREFIX])
    for path in ["bin/chihaya", "bin/chihaya-conformance", "lib/chihaya/plugins/chihaya_memory.so",
                 "lib/chihaya/plugins/chihaya_none.so", "include/chihaya/abi.h",
                 "include/chihaya/driver.hpp", "lib/cmake/chihaya-sdk/chihaya-sdk-config.cmake",
                 "lib/cmake/chihaya-sdk/chihaya-sdk-config-version.cmake",
                 "lib/cmake/chihaya-sdk/plugin.map", "lib/pkgconfig/chihaya-sdk.pc",
                 "etc/chihaya/chihaya.toml", "share/chihaya-sdk/examples/cache/example_cache.cpp"]:
        expect(os.path.exists(os.path.join(PREFIX, path)), "not installed: " + path)


def step_cache_example_cmake():
    ws = Workspace()
    try:
        ws.copy_example("cache")
        ws.cmake_build()
        installed = os.path.join(ws.plugins_dir(), "chihaya_example_cache.so")
        expect(os.path.isfile(installed), "chihaya_add_driver installs to lib/chihaya/plugins")
        # Only the entry symbol is exported (visibility + version script).
        _, syms = run(["nm", "-D", "--defined-only", installed])
        exported = [l.split()[-1] for l in syms.splitlines() if l.split()[-2:-1] in (["T"], ["D"], ["W"], ["B"], ["R"], ["V"], ["u"])]
        expect(exported == ["chihaya_plugin_entry"], "exported symbols: %r" % exported, syms)
        # The installed host, no config given: finds <prefix>/etc/chihaya/chihaya.toml and
        # <prefix>/lib/chihaya/plugins by itself.
        code, out = run([ws.bin("chihaya"), "--list-plugins"], check=False)
        expect(code == 0, "--list-plugins exit %d" % code, out)
        expect("config: " + os.path.join(ws.prefix, "etc", "chihaya", "chihaya.toml") in out,
               "the installed config was found", out)
        expect("plugins_dir: " + ws.plugins_dir() in out, "the installed plugins_dir is the default", out)
        expect('chihaya_example_cache.so: loaded: plugin "example" 1.0.0' in out,
               "the example's version comes from its project()", out)
        serve_through_example(ws)
    finally:
        ws.cleanup()


def step_cache_example_pkgconfig():
    ws = Workspace()
    try:
        ws.copy_example("cache")
        so = ws.pkgconfig_build("example_cache.cpp", "chihaya_example_cache.so")
        # The installed test kit: every rule the bundled drivers pass.
        code, out = run([ws.bin("chihaya-conformance"), "--plugin", so, "--driver", "example",
                         "--provides", "tick"], check=False)
        print(out)
        expect(code == 0, "chihaya-conformance failed the pkg-config build", out)
        serve_through_example(ws)
    finally:
        ws.cleanup()


def step_cache_example_libcxx():
    """clang++ and libc++ for the driver, g++ and libstdc++ for the kit and the host."""
    ws = Workspace()
    try:
        ws.copy_example("cache")
        build = ws.cmake_build(["-DCMAKE_CXX_COMPILER=clang++", "-DCMAKE_CXX_FLAGS=-stdlib=libc++",
                                "-DCMAKE_MODULE_LINKER_FLAGS=-stdlib=libc++"])
        so = os.path.join(build, "chihaya_example_cache.so")
        _, needed = run(["readelf", "-d", so])
        expect("libc++.so" in needed and "libstdc++" not in needed, "built against libc++", needed)
        _, host_needed = run(["readelf", "-d", ws.bin("chihaya-conformance")])
        expect("libstdc++" in host_needed, "the kit is a libstdc++ program", host_needed)
        code, out = run([ws.bin("chihaya-conformance"), "--plugin", so, "--driver", "example",
                         "--provides", "tick"], check=False)
        print(out)
        expect(code == 0, "chihaya-conformance failed the clang/libc++ build", out)
        serve_through_example(ws)
    finally:
        ws.cleanup()


def storage_checks(ws, plugin_file):
    registry = os.path.join(ws.project, "registry.txt")
    deltas = os.path.join(ws.root, "deltas.log")
    config = os.path.join(ws.root, "storage.toml")

    def write(registry_file):
        with open(config, "w") as f:
            f.write('[storage]\ndriver = "example"\n[storage.example]\n'
                    'registry_file = "%s"\ndeltas_file = "%s"\n' % (registry_file, deltas))

    write(registry)
    code, out = run([ws.bin("chihaya"), "--list-plugins", "--config", config], check=False)
    expect(code == 0, "--list-plugins exit %d" % code, out)
    expect(plugin_file + ': loaded: plugin "example"' in out, "the storage plugin loaded", out)
    expect('storage driver "example" (private mode: subscribe, apply), keys of [storage.example]:'
           in out, "listed as a private-mode storage", out)
    code, out = run([ws.bin("chihaya"), "--check-config", config, "--connect"], check=False)
    expect(code == 0, "--check-config --connect exit %d" % code, out)
    expect('storage driver "example": created and destroyed' in out, "created", out)
    serve_private_through_example(ws, registry, deltas)
    write(os.path.join(ws.root, "missing.txt"))
    code, out = run([ws.bin("chihaya"), "--check-config", config, "--connect"], check=False)
    expect(code == 1 and "cannot read registry_file" in out, "a missing registry_file fails --connect", out)


def serve_private_through_example(ws, registry, deltas):
    """The installed host in private mode on the example storage: the registry it delivered
    admits and refuses announces, and the traffic comes back to it as an applied batch."""
    open(deltas, "w").close()
    spool = os.path.join(ws.root, "spool")
    t = Tracker({"tracker": {"mode": "private"},
                 "storage": {"driver": "example", "spool_dir": spool, "flush_interval_ms": 200},
                 "storage.example": {"registry_file": registry, "deltas_file": deltas}},
                plugins_dir=False, binary=ws.bin("chihaya"))
    h = bytes.fromhex("0123456789abcdef0123456789abcdef01234567")  # torrent 7 of registry.txt
    peer = b"-qB4000-" + b"0123456789ab"                                # an allowed client
    with t:
        with t.http(V4) as c:
            r = c.get(announce_path(h, peer, 7000, event="started", left=100,
                                    passkey="s3cretpasskey0001")).bencoded()
            expect(b"failure reason" not in r and r.get(b"incomplete") == 1, "admitted", repr(r))
            r = c.get(announce_path(h, peer, 7000, left=50, uploaded=300, downloaded=50,
                                    passkey="s3cretpasskey0001")).bencoded()
            expect(b"failure reason" not in r, "second announce admitted", repr(r))
            r = c.get(announce_path(h, peer, 7001, left=1, passkey="nosuchpasskey")).bencoded()
            expect(r.get(b"failure reason") == b"unknown passkey", "an unknown passkey is refused", repr(r))
            r = c.get(announce_path(h, b"-XX1000-0123456789ab", 7002, left=1,
                                    passkey="s3cretpasskey0001")).bencoded()
            expect(r.get(b"failure reason") == b"client not allowed", "the whitelist applies", repr(r))
        t.stop_checked()  # SIGTERM flushes everything accepted
    with open(deltas) as f:
        applied = f.read()
    # Torrent 7 is freeleech in registry.txt (download multiplier 0): 300 up, nothing down.
    expect("delta user=1 torrent=7" in applied and "credit_up=300 credit_down=0" in applied,
           "the traffic reached the example's apply", applied)
    expect("s3cretpasskey0001" not in t.log_text(full=True), "the passkey stays out of the log")


def step_storage_example_cmake():
    ws = Workspace()
    try:
        ws.copy_example("storage")
        ws.cmake_build()
        storage_checks(ws, "chihaya_example_storage.so")
    finally:
        ws.cleanup()


def step_storage_example_pkgconfig():
    ws = Workspace()
    try:
        ws.copy_example("storage")
        ws.pkgconfig_build("example_storage.cpp", "chihaya_example_storage.so")
        storage_checks(ws, "chihaya_example_storage.so")
    finally:
        ws.cleanup()


if __name__ == "__main__":
    steps = {name[len("step_"):]: fn for name, fn in globals().items() if name.startswith("step_")}
    if len(sys.argv) != 2 or sys.argv[1] not in steps:
        print("usage: test_sdk.py <%s>" % " | ".join(sorted(steps)), file=sys.stderr)
        sys.exit(2)
    steps[sys.argv[1]]()
    print("ok: " + sys.argv[1])
