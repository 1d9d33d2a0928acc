// Fuzz target: a configuration file's text through the loader, which must either produce a
// config or throw ConfigError naming file, line and key; anything else is a bug.
#include "config/config.hpp"

#include <string>

using namespace chihaya;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        (void)parse_config(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.toml");
    } catch (const ConfigError&) {
    }
    return 0;
}
