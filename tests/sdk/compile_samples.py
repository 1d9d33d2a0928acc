"""Compiles every C++ sample of the README and the SDK headers, so that none rots.

Usage (ctest does this): compile_samples.py --compiler CXX --include DIR FILE...
- Markdown: every ```cpp block, unless the line before it is <!-- no-compile: why -->.
- Headers: every ```cpp ... ``` block inside a comment (`//` lines), with the comment prefix and
  the fence's indentation removed.
Each sample is its own translation unit, compiled with -std=c++20 -Wall -Wextra -Werror after
`#include <chihaya/driver.hpp>` and with CHIHAYA_PLUGIN_VERSION defined, as chihaya_add_driver
does. Fails if a sample does not compile, or if no sample was found at all.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

FENCE_OPEN = re.compile(r"^```cpp\s*$")
COMMENT_FENCE = re.compile(r"^(\s*//\s*)```cpp\s*$")


def markdown_samples(path, lines):
    samples, i = [], 0
    while i < len(lines):
        if FENCE_OPEN.match(lines[i]):
            skip = i > 0 and lines[i - 1].strip().startswith("<!-- no-compile")
            start, body = i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if not skip:
                samples.append((start + 1, "\n".join(body)))
        i += 1
    return samples


def comment_samples(path, lines):
    samples, i = [], 0
    while i < len(lines):
        m = COMMENT_FENCE.match(lines[i])
        if m:
            prefix = m.group(1)
            start, body = i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() not in ("// ```", "//```") and \
                    not re.match(r"^\s*//\s*```\s*$", lines[i]):
                line = lines[i]
                body.append(line[len(prefix):] if line.startswith(prefix) else line.lstrip()[2:])
                i += 1
            samples.append((start + 1, "\n".join(body)))
        i += 1
    return samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--compiler", required=True)
    parser.add_argument("--include", required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    failures, total = [], 0
    with tempfile.TemporaryDirectory(prefix="chihaya-samples-") as tmp:
        for path in args.files:
            with open(path) as f:
                lines = f.read().splitlines()
            samples = (markdown_samples if path.endswith(".md") else comment_samples)(path, lines)
            print("%s: %d sample(s)" % (path, len(samples)), flush=True)
            for line, code in samples:
                total += 1
                source = os.path.join(tmp, "sample_%d.cpp" % total)
                with open(source, "w") as f:
                    f.write("#include <chihaya/driver.hpp>\n#line %d \"%s\"\n%s\n" % (line, path, code))
                cmd = [args.compiler, "-std=c++20", "-Wall", "-Wextra", "-Werror", "-fPIC",
                       "-I" + args.include, '-DCHIHAYA_PLUGIN_VERSION="0.0.0-sample"',
                       "-c", source, "-o", os.path.join(tmp, "sample.o")]
                p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                status = "ok" if p.returncode == 0 else "FAILED"
                print("  %s:%d: %s" % (path, line, status), flush=True)
                if p.returncode != 0:
                    failures.append("%s:%d\n%s" % (path, line, p.stdout.decode("utf-8", "replace")))
    for failure in failures:
        print("\n" + failure)
    if total == 0:
        print("no sample found: the markers changed?")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
