// Announce cost against swarm size, in the memory driver's Swarm alone (no network, no locks):
// what one announce holds its shard's lock for. Issue: a linear find made a known peer's
// announce cost 21 us at 100,000 peers and 192 us at 1,000,000.
//
//   chihaya_bench_swarm [max_peers]     swarms of 1,000 / 100,000 / 1,000,000 peers (default)
#include "swarm.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

using namespace chihaya::memory;

namespace {

chihaya_announce_request request_for(uint32_t n, uint8_t event, bool seeder) {
    chihaya_announce_request r{};
    r.struct_size = sizeof r;
    r.family = CHIHAYA_IPV4;
    r.event = event;
    // n -> 10.x.y.z:port, 64 peers per address, as many clients behind few addresses.
    uint32_t addr = 0x0a000000u + (n >> 6);
    r.addr[0] = uint8_t(addr >> 24), r.addr[1] = uint8_t(addr >> 16), r.addr[2] = uint8_t(addr >> 8),
    r.addr[3] = uint8_t(addr);
    r.port = uint16_t(10000 + (n & 63));
    r.left = seeder ? 0 : 1000;
    r.numwant = 50;
    r.peer_ttl_s = 3600;
    return r;
}

double per_op_us(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b, size_t ops) {
    return std::chrono::duration<double, std::micro>(b - a).count() / double(ops);
}

}  // namespace

int main(int argc, char** argv) {
    const uint32_t max_peers = argc > 1 ? uint32_t(std::strtoul(argv[1], nullptr, 10)) : 1000000;
    Rng rng(7);
    std::vector<uint8_t> out(50 * 6);
    std::printf("%10s %14s %14s %14s %14s\n", "peers", "fill us/peer", "known us", "new us", "stopped us");
    for (uint32_t size : {1000u, 100000u, 1000000u}) {
        if (size > max_peers) break;
        const uint8_t info_hash[20] = {};
        Swarm swarm(info_hash);
        chihaya_announce_result result{};
        result.struct_size = sizeof result;
        result.peers = out.data();
        result.peers_capacity = 50;
        auto t0 = std::chrono::steady_clock::now();
        for (uint32_t i = 0; i < size; ++i) {
            auto r = request_for(i, CHIHAYA_EVENT_STARTED, i % 4 == 0);
            swarm.announce(r, 100, result, rng);
        }
        auto t1 = std::chrono::steady_clock::now();
        const size_t ops = 200000;
        for (size_t k = 0; k < ops; ++k) {  // known peers, random ones
            auto r = request_for(rng.below(size), CHIHAYA_EVENT_NONE, false);
            swarm.announce(r, 100, result, rng);
        }
        auto t2 = std::chrono::steady_clock::now();
        for (size_t k = 0; k < ops; ++k) {  // new peers joining
            auto r = request_for(size + uint32_t(k), CHIHAYA_EVENT_STARTED, false);
            swarm.announce(r, 100, result, rng);
        }
        auto t3 = std::chrono::steady_clock::now();
        for (size_t k = 0; k < ops; ++k) {  // and leaving again
            auto r = request_for(size + uint32_t(k), CHIHAYA_EVENT_STOPPED, false);
            swarm.announce(r, 100, result, rng);
        }
        auto t4 = std::chrono::steady_clock::now();
        std::printf("%10u %14.3f %14.3f %14.3f %14.3f\n", size, per_op_us(t0, t1, size),
                    per_op_us(t1, t2, ops), per_op_us(t2, t3, ops), per_op_us(t3, t4, ops));
        if (swarm.peer_count() != size) {
            std::fprintf(stderr, "swarm holds %u peers, expected %u\n", swarm.peer_count(), size);
            return 1;
        }
    }
    return 0;
}
