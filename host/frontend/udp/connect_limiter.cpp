// Token buckets for connect requests, one fixed table per worker.
#include "frontend/udp/connect_limiter.hpp"

#include "net/address.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace chihaya::udp {
namespace {

uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

}  // namespace

ConnectLimiter::ConnectLimiter(uint32_t per_second, uint32_t burst, size_t slots)
    : per_second_(per_second), burst_(burst < 1 ? 1 : burst),
      seed_(mix(uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                uint64_t(reinterpret_cast<uintptr_t>(this)))),
      slots_(slots), buckets_(per_second ? slots : 0) {}

void ConnectLimiter::configure(uint32_t per_second, uint32_t burst) {
    per_second_ = per_second;
    burst_ = burst < 1 ? 1 : burst;
    if (per_second_ != 0 && buckets_.empty()) buckets_.resize(slots_);
}

uint64_t ConnectLimiter::key_of(const Endpoint& source) const { return client_key(source, seed_); }

bool ConnectLimiter::admit(const Endpoint& source, uint64_t now_ms) {
    if (per_second_ == 0) return true;
    const uint64_t key = key_of(source);
    Bucket& b = buckets_[key % buckets_.size()];
    if (b.key != key) b = Bucket{key, now_ms, burst_ * 1000u};  // a new owner starts full
    const uint64_t elapsed = now_ms > b.updated_ms ? now_ms - b.updated_ms : 0;
    const uint64_t cap = uint64_t(burst_) * 1000u;
    // elapsed ms x tokens per second = thousandths of a token.
    b.tokens_milli = uint32_t(std::min<uint64_t>(cap, b.tokens_milli + elapsed * per_second_));
    b.updated_ms = now_ms;
    if (b.tokens_milli < 1000) return false;
    b.tokens_milli -= 1000;
    return true;
}

}  // namespace chihaya::udp
