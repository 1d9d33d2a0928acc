// One worker per usable CPU: the affinity mask and the cgroup v2 quota both bound it.
#include "process/cpus.hpp"

#include <doctest/doctest.h>

using namespace chihaya;

TEST_CASE("the affinity mask decides when there is no quota") {
    CHECK(usable_cpus(16, "").cpus == 16);
    CHECK(usable_cpus(16, "max 100000").cpus == 16);
    CHECK(usable_cpus(1, "").why.find("affinity") != std::string::npos);
}

TEST_CASE("a cgroup quota below the mask wins, rounded up to whole CPUs") {
    CpuBudget b = usable_cpus(16, "150000 100000");
    CHECK(b.cpus == 2);
    CHECK(b.why.find("cpu.max") != std::string::npos);
    CHECK(usable_cpus(16, "50000 100000").cpus == 1);
    CHECK(usable_cpus(2, "800000 100000").cpus == 2);  // a quota above the mask changes nothing
}
