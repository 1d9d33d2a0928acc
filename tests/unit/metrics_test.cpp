// Metrics: bucket choice, per-worker sums on scrape, label escaping, failure classes, swarm gauges.
#include "metrics/host_collectors.hpp"
#include "metrics/registry.hpp"
#include "tracker/tracker.hpp"

#include <doctest/doctest.h>

#include <string>
#include <thread>

using namespace chihaya;
using namespace chihaya::metrics;

TEST_CASE("latency buckets are upper bounds in seconds") {
    CHECK(bucket_of(0) == 0);
    CHECK(bucket_of(50'000) == 0);       // le="5e-05" includes its bound
    CHECK(bucket_of(50'001) == 1);
    CHECK(bucket_of(1'000'000) == 4);    // 1 ms
    CHECK(bucket_of(2'000'000'000) == kBuckets - 1);  // +Inf
}

TEST_CASE("a scrape sums every worker's counters, each written by its own thread") {
    Registry registry;
    WorkerMetrics& a = registry.add_worker();
    WorkerMetrics& b = registry.add_worker();
    std::thread ta([&] {
        bind(a);
        for (int i = 0; i < 1000; ++i) current().request(Protocol::Udp, Action::Announce, Result::Ok);
    });
    std::thread tb([&] {
        bind(b);
        for (int i = 0; i < 500; ++i) current().request(Protocol::Udp, Action::Announce, Result::Ok);
        current().latency[0][size_t(Action::Announce)].observe(3'000'000, 2);
    });
    ta.join();
    tb.join();
    const std::string text = registry.render();
    CHECK(text.find("chihaya_requests_total{protocol=\"udp\",action=\"announce\",result=\"ok\"} 1500\n") != std::string::npos);
    CHECK(text.find("chihaya_request_duration_seconds_bucket{protocol=\"udp\",action=\"announce\",le=\"0.0025\"} 0\n") != std::string::npos);
    CHECK(text.find("chihaya_request_duration_seconds_bucket{protocol=\"udp\",action=\"announce\",le=\"0.005\"} 2\n") != std::string::npos);
    CHECK(text.find("chihaya_request_duration_seconds_count{protocol=\"udp\",action=\"announce\"} 2\n") != std::string::npos);
    CHECK(text.find("# TYPE chihaya_requests_total counter\n") != std::string::npos);
}

TEST_CASE("label values are escaped") {
    CHECK(escape_label("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
}

TEST_CASE("client-visible failures map to their classes") {
    CHECK(failure_class("invalid port") == Result::InvalidPort);
    CHECK(failure_class("tracker storage unavailable") == Result::Unavailable);
    CHECK(failure_class("unregistered torrent") == Result::Unregistered);
    CHECK(failure_class("unknown passkey") == Result::Refused);
    CHECK(failure_class("passkey required: announce to /<passkey>/announce") == Result::Refused);
    CHECK(failure_class("missing info_hash") == Result::Malformed);
    CHECK(failure_class("too many info_hash in one scrape") == Result::TooLarge);
}

// ---- the swarm gauges (metrics/host_collectors.cpp) against a fake cache driver ---------------

namespace {

// A cache with stats (ABI 2.2) whose answer the test chooses, and a scrape_all over two torrents
// (3 seeders and 1 leecher in all): which one /metrics used shows in its labels.
chihaya_status g_stats_status = CHIHAYA_OK;
int g_walks = 0;

chihaya_status fake_stats(chihaya_instance*, chihaya_cache_stats* out) {
    out->torrents = 2;
    out->torrents_ipv4 = 2;
    out->torrents_ipv6 = 1;
    out->seeders_ipv4 = 2;
    out->leechers_ipv4 = 1;
    out->seeders_ipv6 = 1;
    out->leechers_ipv6 = 0;
    return g_stats_status;
}

void fake_scrape_all(chihaya_instance*, chihaya_scrape_visit visit, void* ctx, const chihaya_completion* done) {
    ++g_walks;
    chihaya_scrape_entry e{};
    e.struct_size = sizeof e;
    e.complete = 2;
    e.incomplete = 1;
    visit(ctx, &e);
    e.complete = 1;
    e.incomplete = 0;
    visit(ctx, &e);
    done->done(done->ctx, CHIHAYA_OK);
}

bool has(const std::string& text, const std::string& line) { return text.find(line + "\n") != std::string::npos; }

}  // namespace

TEST_CASE("swarm gauges: per family from stats, totals from scrape_all only when stats is absent") {
    chihaya_cache_vtable with_stats{};
    with_stats.struct_size = sizeof with_stats;
    with_stats.scrape_all = &fake_scrape_all;
    with_stats.stats = &fake_stats;
    chihaya_cache_vtable walk_only = with_stats;
    walk_only.stats = nullptr;

    Registry a;
    add_swarm_collector(a, CacheHandle{&with_stats, nullptr, "fake"});
    g_stats_status = CHIHAYA_OK;
    g_walks = 0;
    std::string text = a.render();
    CHECK(has(text, "chihaya_torrents 2"));
    CHECK(has(text, "chihaya_torrents_with_peers{family=\"ipv6\"} 1"));
    CHECK(has(text, "chihaya_peers{family=\"ipv4\",role=\"seeder\"} 2"));
    CHECK(has(text, "chihaya_peers{family=\"ipv4\",role=\"leecher\"} 1"));
    CHECK(has(text, "chihaya_peers{family=\"ipv6\",role=\"seeder\"} 1"));
    CHECK(has(text, "chihaya_peers{family=\"ipv6\",role=\"leecher\"} 0"));
    CHECK(g_walks == 0);  // stats answered: no walk

    CHECK(has(text, "chihaya_cache_stats_failures_total 0"));

    // Cannot answer now: no swarm gauges this scrape, and never the walk's unlabelled
    // chihaya_peers, so the series' labels do not flip with the driver's health.
    g_stats_status = CHIHAYA_UNAVAILABLE;
    text = a.render();
    CHECK(g_walks == 0);
    CHECK(text.find("chihaya_peers") == std::string::npos);
    CHECK(text.find("chihaya_torrents ") == std::string::npos);
    CHECK(has(text, "chihaya_cache_stats_failures_total 1"));
    g_stats_status = CHIHAYA_OK;
    text = a.render();
    CHECK(has(text, "chihaya_peers{family=\"ipv4\",role=\"seeder\"} 2"));
    CHECK(has(text, "chihaya_cache_stats_failures_total 1"));

    Registry b;  // a driver without stats (2.0/2.1, or Redis-like with a walk)
    add_swarm_collector(b, CacheHandle{&walk_only, nullptr, "fake"});
    text = b.render();
    CHECK(has(text, "chihaya_peers{role=\"seeder\"} 3"));
    CHECK(text.find("chihaya_torrents_with_peers") == std::string::npos);
    g_stats_status = CHIHAYA_OK;
}
