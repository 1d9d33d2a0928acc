// Bytes per peer of the memory driver alone (no host, no network), for a mix of IPv4 and IPv6
// peers that bench/run cannot send (its uniform workload is IPv4 only, like Debian's opentracker).
// Fills TORRENTS swarms of PER peers each through MemoryCache::announce and reports the growth of
// RSS and of malloc's bytes in use per peer. Every peer gives a BEP 7 key, as real clients do.
//
//   chihaya_bench_memory [TORRENTS=2000000] [PER=10] [IPV6_SHARE=0] [sequential|interleaved] [nokeys]
//
// sequential fills one swarm after the other (as bench/run's fill does); interleaved adds one
// peer to every swarm in turn, so every block grows while the others do (more fragmentation).
#include "memory_cache.hpp"

#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

using namespace chihaya::memory;

namespace {

long rss_kib() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const uint64_t torrents = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2'000'000;
    const uint32_t per = argc > 2 ? uint32_t(std::strtoul(argv[2], nullptr, 10)) : 10;
    const double v6_share = argc > 3 ? std::atof(argv[3]) : 0;
    const bool interleaved = argc > 4 && std::strcmp(argv[4], "interleaved") == 0;
    const bool keys = !(argc > 5 && std::strcmp(argv[5], "nokeys") == 0);
    if (torrents == 0 || per == 0 || v6_share < 0 || v6_share > 1) {
        std::fprintf(stderr, "usage: chihaya_bench_memory [TORRENTS] [PER] [IPV6_SHARE 0..1] [sequential|interleaved] [nokeys]\n");
        return 2;
    }
    // Peer p of each swarm is IPv6 when p's place in the swarm falls in the share: the same
    // families in every swarm, so a share of 0.2 with PER 10 is 8 IPv4 and 2 IPv6 peers each.
    const uint32_t v6_from = per - uint32_t(v6_share * per + 0.5);

    const long rss0 = rss_kib();
    MemoryCache cache({1024, 64}, 0);
    const long rss1 = rss_kib();
    const size_t heap1 = mallinfo2().uordblks;
    const uint64_t peers = torrents * per;
    uint8_t out[50 * 18];
    const auto start = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < peers; ++i) {
        const uint64_t t = interleaved ? i % torrents : i / per;
        const uint32_t p = uint32_t(interleaved ? i / torrents : i % per);
        chihaya_announce_request r{};
        r.struct_size = sizeof r;
        std::memcpy(r.info_hash, &t, sizeof t);
        r.info_hash[19] = 0x5a;
        r.event = CHIHAYA_EVENT_STARTED;
        const uint32_t host = uint32_t(0x0a000000u + i);
        if (p >= v6_from) {
            r.family = CHIHAYA_IPV6;
            r.addr[0] = 0x20, r.addr[1] = 0x01;
            std::memcpy(r.addr + 12, &host, 4);
        } else {
            r.family = CHIHAYA_IPV4;
            std::memcpy(r.addr, &host, 4);
        }
        r.port = uint16_t(10000 + p);
        r.left = p == 0 ? 0 : 1;
        r.has_key = keys;
        r.key = uint32_t(i * 2654435761u) | 1;
        r.numwant = 50;
        r.peer_ttl_s = 2700;
        r.now_ms = 1'000'000;
        chihaya_announce_result res{};
        res.struct_size = sizeof res;
        res.peers = out;
        res.peers_capacity = 50;
        if (cache.announce(r, res) != CHIHAYA_OK) {
            std::fprintf(stderr, "chihaya_bench_memory: announce %llu refused: %s\n", (unsigned long long)i, res.message);
            return 1;
        }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const long rss2 = rss_kib();
    const size_t heap2 = mallinfo2().uordblks;
    std::printf("torrents=%llu per_torrent=%u ipv6_share=%.2f keys=%d order=%s peers=%zu fill_s=%.1f "
                "empty_cache_kib=%ld rss_bytes_per_peer=%.1f heap_bytes_per_peer=%.1f\n",
                (unsigned long long)torrents, per, double(per - v6_from) / per, keys ? 1 : 0,
                interleaved ? "interleaved" : "sequential", cache.peer_count(), seconds, rss1 - rss0,
                double(rss2 - rss1) * 1024 / double(peers), double(heap2 - heap1) / double(peers));
    return 0;
}
