// The optional per-request access log ([log] access_log): one line per answered request,
// at most [log] access_log_rate lines a second; the rest are counted and reported.
#pragma once

#include "tracker/types.hpp"

#include <cstdint>
#include <string_view>

namespace chihaya::access_log {

// Read on every request: one relaxed load of a flag that only a reload writes.
bool enabled() noexcept;
// Turns the log on or off and sets its rate (live reload).
void configure(bool on, uint32_t lines_per_second);
// Lines not written because of the rate limit, since start.
uint64_t dropped() noexcept;

// `status`: HTTP status, 0 for UDP. Never the request's path or query: those carry passkeys.
void request(std::string_view protocol, const Endpoint& client, std::string_view action,
             std::string_view result, int status) noexcept;

}  // namespace chihaya::access_log
