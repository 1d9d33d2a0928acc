// What chihaya-conformance was asked to test: set by main.cpp, read by the checks.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace chihaya::conformance {

struct Options {
    std::string plugin;    // --plugin PATH.so
    std::string driver;    // --driver NAME (a cache driver of that plugin)
    std::string provides;  // --provides scrape_all,tick,stats: optional members that must be present
    // The driver's table: --config FILE, then --set KEY=VALUE, in order (a later key wins).
    // Values are TOML scalars as written: 16, true, "text".
    std::vector<std::pair<std::string, std::string>> config;
};

const Options& options();

}  // namespace chihaya::conformance
