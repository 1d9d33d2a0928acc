// Shared by both workloads of chihaya_loadgen: clock, random numbers, BEP 15 byte helpers, the
// latency histogram and the per-phase figures with their key=value line.
#pragma once

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace loadgen {

using Clock = std::chrono::steady_clock;

inline int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
        .count();
}

inline uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed) {}
    uint64_t next() { return state_ = splitmix64(state_); }
    uint32_t below(uint32_t n) { return static_cast<uint32_t>((next() >> 32) * n >> 32); }

private:
    uint64_t state_;
};

// The bytes of an info_hash or peer id: a pure function of the seed and two numbers, so every
// thread, run and tool (opentracker's whitelist) derives the same ones.
inline void derive_bytes(uint64_t seed, uint64_t a, uint64_t b, uint8_t* out, size_t n) {
    uint64_t x = splitmix64(seed ^ splitmix64(a ^ splitmix64(b)));
    for (size_t i = 0; i < n; ++i) {
        if (i % 8 == 0) x = splitmix64(x);
        out[i] = static_cast<uint8_t>(x >> (8 * (i % 8)));
    }
}

enum class Event : uint32_t { None = 0, Completed = 1, Started = 2, Stopped = 3 };  // BEP 15 values

// Log-linear latency histogram in microseconds: exact below 64 us, then 32 buckets per power of
// two (about 3% resolution), so p99 needs no per-request storage.
class Histogram {
public:
    void add(int64_t us) {
        ++counts_[index(static_cast<uint64_t>(std::max<int64_t>(us, 0)))];
        ++total_;
    }
    void merge(const Histogram& o) {
        for (size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
        total_ += o.total_;
    }
    uint64_t total() const { return total_; }
    uint64_t quantile(double q) const {
        if (total_ == 0) return 0;
        uint64_t want = static_cast<uint64_t>(q * static_cast<double>(total_ - 1)) + 1, seen = 0;
        for (size_t i = 0; i < counts_.size(); ++i)
            if ((seen += counts_[i]) >= want) return lower_bound(i);
        return lower_bound(counts_.size() - 1);
    }

private:
    static size_t index(uint64_t v) {
        if (v < 64) return v;
        int e = 63 - __builtin_clzll(v);  // >= 6
        size_t i = 64 + size_t(e - 6) * 32 + ((v >> (e - 5)) & 31);
        return std::min(i, kBuckets - 1);
    }
    static uint64_t lower_bound(size_t i) {
        if (i < 64) return i;
        size_t e = (i - 64) / 32 + 6, sub = (i - 64) % 32;
        return (uint64_t(1) << e) + (uint64_t(sub) << (e - 5));
    }
    static constexpr size_t kBuckets = 64 + 32 * 40;
    std::array<uint64_t, kBuckets> counts_{};
    uint64_t total_ = 0;
};

struct Stats {
    uint64_t sent = 0;
    uint64_t ok = 0;
    uint64_t errors = 0;
    uint64_t timeouts = 0;
    uint64_t late = 0;        // answers that came after their timeout was counted
    uint64_t peers = 0;
    uint64_t self_peers = 0;  // replies that named the requesting peer itself
    uint64_t retries = 0;     // HTTP requests resent after the server closed a kept-alive connection
    Histogram latency;
    int64_t start_us = 0;
    int64_t end_us = 0;
    std::vector<std::string> samples;  // the first few errors, word for word

    void error(std::string what) {
        ++errors;
        if (samples.size() < 5) samples.push_back(std::move(what));
    }
    void merge(const Stats& o) {
        sent += o.sent; ok += o.ok; errors += o.errors; timeouts += o.timeouts; late += o.late;
        peers += o.peers; self_peers += o.self_peers; retries += o.retries;
        latency.merge(o.latency);
        start_us = start_us == 0 ? o.start_us : std::min(start_us, o.start_us);
        end_us = std::max(end_us, o.end_us);
        for (auto& s : o.samples)
            if (samples.size() < 5) samples.push_back(s);
    }
};

inline void report(const char* mode, const char* phase, const Stats& s, uint32_t threads) {
    double secs = std::max(1e-9, double(s.end_us - s.start_us) / 1e6);
    std::printf("mode=%s phase=%s announces=%" PRIu64 " seconds=%.2f rate=%.0f p50_us=%" PRIu64
                " p99_us=%" PRIu64 " errors=%" PRIu64 " timeouts=%" PRIu64 " late=%" PRIu64
                " peers_per_reply=%.2f self_peers=%" PRIu64 " retries=%" PRIu64 " threads=%u\n",
                mode, phase, s.ok, secs, double(s.ok) / secs, s.latency.quantile(0.50),
                s.latency.quantile(0.99), s.errors, s.timeouts, s.late,
                s.ok ? double(s.peers) / double(s.ok) : 0.0, s.self_peers, s.retries, threads);
    for (auto& e : s.samples) std::fprintf(stderr, "  %s error: %s\n", phase, e.c_str());
    std::fflush(stdout);
}

inline void put32(uint8_t* p, uint32_t v) { v = htonl(v); std::memcpy(p, &v, 4); }
inline void put64(uint8_t* p, uint64_t v) { put32(p, uint32_t(v >> 32)); put32(p + 4, uint32_t(v)); }
inline uint32_t get32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return ntohl(v); }
inline uint64_t get64(const uint8_t* p) { return (uint64_t(get32(p)) << 32) | get32(p + 4); }

inline constexpr uint64_t kProtocolId = 0x41727101980ull;
inline constexpr int64_t kConnectionIdMaxAgeUs = 60'000'000;  // BEP 15: a client may use an id for 1 min

}  // namespace loadgen
