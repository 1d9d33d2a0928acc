// Command-line parsing. Hand-written rather than Poco::Util's OptionProcessor: five options do
// not justify PocoUtil, which maps PocoXML and PocoJSON in with it (1.1 MiB of RSS measured at
// start-up, 2.3 bytes per peer at 500,000 peers, in a tracker sold on bytes per peer).
#include "cli/options.hpp"

#include <chihaya/abi.h>

#include <ostream>
#include <string_view>

namespace chihaya {
namespace {

constexpr const char* kHelp =
    "usage: chihaya [--config PATH] | --check-config PATH [--connect] | --list-drivers |\n"
    "               --list-plugins [--config PATH] | --help | --version\n"
    "\n"
    "A BitTorrent tracker (HTTP and UDP, IPv4 and IPv6) with pluggable cache and storage drivers.\n"
    "\n"
    "  -c, --config PATH     read the configuration from PATH\n"
    "      --check-config PATH\n"
    "                        validate PATH and the selected drivers' tables, then exit 0 or 1\n"
    "      --connect         with --check-config: also create and destroy the selected drivers,\n"
    "                        so an unreachable store fails the check\n"
    "      --list-drivers    list the drivers in plugins_dir with their config keys\n"
    "      --list-plugins    list every file in plugins_dir: loaded (ABI, drivers, keys) or refused\n"
    "                        and why; exit 1 when one was refused\n"
    "  -h, --help            show this help\n"
    "  -v, --version         print the version\n"
    "\n"
    "Without --config, reads etc/chihaya.toml beside the build, then <prefix>/etc/chihaya/chihaya.toml\n"
    "of an installed chihaya, then /etc/chihaya/chihaya.toml.\n";

}  // namespace

int parse_options(int argc, const char* const* argv, Options& options, std::ostream& out,
                  std::ostream& err) {
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        std::string_view value;
        bool has_value = false;
        if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
            has_value = true;
        }
        auto take_value = [&]() -> bool {
            if (has_value) return true;
            if (i + 1 >= argc) return false;
            value = argv[++i];
            return true;
        };
        if (arg == "-h" || arg == "--help") {
            out << kHelp;
            return 0;
        }
        if (arg == "-v" || arg == "--version") {
            out << "chihaya " << CHIHAYA_VERSION << " (plugin ABI " << CHIHAYA_ABI_MAJOR << "."
                << CHIHAYA_ABI_MINOR << ")\n";
            return 0;
        }
        if (arg == "-c" || arg == "--config" || arg == "--check-config") {
            if (!take_value() || value.empty()) {
                err << "chihaya: " << arg << " needs a PATH (see --help)\n";
                return 2;
            }
            options.config = value;
            options.check_only = options.check_only || arg == "--check-config";
            continue;
        }
        if (arg == "--list-drivers" && !has_value) {
            options.list_drivers = true;
            continue;
        }
        if (arg == "--list-plugins" && !has_value) {
            options.list_plugins = true;
            continue;
        }
        if (arg == "--connect" && !has_value) {
            options.connect = true;
            continue;
        }
        err << "chihaya: unknown option " << argv[i] << " (see --help)\n";
        return 2;
    }
    if (options.connect && !options.check_only) {
        err << "chihaya: --connect goes with --check-config PATH (see --help)\n";
        return 2;
    }
    return -1;
}

}  // namespace chihaya
