// A UDP worker's calls held by a driver: oldest first, due ones taken at their deadline, the
// ones that came back unlisted, and the order kept when a reload shortens the timeout.
#include "frontend/udp/pending_calls.hpp"

#include <doctest/doctest.h>

#include <vector>

using chihaya::udp::PendingCalls;

namespace {

std::vector<uint32_t> due(PendingCalls& pending, uint64_t now_ms) {
    std::vector<uint32_t> out;
    pending.take_due(now_ms, [&](uint32_t index) { out.push_back(index); });
    return out;
}

}  // namespace

TEST_CASE("calls are taken at their deadline, oldest first, and only those due") {
    PendingCalls pending(8);
    CHECK(pending.empty());
    pending.add(5, 1000);
    pending.add(2, 1010);
    pending.add(7, 1020);
    CHECK(pending.next_deadline() == 1000);
    CHECK(due(pending, 999).empty());
    CHECK(due(pending, 1010) == std::vector<uint32_t>{5, 2});
    CHECK_FALSE(pending.contains(5));
    CHECK(pending.contains(7));
    CHECK(pending.next_deadline() == 1020);
    CHECK(due(pending, 5000) == std::vector<uint32_t>{7});
    CHECK(pending.empty());
}

TEST_CASE("a call that came back is never taken; removing it twice is harmless") {
    PendingCalls pending(4);
    pending.add(0, 10);
    pending.add(1, 20);
    pending.add(2, 30);
    pending.remove(1);  // the middle
    pending.remove(1);
    pending.remove(3);  // never listed
    CHECK(due(pending, 100) == std::vector<uint32_t>{0, 2});
    pending.add(1, 40);
    pending.remove(1);  // the only one
    CHECK(pending.empty());
    pending.add(3, 50);  // a slot index comes back with a new deadline
    CHECK(pending.next_deadline() == 50);
    pending.remove(3);
    CHECK(pending.empty());
}

TEST_CASE("a shorter timeout after a reload waits for the calls before it") {
    PendingCalls pending(4);
    pending.add(0, 5000);
    pending.add(1, 200);  // started later with a shorter timeout
    CHECK(due(pending, 4999).empty());
    CHECK(due(pending, 5000) == std::vector<uint32_t>{0, 1});
}
