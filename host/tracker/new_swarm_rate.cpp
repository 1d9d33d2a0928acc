// Token buckets of new swarms per client address, one fixed table shared by every thread.
#include "tracker/new_swarm_rate.hpp"

#include "net/address.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <chrono>

namespace chihaya {
namespace {

uint64_t mix(uint64_t x) noexcept {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Threads read the clock at different moments (an announce reads it when it starts, charge
// once before its CAS retries), so a `now` a little earlier than the slot's stamp is normal. Up
// to this far behind, it refills nothing; further behind can only be the 32-bit clock wrapping
// (a slot idle for 49 days), which the unsigned difference reads as the long idle it was.
constexpr uint32_t kClockSkewMs = 60'000;

// Whether `now_ms` is behind the stamp of `state` (a stale clock read, see kClockSkewMs).
bool stale(uint64_t state, uint64_t now_ms) noexcept {
    const uint32_t ahead = uint32_t(state) - uint32_t(now_ms);
    return ahead != 0 && ahead <= kClockSkewMs;
}

// The deficit after refilling from `state`'s time to `now`, in thousandths of a token. The
// 32-bit clock wraps every 49 days; a slot idle that long may refill less than it should, once.
uint64_t refilled(uint64_t state, uint64_t now_ms, uint32_t per_minute) noexcept {
    const uint64_t deficit = state >> 32;
    if (stale(state, now_ms)) return deficit;  // an earlier `now` refills nothing
    const uint32_t elapsed = uint32_t(now_ms) - uint32_t(state);
    // per_minute tokens a minute = per_minute / 60 thousandths of a token a millisecond.
    const uint64_t refill = uint64_t(elapsed) * per_minute / 60;
    return deficit > refill ? deficit - refill : 0;
}

}  // namespace

NewSwarmRate::NewSwarmRate()
    : NewSwarmRate(mix(uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                       uint64_t(reinterpret_cast<uintptr_t>(this)))) {}

NewSwarmRate::NewSwarmRate(uint64_t seed)
    : seed_(seed), slots_(static_cast<uint64_t*>(std::calloc(kSlots, sizeof(uint64_t)))) {
    if (!slots_) throw std::bad_alloc();  // start-up only
}

std::atomic_ref<uint64_t> NewSwarmRate::slot(const Endpoint& client) const noexcept {
    return std::atomic_ref<uint64_t>(slots_[client_key(client, seed_) & (kSlots - 1)]);
}

bool NewSwarmRate::may_create(const Endpoint& client, uint64_t now_ms, uint32_t per_minute) const noexcept {
    if (per_minute == 0) return true;
    const uint64_t state = slot(client).load(std::memory_order_relaxed);
    // A token is left when the deficit is at most capacity - 1 token.
    return refilled(state, now_ms, per_minute) + 1000 <= uint64_t(per_minute) * 1000;
}

void NewSwarmRate::charge(const Endpoint& client, uint64_t now_ms, uint32_t per_minute) noexcept {
    if (per_minute == 0) return;
    std::atomic_ref<uint64_t> s = slot(client);
    uint64_t state = s.load(std::memory_order_relaxed);
    for (;;) {
        const uint64_t deficit = std::min<uint64_t>(refilled(state, now_ms, per_minute) + 1000,
                                                    uint64_t(per_minute) * 1000);
        // The stamp never moves back: a stale `now` would refill the same time twice.
        const uint32_t stamp = stale(state, now_ms) ? uint32_t(state) : uint32_t(now_ms);
        const uint64_t next = (deficit << 32) | stamp;
        if (s.compare_exchange_weak(state, next, std::memory_order_relaxed)) return;
    }
}

}  // namespace chihaya
