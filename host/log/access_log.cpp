// Access log: a rate-limited line per request, off by default. When on, it costs a shared
// atomic per request (a window counter): an operator's debugging aid, not a hot-path feature.
#include "log/access_log.hpp"

#include "log/log.hpp"

#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <string>

namespace chihaya::access_log {
namespace {

std::atomic<bool> g_enabled{false};
std::atomic<uint32_t> g_rate{100};
std::atomic<uint64_t> g_window{0};      // current second (steady clock)
std::atomic<uint32_t> g_in_window{0};   // lines written or attempted in it
std::atomic<uint64_t> g_dropped{0};     // since start
std::atomic<uint64_t> g_reported{0};    // dropped count at the last report

uint64_t second_now() {
    using namespace std::chrono;
    return uint64_t(duration_cast<seconds>(steady_clock::now().time_since_epoch()).count());
}

}  // namespace

bool enabled() noexcept { return g_enabled.load(std::memory_order_relaxed); }

void configure(bool on, uint32_t lines_per_second) {
    g_rate.store(lines_per_second, std::memory_order_relaxed);
    g_enabled.store(on, std::memory_order_relaxed);
}

uint64_t dropped() noexcept { return g_dropped.load(std::memory_order_relaxed); }

void request(std::string_view protocol, const Endpoint& client, std::string_view action,
             std::string_view result, int status) noexcept try {
    const uint64_t now = second_now();
    uint64_t window = g_window.load(std::memory_order_relaxed);
    if (now != window && g_window.compare_exchange_strong(window, now, std::memory_order_relaxed)) {
        g_in_window.store(0, std::memory_order_relaxed);
        const uint64_t dropped = g_dropped.load(std::memory_order_relaxed);
        const uint64_t reported = g_reported.exchange(dropped, std::memory_order_relaxed);
        if (dropped > reported)
            log::info("access", std::to_string(dropped - reported) + " access-log lines over access_log_rate not written");
    }
    if (g_in_window.fetch_add(1, std::memory_order_relaxed) >= g_rate.load(std::memory_order_relaxed)) {
        g_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    char address[INET6_ADDRSTRLEN] = "?";
    ::inet_ntop(client.family == CHIHAYA_IPV6 ? AF_INET6 : AF_INET, client.addr.data(), address, sizeof address);
    std::string line;
    line.reserve(96);
    line.append(protocol).append(" ").append(address).append(" ").append(action).append(" ").append(result);
    if (status) line.append(" ").append(std::to_string(status));
    log::info("access", line);
} catch (...) {
}

}  // namespace chihaya::access_log
