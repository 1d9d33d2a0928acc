"""The C++ layer's optional driver methods (chihaya/driver.hpp): a method of an optional name
with the wrong signature is a compile error that names the signature wanted, not a method the
registration macro silently leaves out of the table; the right signature compiles.

Usage (ctest does this): optional_methods.py --compiler CXX --include SDK_INCLUDE_DIR
"""

import argparse
import os
import subprocess
import sys
import tempfile

CACHE = """
#include <chihaya/driver.hpp>
struct C {
    C(const chihaya::Host&, const chihaya::Config&) {}
    void announce(const chihaya_announce_request&, chihaya_announce_result&, chihaya::Completion d) { d(CHIHAYA_OK); }
    void scrape(chihaya_scrape_request&, chihaya::Completion d) { d(CHIHAYA_OK); }
    %s
};
CHIHAYA_REGISTER_CACHE("c", C)
"""

STORAGE = """
#include <chihaya/driver.hpp>
struct S {
    S(const chihaya::Host&, const chihaya::Config&) {}
    %s
};
CHIHAYA_REGISTER_STORAGE("s", S)
"""

# (what, source, the signature the error must name, or None when it must compile)
CASES = [
    ("stats as documented", CACHE % "chihaya_status stats(chihaya_cache_stats&) { return CHIHAYA_OK; }", None),
    ("stats returning void", CACHE % "void stats(chihaya_cache_stats&) {}",
     "want chihaya_status stats(chihaya_cache_stats&)"),
    ("stats taking a pointer", CACHE % "chihaya_status stats(chihaya_cache_stats*) { return CHIHAYA_OK; }",
     "want chihaya_status stats(chihaya_cache_stats&)"),
    ("health as documented", STORAGE % "chihaya_status health(std::string&) { return CHIHAYA_OK; }", None),
    ("health returning bool", STORAGE % "bool health(std::string&) { return true; }",
     "want chihaya_status health(std::string& why)"),
    ("health without a message", STORAGE % "chihaya_status health() { return CHIHAYA_OK; }",
     "want chihaya_status health(std::string& why)"),
    ("tick with a wrong argument", CACHE % "void tick(const char*) {}", "want void tick(uint64_t now_ms)"),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--compiler", required=True)
    parser.add_argument("--include", required=True)
    args = parser.parse_args()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="chihaya-optional-") as d:
        for what, source, want in CASES:
            path = os.path.join(d, "case.cpp")
            with open(path, "w") as f:
                f.write(source)
            p = subprocess.run([args.compiler, "-std=c++20", "-fsyntax-only",
                                '-DCHIHAYA_PLUGIN_VERSION="0"', "-I", args.include, path],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            out = p.stdout.decode("utf-8", "replace")
            if want is None:
                ok = p.returncode == 0
                why = "does not compile:\n" + out[-2000:]
            else:
                ok = p.returncode != 0 and want in out
                why = ("compiles" if p.returncode == 0 else "fails without naming %r:\n%s" % (want, out[-2000:]))
            print("%-4s %s%s" % ("ok" if ok else "FAIL", what, "" if ok else ": " + why), flush=True)
            failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
