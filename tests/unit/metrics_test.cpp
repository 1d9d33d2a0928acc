// Metrics: bucket choice, per-worker sums on scrape, label escaping, and failure classes.
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
