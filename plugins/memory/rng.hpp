// rng.hpp: the per-thread fast random generator that picks which peers an announce returns.
#pragma once

#include <chrono>
#include <cstdint>

namespace chihaya::memory {

// wyrand: one multiply per draw and 8 bytes of state. Peer selection only needs "not the same
// peers every time", not unpredictability against an attacker, so a cryptographic generator
// would be wasted on the hot path.
class Rng {
public:
    explicit Rng(uint64_t seed) noexcept : state_(seed) {}

    uint64_t next() noexcept {
        state_ += 0xa0761d6478bd642full;
        __uint128_t m = static_cast<__uint128_t>(state_) * (state_ ^ 0xe7037ed1a0b428dbull);
        return static_cast<uint64_t>(m >> 64) ^ static_cast<uint64_t>(m);
    }

    // Uniform enough in [0, bound) for bound < 2^32 (Lemire's multiply-shift, no division).
    uint32_t below(uint32_t bound) noexcept {
        return static_cast<uint32_t>((static_cast<uint64_t>(static_cast<uint32_t>(next())) * bound) >> 32);
    }

    // One generator per thread, so workers never contend on it. Seeded from the clock and the
    // state's own address, which differs per thread.
    static Rng& for_this_thread() noexcept {
        thread_local Rng rng(0);
        thread_local bool seeded = false;
        if (!seeded) {
            auto t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
            rng = Rng(t ^ (reinterpret_cast<uintptr_t>(&rng) * 0x9e3779b97f4a7c15ull));
            seeded = true;
        }
        return rng;
    }

private:
    uint64_t state_;
};

}  // namespace chihaya::memory
