// Sums the per-worker counters on scrape and writes them, then the collectors' families.
#include "metrics/registry.hpp"

#include <chihaya/abi.h>

#include <cstdio>
#include <string>

namespace chihaya::metrics {

constinit thread_local WorkerMetrics* t_worker = nullptr;

WorkerMetrics& shared() noexcept {
    static WorkerMetrics metrics;
    return metrics;
}

const char* name(Protocol p) {
    return p == Protocol::Udp ? "udp" : "http";
}

const char* name(Action a) {
    switch (a) {
        case Action::Connect: return "connect";
        case Action::Announce: return "announce";
        case Action::Scrape: return "scrape";
        default: return "other";
    }
}

const char* name(Result r) {
    switch (r) {
        case Result::Ok: return "ok";
        case Result::Malformed: return "malformed";
        case Result::BadConnectionId: return "bad_connection_id";
        case Result::InvalidPort: return "invalid_port";
        case Result::NotFound: return "not_found";
        case Result::TooLarge: return "too_large";
        case Result::Refused: return "refused";
        case Result::Unregistered: return "unregistered";
        case Result::Unavailable: return "unavailable";
        case Result::Internal: return "internal";
        case Result::Disabled: return "disabled";
        case Result::Dropped: return "dropped";
        default: return "unknown";
    }
}

const char* name(Limit l) {
    switch (l) {
        case Limit::HttpConnections: return "http_max_connections";
        case Limit::UdpSlots: return "udp_calls_in_flight";
        case Limit::RequestHead: return "http_max_request_head";
        case Limit::ScrapeTorrents: return "max_scrape_torrents";
        case Limit::UdpConnects: return "udp_connect_rate";
        case Limit::DriverTimeout: return "driver_timeout_ms";
        case Limit::MaxTorrents: return "max_torrents";
        case Limit::MaxPeers: return "max_peers";
        case Limit::MaxPeersPerAddress: return "max_peers_per_address";
        case Limit::NewTorrentsPerAddress: return "new_torrents_per_address";
        default: return "unknown";
    }
}

WorkerMetrics& Registry::add_worker() { return workers_.emplace_back(); }

void Registry::add_collector(std::function<void(Exposition&)> collector) {
    collectors_.push_back(std::move(collector));
}

namespace {

uint64_t read(const Counter& c) { return c.load(std::memory_order_relaxed); }

template <class F>
uint64_t sum(const std::deque<WorkerMetrics>& workers, F field) {
    uint64_t total = read(field(shared()));
    for (const auto& w : workers) total += read(field(w));
    return total;
}

template <class Pick>
void histogram(Exposition& out, std::string_view name, Labels labels,
               const std::deque<WorkerMetrics>& workers, Pick pick) {
    uint64_t cumulative = 0;
    const std::string bucket = std::string(name) + "_bucket";
    for (size_t b = 0; b < kBuckets; ++b) {
        cumulative += sum(workers, [&](const WorkerMetrics& w) -> const Counter& { return pick(w).buckets[b]; });
        char le[32];
        if (b < kLatencyBounds.size()) std::snprintf(le, sizeof le, "%g", kLatencyBounds[b]);
        else std::snprintf(le, sizeof le, "+Inf");
        out.sample(bucket, labels, {"le", le}, double(cumulative));
    }
    const uint64_t ns = sum(workers, [&](const WorkerMetrics& w) -> const Counter& { return pick(w).sum_ns; });
    out.sample(std::string(name) + "_sum", labels, double(ns) / 1e9);
    out.sample(std::string(name) + "_count", labels, double(cumulative));
}

}  // namespace

void write_worker_families(Exposition& out, const std::deque<WorkerMetrics>& workers) {
    out.family("chihaya_requests_total", "counter",
               "Requests answered (or dropped), by protocol, action and result.");
    for (size_t p = 0; p < P; ++p)
        for (size_t a = 0; a < A; ++a)
            for (size_t r = 0; r < R; ++r) {
                const uint64_t v = sum(workers, [&](const WorkerMetrics& w) -> const Counter& { return w.requests[p][a][r]; });
                // Every announce/scrape result is always present (rate() needs the series from
                // the start); other combinations only once they happened.
                const bool core = (Action(a) == Action::Announce || Action(a) == Action::Scrape);
                if (v == 0 && !core) continue;
                out.sample("chihaya_requests_total",
                           {{"protocol", name(Protocol(p))}, {"action", name(Action(a))}, {"result", name(Result(r))}},
                           double(v));
            }

    out.family("chihaya_request_duration_seconds", "histogram",
               "Time from a request's arrival to its answer being handed to the kernel. UDP: per received batch.");
    for (size_t p = 0; p < P; ++p)
        for (Action a : {Action::Announce, Action::Scrape})
            histogram(out, "chihaya_request_duration_seconds",
                      {{"protocol", name(Protocol(p))}, {"action", name(a)}}, workers,
                      [&](const WorkerMetrics& w) -> const Histogram& { return w.latency[p][size_t(a)]; });

    out.family("chihaya_limit_hits_total", "counter",
               "Requests or connections shed because a configured limit was reached.");
    for (size_t l = 0; l < size_t(Limit::Count); ++l)
        out.sample("chihaya_limit_hits_total", {{"limit", name(Limit(l))}},
                   double(sum(workers, [&](const WorkerMetrics& w) -> const Counter& { return w.limits[l]; })));

    out.family("chihaya_cache_calls_total", "counter", "Cache driver calls by call and status.");
    static const char* const kCalls[2] = {"announce", "scrape"};
    for (size_t c = 0; c < 2; ++c)
        for (size_t s = 0; s < kStatuses; ++s)
            out.sample("chihaya_cache_calls_total", {{"call", kCalls[c]}, {"status", status_name(s)}},
                       double(sum(workers, [&](const WorkerMetrics& w) -> const Counter& { return w.driver_calls[c][s]; })));
    out.family("chihaya_cache_call_duration_seconds", "histogram",
               "Cache driver call latency, from the call to its completion.");
    for (size_t c = 0; c < 2; ++c)
        histogram(out, "chihaya_cache_call_duration_seconds", {{"call", kCalls[c]}}, workers,
                  [&](const WorkerMetrics& w) -> const Histogram& { return w.driver_latency[c]; });
}

std::string Registry::render() const {
    std::lock_guard lock(render_mutex_);
    Exposition out;
    write_worker_families(out, workers_);
    for (const auto& collector : collectors_) collector(out);
    return out.text();
}

}  // namespace chihaya::metrics
