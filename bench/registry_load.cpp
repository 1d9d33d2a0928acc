// How long the private-mode directory takes to absorb a large registry, and what it costs in
// memory, without the database: the tracker's own share of a start-up load (the storage
// driver's streaming adds to it; bench/README.md has both figures).
//
//   chihaya_bench_registry [users] [torrents]     defaults 1,000,000 each
#include "private/directory.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

uint64_t resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    uint64_t pages = 0, resident = 0;
    statm >> pages >> resident;
    return resident * uint64_t(::sysconf(_SC_PAGESIZE));
}

}  // namespace

int main(int argc, char** argv) {
    const uint64_t users = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
    const uint64_t torrents = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1000000;
    chihaya::Directory directory;
    const chihaya_registry_sink* sink = directory.sink();
    const uint64_t before = resident_bytes();
    const auto start = std::chrono::steady_clock::now();
    char passkey[33];
    for (uint64_t i = 0; i < users; ++i) {
        std::snprintf(passkey, sizeof passkey, "%032llx", static_cast<unsigned long long>(i * 0x9E3779B97F4A7C15ull));
        chihaya_user u{};
        u.struct_size = sizeof u;
        u.id = i + 1;
        u.flags = CHIHAYA_ENABLED;
        u.passkey = {passkey, 32};
        u.upload_multiplier = u.download_multiplier = CHIHAYA_MULTIPLIER_ONE;
        sink->put_user(sink->ctx, &u);
    }
    const auto users_done = std::chrono::steady_clock::now();
    const uint64_t after_users = resident_bytes();
    for (uint64_t i = 0; i < torrents; ++i) {
        chihaya_torrent t{};
        t.struct_size = sizeof t;
        t.id = i + 1;
        t.flags = CHIHAYA_ENABLED;
        uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull;
        for (int b = 0; b < 20; ++b) {
            x ^= x >> 31;
            x *= 0xBF58476D1CE4E5B9ull;
            t.info_hash[b] = uint8_t(x >> 56);
        }
        t.upload_multiplier = t.download_multiplier = CHIHAYA_MULTIPLIER_ONE;
        sink->put_torrent(sink->ctx, &t);
    }
    sink->loaded(sink->ctx);
    const auto end = std::chrono::steady_clock::now();
    const uint64_t after = resident_bytes();
    auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    std::printf("users     %10llu in %6.2f s, %6.1f B each\n", static_cast<unsigned long long>(users),
                seconds(start, users_done), double(after_users - before) / double(users ? users : 1));
    std::printf("torrents  %10llu in %6.2f s, %6.1f B each\n", static_cast<unsigned long long>(torrents),
                seconds(users_done, end), double(after - after_users) / double(torrents ? torrents : 1));
    std::printf("total     %6.2f s, %.1f MiB resident\n", seconds(start, end), double(after - before) / (1 << 20));
    return directory.users() == users && directory.torrents() == torrents ? 0 : 1;
}
