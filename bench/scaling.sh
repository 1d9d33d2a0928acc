#!/usr/bin/env bash
# bench/scaling.sh: UDP announces/s of the memory driver against the worker count, on a machine
# with many cores (issue 12's "every core counts"), from a self-contained kit so that it also runs
# on a machine where nothing can be installed or built.
#
#   bench/make_kit.sh build kit        # here: binaries, the memory plugin, every shared library
#   KIT=kit bench/scaling.sh           # there (or here): prints one table line per run
#
# Tracker on cores 0..W-1 (W workers), generator on GEN_CORES with GEN_THREADS threads. Each run
# starts a fresh tracker, fills the swarms, measures DURATION seconds, stops it. Loopback only;
# every run is bounded by the generator's caps and `timeout`.
# Environment: KIT=kit WORKERS_LIST="1 2 4 8" GEN_CORES=8-15 GEN_THREADS=8 DURATION=5 INFLIGHT=8
#   UNIFORM="--torrents 100000 --peers-per-torrent 5"
#   ZIPF="--torrents 400000 --peers 2000000 --ipv6-share 0"  ZIPF_WORKERS_LIST="1 8"  (empty: skip)
set -uo pipefail

KIT=${KIT:-kit}
WORKERS_LIST=${WORKERS_LIST:-"1 2 4 8"}
ZIPF_WORKERS_LIST=${ZIPF_WORKERS_LIST-"1 8"}
GEN_CORES=${GEN_CORES:-8-15}
GEN_THREADS=${GEN_THREADS:-8}
DURATION=${DURATION:-5}
UNIFORM=${UNIFORM:-"--torrents 100000 --peers-per-torrent 5"}
ZIPF=${ZIPF:-"--torrents 400000 --peers 2000000 --ipv6-share 0"}
PORT=${PORT:-16969}
INFLIGHT=${INFLIGHT:-8}
# taskset may be missing where nothing can be installed: then nothing is pinned (said below).
pin_to() { if command -v taskset >/dev/null; then echo taskset -c "$1"; fi; }

KIT=$(cd "$KIT" && pwd)
# The kit's own loader and libraries: the machine's may be another distribution's.
# LD_LIBRARY_PATH only for the kit's processes (the plugins chihaya loads): the machine's own
# tools need the machine's libc.
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
trap 'exit 1' INT TERM  # so that the EXIT trap stops the tracker when this script is stopped

echo "machine: $(nproc) cores, $(uname -r); generator: $GEN_THREADS threads on cores $GEN_CORES," \
     "256 sockets x $INFLIGHT in flight; pinning: $(command -v taskset >/dev/null && echo yes || echo 'no (no taskset)')"
echo "| workload | workers | announces/s | p50 us | p99 us | errors+timeouts | fill s | tracker cores busy |"
echo "|---|---|---|---|---|---|---|---|"

one_run() {  # workload workers loadgen-args...
    local workload=$1 workers=$2; shift 2
    # A tracker left on the port (SO_REUSEPORT lets a second one bind) would answer part of the
    # traffic with its own swarms: the generator then reports peers nobody announced.
    if ss -uln 2>/dev/null | grep -q ":$PORT "; then echo "port $PORT is in use; stop what holds it"; exit 1; fi
    cat > "$work/chihaya.toml" <<EOF
plugins_dir = "$KIT/plugins"
[udp]
listen = ["127.0.0.1:$PORT"]
# The uniform workload's 256 sockets share one address: the per-address connect limiter (a
# hostile-client defence) would count them as one client.
connect_rate = 1000000
connect_burst = 1000000
[http]
enabled = false
[workers]
threads = $workers
[log]
level = "info"
[limits]
# The workload announces up to 100,000s of torrents and ports from one address: the flood
# defences would refuse most of it, and the figures would measure refusals. Off.
max_torrents = 0
max_peers = 0
max_peers_per_address = 0
new_torrents_per_address = 0
EOF
    $(pin_to "0-$((workers - 1))") env LD_LIBRARY_PATH="$KIT/lib" "$KIT/lib/ld-linux-x86-64.so.2" --library-path "$KIT/lib" \
        "$KIT/bin/chihaya" --config "$work/chihaya.toml" > "$work/tracker.log" 2>&1 &
    local pid=$!
    for _ in $(seq 50); do  # up to 5 s for the socket
        grep -q "serving on" "$work/tracker.log" 2>/dev/null && break
        sleep 0.1
    done
    local fill_line steady_line cpu0 cpu1
    cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
    fill_line=$(timeout 400 $(pin_to "$GEN_CORES") env LD_LIBRARY_PATH="$KIT/lib" "$KIT/lib/ld-linux-x86-64.so.2" --library-path "$KIT/lib" \
        "$KIT/bin/chihaya_loadgen" --target "127.0.0.1:$PORT" --mode udp --prepopulate-only \
        --threads "$GEN_THREADS" --connections 256 --inflight "$INFLIGHT" "$@" 2>>"$work/gen.err" | grep "phase=prepopulate")
    cpu0=$(cpu_of "$pid")
    steady_line=$(timeout $((DURATION + 60)) $(pin_to "$GEN_CORES") env LD_LIBRARY_PATH="$KIT/lib" "$KIT/lib/ld-linux-x86-64.so.2" --library-path "$KIT/lib" \
        "$KIT/bin/chihaya_loadgen" --target "127.0.0.1:$PORT" --mode udp --no-prepopulate \
        --duration "$DURATION" --threads "$GEN_THREADS" --connections 256 --inflight "$INFLIGHT" "$@" 2>>"$work/gen.err" | grep "phase=steady")
    cpu1=$(cpu_of "$pid")
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
    local e t
    e=$(field errors "$steady_line"); t=$(field timeouts "$steady_line")
    local errors=$(( ${e:-0} + ${t:-0} ))
    # Cores the tracker kept busy in the steady phase (its CPU time over the phase's seconds): below
    # the worker count, something else (the generator, the kernel's spreading) is the limit.
    local busy
    busy=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$(getconf CLK_TCK)" -v s="$(field seconds "$steady_line")" \
        'BEGIN { if (s > 0) printf "%.1f", (b - a) / hz / s; else print "" }')
    printf "| %s | %d | %s | %s | %s | %s | %s | %s |\n" "$workload" "$workers" \
        "$(field rate "$steady_line")" "$(field p50_us "$steady_line")" "$(field p99_us "$steady_line")" \
        "$errors" "$(field seconds "$fill_line")" "$busy"
    if [[ -z $steady_line || $errors != 0 ]]; then tail -n 3 "$work/tracker.log" "$work/gen.err"; fi
    : > "$work/gen.err"
}

for w in $WORKERS_LIST; do one_run uniform "$w" $UNIFORM; done
for w in $ZIPF_WORKERS_LIST; do one_run zipf "$w" --workload zipf $ZIPF; done
