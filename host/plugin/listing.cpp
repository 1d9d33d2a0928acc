// --list-plugins and --check-config --connect: the plugin layer explained to an operator.
#include "plugin/listing.hpp"

#include "plugin/handshake.hpp"
#include "plugin/loader.hpp"

#include <filesystem>
#include <ostream>
#include <stdexcept>

namespace chihaya {

int list_plugins(const std::string& dir, const std::string& config_source, std::ostream& out) {
    out << "config: " << (config_source.empty() ? "(none found; built-in defaults)" : config_source)
        << "\nplugins_dir: " << dir << "\nhost ABI: " << host_abi_version() << "\n\n";
    std::vector<PluginFile> files = scan_plugins(dir, host_api());
    Registry registry;  // catches a driver name that two plugins register
    unsigned loaded = 0, refused = 0, ignored = 0;
    for (auto& file : files) {
        const std::string name = std::filesystem::path(file.path).filename().string();
        if (file.state == PluginFile::State::Loaded) {
            try {
                registry.add(*file.plugin);
            } catch (const std::exception& e) {
                file.state = PluginFile::State::Refused;
                file.why = e.what();
            }
        }
        if (file.state == PluginFile::State::Ignored) {
            ++ignored;
            out << name << ": ignored: " << file.why << "\n";
            continue;
        }
        if (file.state == PluginFile::State::Refused) {
            ++refused;
            out << name << ": refused: " << file.why << "\n";
            continue;
        }
        if (!file.plugin) {  // Probed: a filter left it out (not one this listing uses)
            out << name << ": not loaded: plugin \"" << file.probe.name << "\" " << file.probe.version << "\n";
            continue;
        }
        ++loaded;
        const chihaya_plugin_descriptor& p = *file.plugin->descriptor;
        out << name << ": loaded: plugin \"" << p.name << "\" " << p.version << ", ABI "
            << p.abi_major << "." << p.abi_minor << " (needs a host of ABI " << p.abi_major << "."
            << p.min_host_minor << " or newer)\n";
        for (uint32_t i = 0; i < p.driver_count; ++i) {
            const chihaya_driver_descriptor& d = driver_at(&p, i);
            out << "  " << kind_name(d.kind) << " driver \"" << d.name << "\"";
            if (d.kind == CHIHAYA_KIND_STORAGE) {
                auto* v = static_cast<const chihaya_storage_vtable*>(d.vtable);
                out << (v->subscribe ? " (private mode: subscribe, apply)" : " (open mode only)");
            }
            out << (d.config_key_count ? ", keys of [" : ", no config keys")
                << (d.config_key_count ? std::string(kind_name(d.kind)) + "." + d.name + "]:" : "")
                << "\n"
                << describe_keys(d, "    ");
        }
    }
    out << "\n" << loaded << " loaded, " << refused << " refused, " << ignored << " ignored\n";
    return refused ? 1 : 0;
}

void connect_drivers(const Registry& registry, const Config& config, std::ostream& out) {
    for (auto [kind, selection] : {std::pair{CHIHAYA_KIND_STORAGE, &config.storage},
                                   std::pair{CHIHAYA_KIND_CACHE, &config.cache}}) {
        const uint64_t before = plugin_warning_count();
        DriverInstance driver = registry.create(kind, *selection, config.source, host_api());
        const uint64_t warnings = plugin_warning_count() - before;
        driver.reset();
        if (warnings)
            throw std::runtime_error(std::string(kind_name(kind)) + " driver \"" +
                                     selection->driver + "\" started with " +
                                     std::to_string(warnings) +
                                     " warning(s) or error(s), logged above: is its store "
                                     "reachable with this config?");
        out << kind_name(kind) << " driver \"" << selection->driver
            << "\": created and destroyed\n";
    }
}

}  // namespace chihaya
