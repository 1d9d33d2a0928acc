#!/usr/bin/env bash
# bench/make_kit.sh BUILD_DIR KIT_DIR: a self-contained copy of chihaya, chihaya_loadgen and the
# memory plugin with every shared library they load (glibc and its loader included, stripped),
# for bench/scaling.sh on a machine where nothing can be installed.
set -euo pipefail
build=$1 kit=$2
rm -rf "$kit"
mkdir -p "$kit/bin" "$kit/plugins" "$kit/lib"
cp "$build/chihaya" "$build/chihaya_loadgen" "$kit/bin/"
cp "$build/plugins/chihaya_memory.so" "$build/plugins/chihaya_none.so" "$kit/plugins/"
for f in "$kit/bin/"* "$kit/plugins/"*; do
    ldd "$f" | awk '/=>/ {print $3} /ld-linux/ {print $1}' | grep '^/' | while read -r lib; do
        cp -L -n "$lib" "$kit/lib/" 2>/dev/null || true
    done
done
strip --strip-debug "$kit/bin/"* "$kit/plugins/"* "$kit/lib/"* 2>/dev/null || true
du -sh "$kit"
