// Driver registry: (kind, name) → driver, and creating the configured instance from it.
#pragma once

#include "config/config.hpp"
#include "plugin/handshake.hpp"
#include "plugin/loader.hpp"

#include <chihaya/abi.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace chihaya {

struct RegisteredDriver {
    const chihaya_driver_descriptor* descriptor = nullptr;  // null: probed, not loaded (loader.hpp)
    std::string plugin_path;
    std::shared_ptr<boost::dll::shared_library> library;
    std::shared_ptr<const PluginTables> tables;  // owns *descriptor
};

// A created driver. Destroying it calls the driver's destroy and only then lets go of the
// library, so code is never unloaded under a live instance.
class DriverInstance {
public:
    DriverInstance() = default;
    DriverInstance(const RegisteredDriver& driver, chihaya_instance* instance)
        : driver_(driver), instance_(instance) {}
    DriverInstance(DriverInstance&& other) noexcept { *this = std::move(other); }
    DriverInstance& operator=(DriverInstance&& other) noexcept;
    ~DriverInstance() { reset(); }

    void reset();
    chihaya_instance* get() const { return instance_; }
    const void* vtable() const { return driver_.descriptor->vtable; }
    const char* name() const { return driver_.descriptor->name; }
    // The ABI minor its plugin was built against (what it can know of the host's requests).
    uint32_t abi_minor() const { return driver_.tables ? driver_.tables->plugin.abi_minor : 0; }
    // Its CHIHAYA_DRIVER_* capabilities (abi.h 2.3); 0 from a plugin built for an older minor,
    // whose descriptor had a reserved member there.
    uint32_t flags() const { return abi_minor() >= 3 ? driver_.descriptor->flags : 0; }

private:
    RegisteredDriver driver_;
    chihaya_instance* instance_ = nullptr;
};

class Registry {
public:
    // Registers every driver of a plugin. A (kind, name) already registered throws
    // std::runtime_error naming both files and the registered names: start-up stops.
    void add(const LoadedPlugin& plugin);
    // Registers the names of a plugin that was probed but not loaded, so that a duplicate is
    // still caught and error messages list every driver plugins_dir offers. find() skips them.
    void add(const std::string& plugin_path, const std::vector<ProbedDriver>& drivers);
    // Either of the above, by what the scan did with the file (a Loaded or Probed entry).
    void add(const PluginFile& file);

    // A loaded driver, or null.
    const RegisteredDriver* find(chihaya_driver_kind kind, const std::string& name) const;
    std::vector<std::string> names(chihaya_driver_kind kind) const;

    // Checks the selected driver exists and that its table in the config file has only declared
    // keys of the declared types and ranges (errors: file:line: key). Throws ConfigError.
    const RegisteredDriver& check_selection(chihaya_driver_kind kind, const DriverSelection& selection,
                                            const std::string& config_file) const;

    // check_selection, then create with defaults filled in. Throws std::runtime_error.
    DriverInstance create(chihaya_driver_kind kind, const DriverSelection& selection,
                          const std::string& config_file, const chihaya_host_api* host) const;

    // Every driver with its config keys, defaults and docs, for --list-drivers.
    std::string describe() const;

private:
    void insert(chihaya_driver_kind kind, const std::string& name, RegisteredDriver driver);

    std::map<std::pair<int, std::string>, RegisteredDriver> drivers_;
};

const char* kind_name(chihaya_driver_kind kind);

// A driver's config keys, one line each: `key = default  # doc [min, max]`, each line starting
// with `indent`. A secret key's default is never printed (CHIHAYA_CONFIG_SECRET).
std::string describe_keys(const chihaya_driver_descriptor& driver, const std::string& indent);

}  // namespace chihaya
