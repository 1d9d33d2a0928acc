// chihaya_bench_snapshot: how long the memory driver takes to write and load a snapshot of
// PEERS peers (default 20 million: 4 million torrents x 5 IPv4 peers).
//   chihaya_bench_snapshot [PEERS] [PATH]
#include "memory_cache.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

using namespace chihaya::memory;
using Clock = std::chrono::steady_clock;

static double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int main(int argc, char** argv) {
    const uint64_t peers = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20'000'000;
    const std::string path = argc > 2 ? argv[2] : "/tmp/chihaya-bench.snapshot";
    const uint64_t per_torrent = 5;
    const uint64_t now = 1'000'000;
    uint8_t out[64];
    {
        MemoryCache cache({1024, 64}, 0);
        auto t = Clock::now();
        for (uint64_t i = 0; i < peers; ++i) {
            chihaya_announce_request r{};
            r.struct_size = sizeof r;
            const uint64_t torrent = i / per_torrent;
            std::memcpy(r.info_hash, &torrent, 8);
            r.info_hash[19] = 0x5a;
            r.family = CHIHAYA_IPV4;
            r.event = CHIHAYA_EVENT_STARTED;
            const uint32_t addr = uint32_t(0x0a000000u + i);
            std::memcpy(r.addr, &addr, 4);
            r.port = uint16_t(1000 + i % per_torrent);
            r.left = i % per_torrent == 0 ? 0 : 1;
            r.peer_ttl_s = 2700;
            r.now_ms = now;
            chihaya_announce_result res{};
            res.struct_size = sizeof res;
            res.peers = out;
            cache.announce(r, res);
        }
        std::printf("filled %llu peers in %.2f s\n", (unsigned long long)cache.peer_count(), since(t));
        t = Clock::now();
        auto saved = cache.save_snapshot(path, now);
        std::printf("saved %llu peers, %llu torrents in %.2f s, %.0f MiB\n", (unsigned long long)saved.peers,
                    (unsigned long long)saved.torrents, since(t),
                    double(std::filesystem::file_size(path)) / (1 << 20));
    }
    MemoryCache fresh({1024, 64}, 0);
    auto t = Clock::now();
    auto loaded = fresh.load_snapshot(path, now, [&](uint64_t n) {
        if (n % 5'000'000 == 0) std::printf("  %llu million peers read, %.2f s\n", (unsigned long long)(n / 1'000'000), since(t));
    });
    std::printf("loaded %llu peers, %llu torrents in %.2f s\n", (unsigned long long)loaded.peers,
                (unsigned long long)loaded.torrents, since(t));
    std::filesystem::remove(path);
    return 0;
}
