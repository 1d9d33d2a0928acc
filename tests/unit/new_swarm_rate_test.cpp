// [limits] new_torrents_per_address: the host's token buckets of new swarms per client address.
#include "tracker/new_swarm_rate.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <fstream>
#include <memory>
#include <thread>
#include <vector>

using namespace chihaya;

namespace {

Endpoint v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    Endpoint e;
    e.family = CHIHAYA_IPV4;
    e.addr = {a, b, c, d};
    return e;
}

Endpoint v6(uint8_t net, uint8_t host) {
    Endpoint e;
    e.family = CHIHAYA_IPV6;
    e.addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, net, 0, 0, 0, 0, 0, 0, 0, host};
    return e;
}

// How many swarms `who` may create in a row at `now_ms`, charging each (bounded).
uint32_t create_all(NewSwarmRate& rate, const Endpoint& who, uint64_t now_ms, uint32_t per_minute) {
    uint32_t n = 0;
    while (n < 10 * per_minute + 10 && rate.may_create(who, now_ms, per_minute)) {
        rate.charge(who, now_ms, per_minute);
        ++n;
    }
    return n;
}

long rss_kib() {  // statm: size, then resident, in pages
    long size = 0, resident = 0;
    std::ifstream("/proc/self/statm") >> size >> resident;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

}  // namespace

// Its 512 KiB table costs RAM only as addresses touch it (new_swarm_rate.hpp): zeroing it at
// start made every page resident in every tracker, limited or not.
TEST_CASE("the table costs no RAM until addresses use it") {
    const long before = rss_kib();
    std::vector<std::unique_ptr<NewSwarmRate>> tables;
    for (int i = 0; i < 8; ++i) tables.push_back(std::make_unique<NewSwarmRate>(uint64_t(i)));
    const long grown = rss_kib() - before;
    INFO("RSS grew " << grown << " KiB for 8 tables of " << NewSwarmRate::kSlots * 8 / 1024 << " KiB");
    CHECK(grown < 512);  // one table's worth for all eight; zeroed, they took 4 MiB
    CHECK(create_all(*tables[3], v4(10, 0, 0, 1), 1'000'000, 5) == 5);  // and they work
}

TEST_CASE("an address creates per_minute swarms at once, then one each 60/per_minute seconds") {
    NewSwarmRate rate(42);
    const Endpoint a = v4(192, 0, 2, 1);
    CHECK(create_all(rate, a, 1000, 30) == 30);
    CHECK_FALSE(rate.may_create(a, 1000, 30));
    CHECK_FALSE(rate.may_create(a, 2999, 30));  // a token takes 2 s at 30 a minute
    CHECK(rate.may_create(a, 3000, 30));
    CHECK(create_all(rate, a, 3000, 30) == 1);
    CHECK(create_all(rate, a, 3000 + 60'000, 30) == 30);  // a minute refills the whole bucket, no more
}

TEST_CASE("one address's empty bucket leaves other addresses theirs") {
    NewSwarmRate rate(42);
    CHECK(create_all(rate, v4(192, 0, 2, 1), 1000, 10) == 10);
    CHECK(rate.may_create(v4(192, 0, 2, 2), 1000, 10));
    CHECK(create_all(rate, v4(198, 51, 100, 7), 1000, 10) == 10);
    CHECK(create_all(rate, v6(1, 1), 1000, 10) == 10);
}

TEST_CASE("IPv6 addresses count per /64") {
    NewSwarmRate rate(42);
    CHECK(create_all(rate, v6(1, 1), 1000, 10) == 10);
    CHECK_FALSE(rate.may_create(v6(1, 2), 1000, 10));  // the same /64
    CHECK(rate.may_create(v6(2, 1), 1000, 10));        // another /64
}

TEST_CASE("0 means no limit, and a changed rate keeps what the bucket had spent") {
    NewSwarmRate rate(42);
    const Endpoint a = v4(192, 0, 2, 1);
    for (int i = 0; i < 1000; ++i) rate.charge(a, 1000, 0);
    CHECK(rate.may_create(a, 1000, 0));
    CHECK(create_all(rate, a, 1000, 10) == 10);
    CHECK(create_all(rate, a, 1000, 20) == 10);  // a reload to 20: ten more, not twenty
}

TEST_CASE("concurrent charges from several threads are all counted") {
    NewSwarmRate rate(42);
    const Endpoint a = v4(192, 0, 2, 1);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 25; ++i) rate.charge(a, 1000, 100);
        });
    for (auto& t : threads) t.join();
    CHECK_FALSE(rate.may_create(a, 1000, 100));
    CHECK(rate.may_create(a, 1600, 100));  // 0.6 s at 100 a minute: one token back
}

TEST_CASE("a stale now (a clock read a little before the stamp) refills nothing") {
    NewSwarmRate rate(42);
    const Endpoint a = v4(192, 0, 2, 1);
    CHECK(create_all(rate, a, 10'000, 10) == 10);
    // Another thread read the clock 5 ms earlier: the bucket stays empty, not refilled whole.
    CHECK_FALSE(rate.may_create(a, 9'995, 10));
    CHECK(create_all(rate, a, 9'995, 10) == 0);
    rate.charge(a, 9'995, 10);  // a charge with a stale clock keeps the later stamp
    CHECK_FALSE(rate.may_create(a, 10'000 + 5'999, 10));  // a token takes 6 s from the stamp
    CHECK(rate.may_create(a, 10'000 + 6'000, 10));
    // Seemingly more than a minute ahead: only the 32-bit clock wrapping after a 49-day idle,
    // which refills the bucket.
    CHECK(create_all(rate, a, 10'000 + (uint64_t(1) << 32) - 120'000, 10) == 10);
}
