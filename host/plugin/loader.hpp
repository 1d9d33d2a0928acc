// Plugin loading: every *.so in plugins_dir opened with Boost.DLL and handshaken.
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

// Every *.so in `dir`, in name order. A plugin that fails is logged (file and reason) and skipped,
// so one broken file does not take the tracker down. Throws std::runtime_error if `dir` cannot be read.
std::vector<LoadedPlugin> load_plugins(const std::string& dir, const chihaya_host_api* host);

// The services the host lends to every plugin (log, clock).
const chihaya_host_api* host_api();

}  // namespace chihaya
