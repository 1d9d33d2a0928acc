// CPUs from the affinity mask and the cgroup v2 quota.
#include "process/cpus.hpp"

#include <sched.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace chihaya {
namespace {

// The cgroup v2 path of this process ("0::/some/group"), or empty.
std::string cgroup_v2_path() {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("0::", 0) == 0) return line.substr(3);
    return "";
}

// cpu.max of our cgroup and of each ancestor: the tightest quota applies.
std::string tightest_cpu_max() {
    std::string path = cgroup_v2_path();
    if (path.empty()) return "";
    std::string best;
    double best_cpus = 0;
    for (;;) {
        std::ifstream in("/sys/fs/cgroup" + (path == "/" ? std::string() : path) + "/cpu.max");
        std::string text;
        if (in && std::getline(in, text)) {
            std::istringstream fields(text);
            std::string quota;
            double period = 0;
            fields >> quota >> period;
            if (quota != "max" && period > 0) {
                double cpus = std::stod(quota) / period;
                if (best.empty() || cpus < best_cpus) best = text, best_cpus = cpus;
            }
        }
        if (path.empty() || path == "/") break;
        auto slash = path.rfind('/');
        path = slash == 0 ? "/" : path.substr(0, slash);
    }
    return best;
}

}  // namespace

CpuBudget usable_cpus(unsigned affinity, const std::string& cpu_max) {
    CpuBudget budget;
    budget.cpus = affinity ? affinity : 1;
    budget.why = std::to_string(budget.cpus) + " CPU(s) in the affinity mask";
    std::istringstream fields(cpu_max);
    std::string quota;
    double period = 0;
    fields >> quota >> period;
    if (!quota.empty() && quota != "max" && period > 0) {
        const double cpus = std::stod(quota) / period;
        unsigned whole = unsigned(cpus);
        if (double(whole) < cpus) ++whole;  // a partial CPU still runs a worker
        if (whole == 0) whole = 1;
        if (whole < budget.cpus) {
            budget.cpus = whole;
            budget.why = "cgroup cpu.max quota of " + std::to_string(cpus).substr(0, 4) + " CPU(s)";
        }
    }
    return budget;
}

CpuBudget usable_cpus() {
    unsigned affinity = 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) affinity = unsigned(CPU_COUNT(&set));
    if (affinity == 0) affinity = std::max(1u, std::thread::hardware_concurrency());
    return usable_cpus(affinity, tightest_cpu_max());
}

}  // namespace chihaya
