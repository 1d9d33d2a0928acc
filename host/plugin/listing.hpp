// The operator's views of the plugin layer: --list-plugins and --check-config --connect.
#pragma once

#include "config/config.hpp"
#include "plugin/registry.hpp"

#include <iosfwd>
#include <string>

namespace chihaya {

// Prints every entry of `dir`: loaded (plugin name, version, ABI, and each driver with its kind,
// name and config keys; secret values never shown), refused and why, or ignored. `config_source`
// is the config file read ("" = none). Returns the exit code: 1 when any plugin was refused
// (including a driver name registered twice), else 0. Throws as scan_plugins for an unusable dir.
int list_plugins(const std::string& dir, const std::string& config_source, std::ostream& out);

// Creates and destroys the selected storage and cache drivers, so that an unreachable store (a
// wrong Redis address) fails the check before a deploy rather than after. A driver that fails
// create, or that logs a warning or an error while it starts (the Redis driver starts even when
// Redis is down, and says so), throws std::runtime_error naming it. Prints one line per driver.
void connect_drivers(const Registry& registry, const Config& config, std::ostream& out);

}  // namespace chihaya
