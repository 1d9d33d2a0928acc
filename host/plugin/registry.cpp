// The registry of drivers by (kind, name): duplicates refused, config tables checked, instances made.
#include "plugin/registry.hpp"

#include "log/log.hpp"
#include "plugin/handshake.hpp"

#include <charconv>
#include <sstream>

namespace chihaya {
namespace {

std::string joined(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out.empty() ? "(none)" : out;
}

const char* type_name(chihaya_config_type type) {
    switch (type) {
        case CHIHAYA_CONFIG_STRING: return "a string";
        case CHIHAYA_CONFIG_INT: return "an integer";
        case CHIHAYA_CONFIG_BOOL: return "true or false";
    }
    return "?";
}

// A resolved value: from the file, or the declared default (checked by the handshake).
struct Resolved {
    std::string string;
    int64_t integer = 0;
};

Resolved from_default(const chihaya_config_key& key) {
    std::string_view text(key.default_value);
    Resolved r;
    if (key.type == CHIHAYA_CONFIG_STRING) r.string = text.substr(1, text.size() - 2);
    else if (key.type == CHIHAYA_CONFIG_BOOL) r.integer = text == "true";
    else std::from_chars(text.data(), text.data() + text.size(), r.integer);
    return r;
}

}  // namespace

const char* kind_name(chihaya_driver_kind kind) {
    return kind == CHIHAYA_KIND_CACHE ? "cache" : kind == CHIHAYA_KIND_STORAGE ? "storage" : "?";
}

DriverInstance& DriverInstance::operator=(DriverInstance&& other) noexcept {
    if (this != &other) {
        reset();
        driver_ = std::move(other.driver_);
        instance_ = std::exchange(other.instance_, nullptr);
    }
    return *this;
}

void DriverInstance::reset() {
    if (instance_) {
        // Both vtables begin with struct_size, create, destroy.
        if (driver_.descriptor->kind == CHIHAYA_KIND_CACHE)
            static_cast<const chihaya_cache_vtable*>(vtable())->destroy(instance_);
        else
            static_cast<const chihaya_storage_vtable*>(vtable())->destroy(instance_);
        instance_ = nullptr;
    }
    driver_ = {};  // may unload the library, after destroy returned
}

void Registry::insert(chihaya_driver_kind kind, const std::string& name, RegisteredDriver driver) {
    auto key = std::make_pair(int(kind), name);
    if (auto it = drivers_.find(key); it != drivers_.end())
        throw std::runtime_error(std::string(kind_name(kind)) + " driver \"" + name +
                                 "\" is registered twice: by " + it->second.plugin_path + " and by " +
                                 driver.plugin_path + "; registered " + kind_name(kind) +
                                 " drivers: " + joined(names(kind)));
    drivers_[key] = std::move(driver);
}

void Registry::add(const LoadedPlugin& plugin) {
    for (uint32_t i = 0; i < plugin.descriptor->driver_count; ++i) {
        const chihaya_driver_descriptor& d = driver_at(plugin.descriptor, i);
        insert(d.kind, d.name, RegisteredDriver{&d, plugin.path, plugin.library, plugin.tables});
    }
}

void Registry::add(const std::string& plugin_path, const std::vector<ProbedDriver>& drivers) {
    for (const ProbedDriver& d : drivers) insert(d.kind, d.name, RegisteredDriver{nullptr, plugin_path, {}, {}});
}

void Registry::add(const PluginFile& file) {
    if (file.plugin) add(*file.plugin);
    else add(file.path, file.probe.drivers);
}

const RegisteredDriver* Registry::find(chihaya_driver_kind kind, const std::string& name) const {
    auto it = drivers_.find({int(kind), name});
    return it == drivers_.end() || !it->second.descriptor ? nullptr : &it->second;
}

std::vector<std::string> Registry::names(chihaya_driver_kind kind) const {
    std::vector<std::string> out;
    for (const auto& [key, driver] : drivers_)
        if (key.first == int(kind)) out.push_back(key.second);
    return out;
}

const RegisteredDriver& Registry::check_selection(chihaya_driver_kind kind,
                                                  const DriverSelection& selection,
                                                  const std::string& file) const {
    const RegisteredDriver* driver = find(kind, selection.driver);
    if (auto it = drivers_.find({int(kind), selection.driver}); !driver && it != drivers_.end())
        throw ConfigError(file + ": " + kind_name(kind) + ".driver: " + kind_name(kind) + " driver \"" +
                          selection.driver + "\" is registered by " + it->second.plugin_path +
                          ", which is not loaded");
    if (!driver)
        throw ConfigError(file + ": " + kind_name(kind) + ".driver: no " + kind_name(kind) +
                          " driver named \"" + selection.driver + "\"; registered: " +
                          joined(names(kind)));
    auto table = selection.tables.find(selection.driver);
    if (table == selection.tables.end()) return *driver;
    const chihaya_driver_descriptor& d = *driver->descriptor;
    std::string prefix = std::string(kind_name(kind)) + "." + selection.driver + ".";
    for (const auto& [name, value] : table->second) {
        const chihaya_config_key* key = nullptr;
        std::vector<std::string> accepted;
        for (uint32_t i = 0; i < d.config_key_count; ++i) {
            accepted.push_back(config_key_at(d, i).key);
            if (name == config_key_at(d, i).key) key = &config_key_at(d, i);
        }
        std::string where = file + ":" + std::to_string(value.line) + ": " + prefix + name + ": ";
        if (!key)
            throw ConfigError(where + "unknown key (" + selection.driver + " accepts: " +
                              joined(accepted) + ")");
        bool type_ok = (key->type == CHIHAYA_CONFIG_STRING && value.type == DriverTableValue::Type::String) ||
                       (key->type == CHIHAYA_CONFIG_INT && value.type == DriverTableValue::Type::Integer) ||
                       (key->type == CHIHAYA_CONFIG_BOOL && value.type == DriverTableValue::Type::Boolean);
        if (!type_ok) throw ConfigError(where + "expected " + type_name(key->type));
        if (key->type == CHIHAYA_CONFIG_INT && (value.integer < key->min || value.integer > key->max))
            throw ConfigError(where + std::to_string(value.integer) + " is out of range [" +
                              std::to_string(key->min) + ", " + std::to_string(key->max) + "]");
    }
    return *driver;
}

DriverInstance Registry::create(chihaya_driver_kind kind, const DriverSelection& selection,
                                const std::string& file, const chihaya_host_api* host) const {
    const RegisteredDriver& driver = check_selection(kind, selection, file);
    const chihaya_driver_descriptor& d = *driver.descriptor;
    auto table = selection.tables.find(selection.driver);

    std::vector<Resolved> resolved(d.config_key_count);
    std::vector<chihaya_config_value> values(d.config_key_count);
    for (uint32_t i = 0; i < d.config_key_count; ++i) {
        const chihaya_config_key& key = config_key_at(d, i);
        resolved[i] = from_default(key);
        if (table != selection.tables.end()) {
            if (auto it = table->second.find(key.key); it != table->second.end()) {
                resolved[i].string = it->second.string;
                resolved[i].integer = it->second.integer;
            }
        }
        values[i] = {sizeof(chihaya_config_value), key.type, key.key,
                     {resolved[i].string.data(), resolved[i].string.size()}, resolved[i].integer};
    }
    chihaya_config config{sizeof(chihaya_config), d.config_key_count, values.data()};
    char error[512] = {0};
    // Both vtables begin with struct_size, create, destroy; create's signature is shared.
    auto create = kind == CHIHAYA_KIND_CACHE
                      ? static_cast<const chihaya_cache_vtable*>(d.vtable)->create
                      : static_cast<const chihaya_storage_vtable*>(d.vtable)->create;
    chihaya_instance* instance = create(host, &config, error, sizeof error);
    if (!instance)
        throw std::runtime_error(std::string(kind_name(kind)) + " driver \"" + d.name + "\" (" +
                                 driver.plugin_path + ") failed to start: " +
                                 (error[0] ? error : "no reason given"));
    log::info("plugin", std::string(kind_name(kind)) + " driver \"" + d.name + "\" started");
    return DriverInstance(driver, instance);
}

std::string describe_keys(const chihaya_driver_descriptor& d, const std::string& indent) {
    std::ostringstream out;
    for (uint32_t i = 0; i < d.config_key_count; ++i) {
        const chihaya_config_key& k = config_key_at(d, i);
        out << indent << k.key << " = "
            << ((k.flags & CHIHAYA_CONFIG_SECRET) ? "\"(secret)\"" : k.default_value) << "  # "
            << (k.doc ? k.doc : "");
        if (k.type == CHIHAYA_CONFIG_INT) out << " [" << k.min << ", " << k.max << "]";
        out << "\n";
    }
    return out.str();
}

std::string Registry::describe() const {
    std::ostringstream out;
    for (const auto& [key, driver] : drivers_) {
        if (!driver.descriptor) continue;  // not loaded: nothing but its name is known
        const chihaya_driver_descriptor& d = *driver.descriptor;
        out << "[" << kind_name(d.kind) << "." << d.name << "]  # " << driver.plugin_path << "\n";
        out << describe_keys(d, "");
        out << "\n";
    }
    return out.str();
}

}  // namespace chihaya
