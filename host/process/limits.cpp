// RLIMIT_NOFILE at start-up: the soft limit (often 1024) would shed HTTP connections at accept
// (EMFILE) long before max_connections, and the log would only show failing accepts.
#include "process/limits.hpp"

#include <sys/resource.h>

namespace chihaya {

uint64_t open_files_needed(const Config& config, unsigned threads) {
    constexpr uint64_t kProcessReserve = 256;
    uint64_t per_worker = 0;
    if (config.http.enabled) per_worker += uint64_t(config.http.max_connections) + config.http.listen.size();
    if (config.udp.enabled) per_worker += config.udp.listen.size();
    return uint64_t(threads) * per_worker + kProcessReserve;
}

std::string OpenFilesLimit::describe() const {
    const std::string numbers = "needs " + std::to_string(needed) + " (workers x http.max_connections + sockets + 256)";
    if (soft_before >= needed) return "open files limit " + std::to_string(soft_before) + ": enough, " + numbers;
    if (enough())
        return "open files limit raised from " + std::to_string(soft_before) + " to " + std::to_string(soft) +
               ": the configuration " + numbers;
    return "open files limit is " + std::to_string(soft) + " (hard limit " + std::to_string(hard) +
           ") but the configuration " + numbers +
           ": connections past it are refused at accept; raise the hard limit (systemd LimitNOFILE=, "
           "ulimit -Hn) or lower http.max_connections / workers.threads";
}

OpenFilesLimit raise_open_files(uint64_t needed) {
    OpenFilesLimit out;
    out.needed = needed;
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return out;
    out.soft_before = out.soft = rl.rlim_cur;
    out.hard = rl.rlim_max;
    if (rl.rlim_cur >= needed) return out;
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= needed ? needed : rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) out.soft = want.rlim_cur;
    return out;
}

}  // namespace chihaya
