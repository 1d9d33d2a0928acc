// Boost.DLL side of plugin loading; the only file that knows how a plugin is opened.
#include "plugin/loader.hpp"

#include "log/log.hpp"
#include "plugin/handshake.hpp"
#include "plugin/registry.hpp"
#include "plugin/safety.hpp"
#include "tracker/tracker.hpp"

#include <boost/dll/shared_library.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <filesystem>

namespace chihaya {
namespace {

std::atomic<uint64_t> g_plugin_warnings{0};

// Called by plugins through the C ABI: a line that cannot be written (out of memory) is dropped
// rather than unwinding into the plugin.
void host_log(chihaya_log_level level, chihaya_str source, chihaya_str message) noexcept try {
    log::Level l = level == CHIHAYA_LOG_DEBUG     ? log::Level::Debug
                   : level == CHIHAYA_LOG_INFO    ? log::Level::Info
                   : level == CHIHAYA_LOG_WARNING ? log::Level::Warning
                                                  : log::Level::Error;
    if (l >= log::Level::Warning) g_plugin_warnings.fetch_add(1, std::memory_order_relaxed);
    log::write(l, {source.ptr, source.len}, {message.ptr, message.len});
} catch (...) {
}

uint64_t host_now_ms() noexcept { return now_ms(); }

const chihaya_host_api kHostApi = {
    sizeof(chihaya_host_api), CHIHAYA_ABI_MAJOR, CHIHAYA_ABI_MINOR, &host_log, &host_now_ms,
};

}  // namespace

const chihaya_host_api* host_api() { return &kHostApi; }

uint64_t plugin_warning_count() { return g_plugin_warnings.load(std::memory_order_relaxed); }

std::unique_ptr<LoadedPlugin> load_plugin(const std::string& path, const chihaya_host_api* host,
                                          std::string& why) {
    auto library = std::make_shared<boost::dll::shared_library>();
    std::error_code error;  // BOOST_DLL_USE_STD_FS: Boost.DLL reports std::error_code
    // RTLD_LOCAL: one plugin's symbols never satisfy or clash with another's.
    // RTLD_NOW: a missing symbol fails here, with the dynamic loader's message, not mid-request.
    library->load(path, error, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    if (error) {
        const char* dl = ::dlerror();
        why = dl ? dl : error.message();
        return nullptr;
    }
    if (!library->has(CHIHAYA_PLUGIN_ENTRY_SYMBOL)) {
        why = std::string("no entry symbol ") + CHIHAYA_PLUGIN_ENTRY_SYMBOL;
        return nullptr;
    }
    auto entry = library->get<const chihaya_plugin_descriptor*(const chihaya_host_api*)>(
        CHIHAYA_PLUGIN_ENTRY_SYMBOL);
    auto tables = handshake(entry(host), why);
    if (!tables) return nullptr;
    const chihaya_plugin_descriptor* descriptor = &tables->plugin;
    if (descriptor->abi_minor > CHIHAYA_ABI_MINOR)
        log::info("plugin", path + ": built for ABI " + std::to_string(descriptor->abi_major) + "." + std::to_string(descriptor->abi_minor) +
                                ", host speaks " + host_abi_version() + "; newer calls stay unused");
    return std::make_unique<LoadedPlugin>(LoadedPlugin{path, std::move(library), std::move(tables), descriptor});
}

ProbeResult probe_result_of(const LoadedPlugin& plugin) {
    const chihaya_plugin_descriptor& p = *plugin.descriptor;
    ProbeResult result{ProbeResult::State::Loaded, "", p.name, p.version, {}};
    for (uint32_t i = 0; i < p.driver_count; ++i) {
        const chihaya_driver_descriptor& d = driver_at(&p, i);
        result.drivers.push_back({d.kind, d.name});
    }
    return result;
}

bool LoadFilter::wants(const ProbeResult& probe) const {
    if (all) return true;
    for (const ProbedDriver& d : probe.drivers)
        for (const ProbedDriver& w : drivers)
            if (d.kind == w.kind && d.name == w.name) return true;
    return false;
}

std::vector<PluginFile> scan_plugins(const std::string& dir, const chihaya_host_api* host,
                                     const LoadFilter& filter, std::chrono::milliseconds timeout) {
    if (std::string why = unsafe_plugins_dir(dir); !why.empty()) throw std::runtime_error(why);
    std::error_code error;
    std::vector<PluginFile> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
        // Subdirectories are not listed (the build tree's plugins/ holds CMake's), unless named *.so.
        std::error_code ignored;
        if (entry.path().extension() != ".so" && entry.is_directory(ignored) && !entry.is_symlink(ignored))
            continue;
        files.push_back(PluginFile{entry.path().string(), PluginFile::State::Ignored, "", {}, nullptr});
    }
    if (error) throw std::runtime_error("plugins_dir " + dir + ": " + error.message());
    std::sort(files.begin(), files.end(),
              [](const PluginFile& a, const PluginFile& b) { return a.path < b.path; });

    for (auto& file : files) {
        if (std::filesystem::path(file.path).extension() != ".so") {
            file.why = "not a *.so file";
            continue;
        }
        file.state = PluginFile::State::Refused;
        file.why = unsafe_plugin_file(file.path);
        if (!file.why.empty()) continue;
        file.probe = probe_plugin(file.path, host, timeout);
        if (file.probe.state == ProbeResult::State::Refused) file.why = file.probe.why;
    }
    // Loading only after every probe: a plugin's libraries may start threads or take locks when
    // loaded, and no fork may follow that (probe.hpp).
    for (auto& file : files) {
        if (file.state != PluginFile::State::Refused || !file.why.empty() ||
            file.probe.state == ProbeResult::State::Refused)
            continue;  // not a plugin file, unsafe, or refused by its probe
        const bool probed = file.probe.state == ProbeResult::State::Loaded;
        if (probed && !filter.wants(file.probe)) {
            file.state = PluginFile::State::Probed;
            continue;
        }
        if (!probed)
            log::warning("plugin", file.path + ": no child process to probe it in (" + file.probe.why +
                                       "); loading it into the tracker to learn its drivers");
        file.plugin = load_plugin(file.path, host, file.why);
        if (!file.plugin) continue;
        file.state = PluginFile::State::Loaded;
        if (probed) continue;
        // Learned the hard way: keep it only if it is wanted (its pinned libraries stay mapped).
        file.probe = probe_result_of(*file.plugin);
        if (!filter.wants(file.probe)) {
            file.plugin.reset();
            file.state = PluginFile::State::Probed;
        }
    }
    return files;
}

std::vector<PluginFile> load_plugins(const std::string& dir, const chihaya_host_api* host,
                                     const LoadFilter& filter, std::chrono::milliseconds timeout) {
    std::vector<PluginFile> usable;
    for (auto& file : scan_plugins(dir, host, filter, timeout)) {
        if (file.state == PluginFile::State::Refused)
            log::error("plugin", file.path + ": refused: " + file.why);
        if (file.state == PluginFile::State::Loaded)
            log::info("plugin", file.path + ": loaded " + file.plugin->descriptor->name + " " +
                                    file.plugin->descriptor->version);
        if (file.state == PluginFile::State::Probed) {
            std::string drivers;
            for (const ProbedDriver& d : file.probe.drivers)
                drivers += (drivers.empty() ? "" : ", ") + std::string(kind_name(d.kind)) + " \"" + d.name + "\"";
            log::info("plugin", file.path + ": not loaded (" + file.probe.name + " " + file.probe.version +
                                    " registers " + drivers + "; the config selects none of them)");
        }
        if (file.state == PluginFile::State::Loaded || file.state == PluginFile::State::Probed)
            usable.push_back(std::move(file));
    }
    return usable;
}

}  // namespace chihaya
