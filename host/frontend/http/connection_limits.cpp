// Open HTTP connections per client address (see connection_limits.hpp for the threat).
#include "frontend/http/connection_limits.hpp"

#include <cstring>
#include <random>

namespace chihaya::http {

ConnectionLimits::Key ConnectionLimits::key_of(const Endpoint& client) {
    Key k{};
    k[0] = uint8_t(client.family);
    std::memcpy(k.data() + 1, client.addr.data(), client.family == CHIHAYA_IPV4 ? 4 : 8);
    return k;
}

ConnectionLimits::ConnectionLimits(uint32_t per_address)
    : per_address_(per_address),
      open_(0, KeyHash{(uint64_t(std::random_device{}()) << 32) | std::random_device{}()}) {}

void ConnectionLimits::set_per_address(uint32_t per_address) {
    std::lock_guard lock(mutex_);
    per_address_ = per_address;
}

// FNV-1a from a random seed, then a finalizer: enough to keep chosen addresses from sharing a
// chain, and the table only holds addresses that have a connection open.
size_t ConnectionLimits::KeyHash::operator()(const Key& k) const noexcept {
    uint64_t h = seed ^ 1469598103934665603ull;
    for (uint8_t b : k) h = (h ^ b) * 1099511628211ull;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return size_t(h ^ (h >> 29));
}

bool ConnectionLimits::try_open(const Endpoint& client) {
    std::lock_guard lock(mutex_);
    uint32_t& n = open_[key_of(client)];
    if (per_address_ != 0 && n >= per_address_) return false;
    ++n;
    return true;
}

void ConnectionLimits::close(const Endpoint& client) {
    std::lock_guard lock(mutex_);
    auto it = open_.find(key_of(client));
    if (it == open_.end()) return;
    if (--it->second == 0) open_.erase(it);
}

uint32_t ConnectionLimits::open(const Endpoint& client) const {
    std::lock_guard lock(mutex_);
    auto it = open_.find(key_of(client));
    return it == open_.end() ? 0 : it->second;
}

}  // namespace chihaya::http
