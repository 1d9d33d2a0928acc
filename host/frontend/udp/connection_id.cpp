// BEP 15 connection ids: SipHash-2-4 (libsodium crypto_shorthash) of the client and a window.
#include "frontend/udp/connection_id.hpp"

#include <sodium.h>

#include <cstring>
#include <stdexcept>

namespace chihaya {

static_assert(crypto_shorthash_KEYBYTES == 16 && crypto_shorthash_BYTES == 8);

ConnectionIdKey ConnectionIdKey::random() {
    // randombytes_buf needs the library initialised; sodium_init is idempotent and thread-safe.
    if (sodium_init() < 0) throw std::runtime_error("udp: libsodium failed to initialise");
    std::array<uint8_t, 16> secret;
    randombytes_buf(secret.data(), secret.size());
    return ConnectionIdKey(secret);
}

ConnectionIdKey ConnectionIdKey::from_hex(const std::string& hex) {
    std::array<uint8_t, 16> secret{};
    size_t used = 0;
    if (hex.size() != 32 || sodium_hex2bin(secret.data(), secret.size(), hex.data(), hex.size(),
                                           nullptr, &used, nullptr) != 0 || used != 16)
        throw std::runtime_error("udp: connection_id_secret must be 32 hex digits");
    return ConnectionIdKey(secret);
}

// SipHash is a PRF: without the key an id cannot be computed for an address the attacker does
// not receive packets at, so a valid id proves the sender can read replies sent to it (which is
// what stops spoofed announces). The port is left out on purpose: a client keeps one id per
// tracker and may announce from several sockets (libtorrent shares it between sessions), and a
// NAT may change the port; binding to the port would refuse them and protect nothing more, since
// whoever reads replies at the address reads them at every port. The input is fixed-size so no
// two clients share an encoding.
uint64_t ConnectionIdKey::hash(const Endpoint& client, uint64_t window) const {
    uint8_t in[1 + 16 + 8];
    in[0] = uint8_t(client.family);
    std::memcpy(in + 1, client.addr.data(), 16);
    for (int i = 0; i < 8; ++i) in[17 + i] = uint8_t(window >> (56 - 8 * i));
    uint8_t out[8];
    crypto_shorthash(out, in, sizeof in, secret_.data());
    uint64_t id;
    std::memcpy(&id, out, sizeof id);
    return id;
}

uint64_t ConnectionIdKey::issue(const Endpoint& client, uint64_t now_s) const {
    return hash(client, now_s / window_s);
}

// A 64-bit == compiles to one branch on the whole value, so timing reveals nothing about which
// bytes matched; sodium_memcmp would buy nothing here.
bool ConnectionIdKey::valid(uint64_t id, const Endpoint& client, uint64_t now_s) const {
    uint64_t window = now_s / window_s;
    if (id == hash(client, window)) return true;
    return window > 0 && id == hash(client, window - 1);
}

}  // namespace chihaya
