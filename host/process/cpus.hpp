// How many CPUs this process may really use: what `threads = 0` (one worker per core) means.
#pragma once

#include <string>

namespace chihaya {

struct CpuBudget {
    unsigned cpus = 1;   // whole CPUs the workers may keep busy (at least 1)
    std::string why;     // for the log: which limit decided it
};

// The smallest of: the CPUs in the affinity mask (taskset, cpusets), and the cgroup v2 quota
// (cpu.max "quota period", rounded up) of the process's cgroup. hardware_concurrency() alone
// counts the machine's cores, so under `taskset -c 0` or a one-CPU container quota it ran
// two or more workers on one core, and their latency doubled.
CpuBudget usable_cpus();

// The same, from explicit inputs (for tests): `affinity` CPUs, and the text of cpu.max (empty
// when there is no cgroup v2 limit to read).
CpuBudget usable_cpus(unsigned affinity, const std::string& cpu_max);

}  // namespace chihaya
