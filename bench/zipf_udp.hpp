// The Zipf workload over BEP 15 UDP from many loopback addresses (chihaya_loadgen --workload zipf).
#pragma once

#include "workload_zipf.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

namespace loadgen {

struct ZipfRun {
    ZipfConfig workload;
    sockaddr_in target4{};          // the tracker's IPv4 listener (127.0.0.0/8)
    sockaddr_in6 target6{};         // its IPv6 listener ([::1]); needed when ipv6_share > 0
    bool have_target6 = false;
    uint32_t sockets = 8;           // per run, over all threads; IPv6 gets its share (at least 1)
    uint32_t inflight = 16;         // requests outstanding per socket
    uint32_t threads = 1;
    uint32_t numwant = 50;
    uint32_t timeout_ms = 2000;
    double duration_s = 10;
    double prepopulate_s = 120;
    uint64_t max_requests = 50'000'000;
    bool prepopulate = true;
    bool steady = true;
};

// Builds the model, runs phase 1 and/or 2, prints one key=value line per phase (and one
// `phase=model` line first). Returns the exit code: 0 clean, 1 errors or timeouts seen.
int run_zipf(const ZipfRun& run);

}  // namespace loadgen
