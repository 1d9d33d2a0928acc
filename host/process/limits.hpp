// The descriptor budget the configuration needs (RLIMIT_NOFILE), raised at start-up or explained.
#pragma once

#include "config/config.hpp"

#include <cstdint>
#include <string>

namespace chihaya {

// Descriptors the configuration may hold at once: every worker's HTTP connections
// (max_connections each) and listening sockets, its UDP sockets, plus room for the process's own
// (plugins, log, redis/postgres connections, the spool).
uint64_t open_files_needed(const Config& config, unsigned threads);

struct OpenFilesLimit {
    uint64_t needed = 0;
    uint64_t soft_before = 0;
    uint64_t soft = 0;  // after
    uint64_t hard = 0;
    bool enough() const { return soft >= needed; }
    std::string describe() const;  // the start-up log line: what was done, or why it cannot be
};

// Raises the soft RLIMIT_NOFILE towards `needed`, never past the hard limit (raising that takes
// CAP_SYS_RESOURCE, and is the service manager's job: LimitNOFILE=, ulimit -Hn). Never lowers it.
OpenFilesLimit raise_open_files(uint64_t needed);

}  // namespace chihaya
