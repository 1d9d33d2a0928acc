// Plugin loading: every *.so in plugins_dir checked (plugin/safety.hpp), probed in a child
// (plugin/probe.hpp), and opened with Boost.DLL and handshaken when the tracker needs it.
#pragma once

#include "plugin/probe.hpp"

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

// What a probe reports of a plugin that passed the handshake: name, version, every driver. The
// probe's child sends it; the loader builds it itself when no child could be made.
ProbeResult probe_result_of(const LoadedPlugin& plugin);

// Which plugins a scan loads into this process: every one that works (--list-plugins,
// --list-drivers), or only those that register one of `drivers`, the cache and storage the
// configuration selects. The others are only probed: their drivers are known by name, their code
// and libraries never mapped here.
struct LoadFilter {
    bool all = true;
    std::vector<ProbedDriver> drivers;

    static LoadFilter everything() { return {}; }
    static LoadFilter only(std::vector<ProbedDriver> drivers) { return {false, std::move(drivers)}; }
    bool wants(const ProbeResult& probe) const;
};

// One entry of plugins_dir as the loader saw it (what --list-plugins prints).
struct PluginFile {
    enum class State {
        Loaded,   // probed and loaded into this process: `plugin`
        Probed,   // works, but the filter did not want it: `probe` names its drivers
        Refused,  // unsafe, or failed to load in the child or here: `why`
        Ignored   // not a *.so file: `why`
    };
    std::string path;
    State state = State::Ignored;
    std::string why;
    ProbeResult probe;                     // Loaded, Probed: what the child saw
    std::unique_ptr<LoadedPlugin> plugin;  // Loaded
};

// Every entry of `dir`, in name order. Only *.so regular files that pass the ownership and mode
// checks of plugin/safety.hpp are probed; other *.so entries are Refused, other files Ignored,
// subdirectories not listed. A probed plugin the filter wants is then loaded here; one whose
// child crashed, exited or hung past `timeout` is Refused, so it cannot harm the tracker.
// Call before the process starts threads (probe.hpp).
// Throws std::runtime_error if `dir` fails those checks or cannot be read.
std::vector<PluginFile> scan_plugins(const std::string& dir, const chihaya_host_api* host,
                                     const LoadFilter& filter = LoadFilter::everything(),
                                     std::chrono::milliseconds timeout = kProbeTimeout);

// The Loaded and Probed entries of scan_plugins. A plugin that fails is logged (file and reason)
// and skipped, so one broken file does not take the tracker down; a Probed one is logged with the
// drivers it would have registered. Throws as scan_plugins.
std::vector<PluginFile> load_plugins(const std::string& dir, const chihaya_host_api* host,
                                     const LoadFilter& filter = LoadFilter::everything(),
                                     std::chrono::milliseconds timeout = kProbeTimeout);

// Log lines of level warning or error that plugins have written through the host's log so far
// (--check-config --connect counts those a driver writes while it starts).
uint64_t plugin_warning_count();

// The services the host lends to every plugin (log, clock).
const chihaya_host_api* host_api();

}  // namespace chihaya
