// Plugin loading: every *.so in plugins_dir checked (plugin/safety.hpp), opened with Boost.DLL and
// handshaken.
#pragma once

#include <chihaya/abi.h>

#include <memory>
#include <string>
#include <vector>

namespace boost::dll { class shared_library; }

namespace chihaya {

// A plugin that passed the handshake. The library stays loaded while any copy of `library`
// lives: the registry and every driver instance created from it hold one.
struct PluginTables;
struct LoadedPlugin {
    std::string path;
    std::shared_ptr<boost::dll::shared_library> library;
    std::shared_ptr<const PluginTables> tables;           // the host-layout copy (handshake.hpp)
    const chihaya_plugin_descriptor* descriptor = nullptr;  // &tables->plugin
};

// Opens `path` (RTLD_NOW | RTLD_LOCAL), calls its entry and checks the descriptor. On failure
// returns null and sets `why` to the loader's or the handshake's reason.
std::unique_ptr<LoadedPlugin> load_plugin(const std::string& path, const chihaya_host_api* host,
                                          std::string& why);

// One entry of plugins_dir as the loader saw it (what --list-plugins prints).
struct PluginFile {
    enum class State { Loaded, Refused, Ignored };
    std::string path;
    State state = State::Ignored;
    std::string why;                       // Refused, Ignored: the reason
    std::unique_ptr<LoadedPlugin> plugin;  // Loaded
};

// Every entry of `dir`, in name order. Only *.so regular files that pass the ownership and mode
// checks of plugin/safety.hpp are opened; other *.so entries are Refused, other files Ignored,
// subdirectories not listed.
// Throws std::runtime_error if `dir` fails those checks or cannot be read.
std::vector<PluginFile> scan_plugins(const std::string& dir, const chihaya_host_api* host);

// The plugins of scan_plugins that loaded. A plugin that fails is logged (file and reason) and
// skipped, so one broken file does not take the tracker down. Throws as scan_plugins.
std::vector<LoadedPlugin> load_plugins(const std::string& dir, const chihaya_host_api* host);

// Log lines of level warning or error that plugins have written through the host's log so far
// (--check-config --connect counts those a driver writes while it starts).
uint64_t plugin_warning_count();

// The services the host lends to every plugin (log, clock).
const chihaya_host_api* host_api();

}  // namespace chihaya
