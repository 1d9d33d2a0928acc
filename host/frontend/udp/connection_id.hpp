// BEP 15 connection ids that need no server state: a keyed hash of the client's IP address and a
// two-minute time window. The current and the previous window are accepted.
#pragma once

#include "tracker/types.hpp"

#include <array>
#include <cstdint>
#include <string>

namespace chihaya {

class ConnectionIdKey {
public:
    static ConnectionIdKey random();  // a fresh secret from the OS; one per process
    // 32 hex digits (checked by the config loader), shared by hosts behind one address.
    static ConnectionIdKey from_hex(const std::string& hex);
    explicit ConnectionIdKey(const std::array<uint8_t, 16>& secret) : secret_(secret) {}

    // `now_s`: Unix seconds (shared by hosts that share a secret). The id is valid for at least `window_s` and at most 2 windows.
    uint64_t issue(const Endpoint& client, uint64_t now_s) const;
    bool valid(uint64_t id, const Endpoint& client, uint64_t now_s) const;

    static constexpr uint64_t window_s = 120;

private:
    uint64_t hash(const Endpoint& client, uint64_t window) const;
    std::array<uint8_t, 16> secret_;
};

}  // namespace chihaya
