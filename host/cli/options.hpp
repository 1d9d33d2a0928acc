// The command line: --config, --check-config [--connect], --list-drivers, --list-plugins, --help,
// --version.
#pragma once

#include <iosfwd>
#include <string>

namespace chihaya {

struct Options {
    std::string config;         // --config PATH / --check-config PATH; "" = look in the usual places
    bool check_only = false;    // --check-config: validate and exit 0 or 1
    bool list_drivers = false;  // --list-drivers
    bool list_plugins = false;  // --list-plugins: every file in plugins_dir, exit 1 if one is refused
    bool connect = false;       // --connect (with --check-config): create and destroy the drivers
};

// Returns -1 when the tracker should go on, otherwise the exit code: 0 after --help/--version
// (printed to `out`), 2 for a usage error (explained on `err`).
int parse_options(int argc, const char* const* argv, Options& options, std::ostream& out,
                  std::ostream& err);

}  // namespace chihaya
