"""bench/summarize.py RESULTS: medians over runs of bench/run's key=value lines, as one table plus the targets."""

import statistics
import sys
from collections import defaultdict

MODES = ("udp", "http", "http-close", "zipf")


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                rows.append(dict(kv.split("=", 1) for kv in line.split()))
    return rows


def median(values):
    return statistics.median(values) if values else None


def fmt(v, digits=0):
    if v is None:
        return "-"
    return "%.*f" % (digits, v)


def main(path):
    rows = parse(path)
    trackers = []
    for r in rows:
        if r["tracker"] not in trackers:
            trackers.append(r["tracker"])
    steady = defaultdict(list)   # (tracker, mode) -> rows
    memory = defaultdict(list)   # tracker -> rows
    fill = defaultdict(list)     # tracker -> the Zipf workload's phase-1 rows
    model = {}                   # tracker -> the Zipf workload's model line
    for r in rows:
        if r["phase"] == "steady":
            steady[(r["tracker"], r["mode"])].append(r)
        elif r["phase"] == "memory":
            memory[r["tracker"]].append(r)
        elif r["phase"] == "prepopulate" and r.get("mode") == "zipf":
            fill[r["tracker"]].append(r)
        elif r["phase"] == "model":
            model[r["tracker"]] = r

    def med(tracker, mode, key):
        return median([float(r[key]) for r in steady.get((tracker, mode), [])])

    def errors(tracker, mode):
        return sum(int(r["errors"]) + int(r["timeouts"]) for r in steady.get((tracker, mode), []))

    ot = "opentracker" if "opentracker" in trackers else None
    print()
    print("%-18s %-10s %12s %8s %8s %8s %5s %10s" %
          ("tracker", "mode", "announces/s", "p50 us", "p99 us", "err+to", "runs", "vs opentr"))
    for t in trackers:
        for mode in MODES:
            if (t, mode) not in steady:
                continue
            rate = med(t, mode, "rate")
            ratio = "-"
            if ot and t != ot and (ot, mode) in steady:
                ratio = "%.2fx" % (rate / med(ot, mode, "rate"))
            print("%-18s %-10s %12s %8s %8s %8d %5d %10s" %
                  (t, mode, fmt(rate), fmt(med(t, mode, "p50_us")), fmt(med(t, mode, "p99_us")),
                   errors(t, mode), len(steady[(t, mode)]), ratio))

    print()
    print("%-18s %10s %9s %9s %9s %14s %14s %12s" %
          ("memory", "peers", "RSS0 MB", "RSS1 MB", "end MB", "B/peer (delta)", "B/peer (RSS1)", "redis B/peer"))
    per_peer = {}
    for t in trackers:
        if t == "responder" or t not in memory:
            continue
        ms = memory[t]
        peers = median([int(m["peers"]) for m in ms])
        r0 = median([int(m["rss0_kb"]) for m in ms]) * 1024
        r1 = median([int(m["rss1_kb"]) for m in ms]) * 1024
        r2 = median([int(m["rss2_kb"]) for m in ms]) * 1024
        delta = median([(int(m["rss1_kb"]) - int(m["rss0_kb"])) * 1024 / int(m["peers"]) for m in ms])
        absolute = median([int(m["rss1_kb"]) * 1024 / int(m["peers"]) for m in ms])
        redis = median([(int(m["redis1"]) - int(m["redis0"])) / int(m["peers"]) for m in ms])
        per_peer[t] = (delta, absolute)
        print("%-18s %10d %9.1f %9.1f %9.1f %14.1f %14.1f %12s" %
              (t, peers, r0 / 2**20, r1 / 2**20, r2 / 2**20, delta, absolute, fmt(redis, 1) if redis else "-"))

    if fill:
        zipf_table(trackers, steady, fill, model)

    if "responder" in trackers:
        print()
        print("generator ceiling (trivial stateless responder on the tracker's core): " +
              ", ".join("%s %s/s" % (m, fmt(med("responder", m, "rate")))
                        for m in MODES if ("responder", m) in steady))

    if not ot:
        return
    print()
    print("targets (medians; chihaya against opentracker in the same runs):")
    for t in trackers:
        if not t.startswith("chihaya"):
            continue
        # chihaya-*-v6 serves a workload with IPv6 peers that Debian's IPv4-only opentracker
        # cannot: only its own validity is a target.
        like_for_like = not t.endswith("-v6")

        def check(name, ok, detail):
            print("  %-4s %-17s %-44s %s" % ("MET" if ok else "MISS", t, name, detail))

        if like_for_like and (t, "zipf") in steady and (ot, "zipf") in steady:
            c, o = med(t, "zipf", "rate"), med(ot, "zipf", "rate")
            check("Zipf announces/s >= 1.5x opentracker", c >= 1.5 * o, "%.2fx" % (c / o))
            c99, o99 = med(t, "zipf", "p99_us"), med(ot, "zipf", "p99_us")
            check("Zipf p99 < opentracker's", c99 < o99, "%d us vs %d us" % (c99, o99))
        if t in fill:
            bad = sum(int(r["errors"]) + int(r["timeouts"]) + int(r["unsent"]) for r in fill[t])
            check("Zipf fill: every peer announced, no error", bad == 0, "%d" % bad)
        if (t, "udp") in steady and (ot, "udp") in steady:
            c, o = med(t, "udp", "rate"), med(ot, "udp", "rate")
            check("UDP announces/s >= 1.5x opentracker", c >= 1.5 * o, "%.2fx" % (c / o))
            c99, o99 = med(t, "udp", "p99_us"), med(ot, "udp", "p99_us")
            check("UDP p99 <= opentracker's", c99 <= o99, "%d us vs %d us" % (c99, o99))
        if like_for_like and t in per_peer and ot in per_peer:
            for k, name in ((0, "delta"), (1, "absolute RSS1")):
                c, o = per_peer[t][k], per_peer[ot][k]
                check("bytes/peer (%s) <= opentracker's" % name, c <= o, "%.1f vs %.1f" % (c, o))
        # opentracker closes every HTTP connection, so its HTTP figure is its best of the two modes.
        o_http = max([med(ot, m, "rate") for m in ("http", "http-close") if (ot, m) in steady] or [0])
        if (t, "http") in steady and o_http:
            c = med(t, "http", "rate")
            check("HTTP keep-alive >= 4x opentracker's HTTP", c >= 4 * o_http, "%.2fx" % (c / o_http))
        if (t, "http-close") in steady and (ot, "http-close") in steady:
            c, o = med(t, "http-close", "rate"), med(ot, "http-close", "rate")
            check("HTTP without keep-alive >= opentracker's", c >= o, "%.2fx" % (c / o))
        bad = sum(errors(t, m) for m in MODES)
        check("every response valid (no error, timeout)", bad == 0, "%d" % bad)


def zipf_table(trackers, steady, fill, model):
    """The Zipf workload's own figures: the fill (phase 1) and what the steady phase mixed in."""
    print()
    m = next(iter(model.values()), None)
    if m:
        print("zipf workload: %s torrents, %s peers, largest swarm %s, %s source addresses, "
              "exponent %s, scrapes %s of requests (%s hashes each)" %
              (m["torrents"], m["peers"], m["largest"], m["addresses"], m["exponent"],
               m["scrape_share"], m["scrape_hashes"]))
    print("%-18s %8s %10s %9s %10s %9s %10s %9s %9s" %
          ("tracker", "v6 peers", "fill s", "fill/s", "fill err", "scrapes/s", "connects",
           "reconnect", "self %"))
    for t in trackers:
        if t not in fill:
            continue
        f = fill[t]
        rows = steady.get((t, "zipf"), [])
        fill_s = median([float(r["seconds"]) for r in f])
        fill_rate = median([float(r["rate"]) for r in f])
        bad = sum(int(r["errors"]) + int(r["timeouts"]) + int(r["unsent"]) for r in f)
        scrapes = median([float(r["scrape_rate"]) for r in rows])
        connects = median([float(r["connects"]) for r in rows])
        reconnects = sum(int(r["reconnects"]) for r in rows)
        announces = sum(int(r["announces"]) for r in rows)
        self_share = 100.0 * sum(int(r["self_peers"]) for r in rows) / announces if announces else None
        v6 = model[t]["v6_peers"] if t in model else "-"
        print("%-18s %8s %10s %9s %10d %9s %10s %9d %9s" %
              (t, v6, fmt(fill_s, 1), fmt(fill_rate), bad, fmt(scrapes), fmt(connects), reconnects,
               fmt(self_share, 1)))


if __name__ == "__main__":
    main(sys.argv[1])
