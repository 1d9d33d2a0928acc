// Descriptor checks and the host-layout copy of a plugin's tables: every refusal a plugin can get,
// worded for an operator.
#include "plugin/handshake.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>

namespace chihaya {
namespace {

// The smallest size each struct had in this major's first release (2.0). Smaller is refused;
// between this and the host's sizeof, the missing (newer) members read as zero.
constexpr uint32_t kMinPlugin = sizeof(chihaya_plugin_descriptor);
constexpr uint32_t kMinDriver = sizeof(chihaya_driver_descriptor);
constexpr uint32_t kMinKey = sizeof(chihaya_config_key);
constexpr uint32_t kMinCache = offsetof(chihaya_cache_vtable, tick) + sizeof(void*);
constexpr uint32_t kMinStorage = offsetof(chihaya_storage_vtable, subscribe);

// Copies the members `size` covers into a zeroed host struct and stamps the host's size.
template <class T>
T covered(const void* from, uint32_t size) {
    T out{};
    std::memcpy(&out, from, std::min<size_t>(size, sizeof(T)));
    out.struct_size = sizeof(T);
    return out;
}

bool valid_name(const char* name) {
    if (!name || !*name || std::strlen(name) > 64) return false;
    for (const char* p = name; *p; ++p)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return false;
    return true;
}

bool valid_default(const chihaya_config_key& key) {
    if (!key.default_value) return false;
    std::string_view text(key.default_value);
    switch (key.type) {
        case CHIHAYA_CONFIG_STRING:
            return text.size() >= 2 && text.front() == '"' && text.back() == '"';
        case CHIHAYA_CONFIG_BOOL:
            return text == "true" || text == "false";
        case CHIHAYA_CONFIG_INT: {
            int64_t value = 0;
            auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
            return ec == std::errc() && end == text.data() + text.size() && value >= key.min &&
                   value <= key.max;
        }
    }
    return false;
}

std::string copy_keys(const chihaya_driver_descriptor& d, std::vector<chihaya_config_key>& out) {
    if (d.config_key_count == 0) return "";
    if (!d.config_keys) return "declares config keys but no table";
    const uint32_t stride = d.config_keys[0].struct_size;
    if (stride < kMinKey) return "config key table entry too small";
    for (uint32_t i = 0; i < d.config_key_count; ++i) {
        auto key = covered<chihaya_config_key>(
            reinterpret_cast<const char*>(d.config_keys) + size_t(i) * stride, stride);
        if (!valid_name(key.key)) return "config key with an invalid name";
        if (key.type != CHIHAYA_CONFIG_STRING && key.type != CHIHAYA_CONFIG_INT &&
            key.type != CHIHAYA_CONFIG_BOOL)
            return std::string("config key ") + key.key + " has an unknown type";
        if (!valid_default(key))
            return std::string("config key ") + key.key + " has an invalid default";
        out.push_back(key);
    }
    return "";
}

std::string copy_driver(const char* raw, uint32_t stride, PluginTables& tables) {
    auto d = covered<chihaya_driver_descriptor>(raw, stride);
    if (!valid_name(d.name)) return "a driver has an empty or invalid name (want [a-z0-9_-]+)";
    std::string who = std::string("driver ") + d.name + ": ";
    if (!d.vtable) return who + "no function table";
    const uint32_t table_size = *static_cast<const uint32_t*>(d.vtable);
    if (d.kind == CHIHAYA_KIND_CACHE) {
        if (table_size < kMinCache) return who + "cache function table too small";
        auto v = covered<chihaya_cache_vtable>(d.vtable, table_size);
        if (!v.create || !v.destroy || !v.announce || !v.scrape)
            return who + "cache function table lacks create, destroy, announce or scrape";
        d.vtable = &tables.caches.emplace_back(v);
    } else if (d.kind == CHIHAYA_KIND_STORAGE) {
        if (table_size < kMinStorage) return who + "storage function table too small";
        auto v = covered<chihaya_storage_vtable>(d.vtable, table_size);
        if (!v.create || !v.destroy) return who + "storage function table lacks create or destroy";
        if (!v.subscribe != !v.apply)
            return who + "storage function table has only one of subscribe and apply";
        d.vtable = &tables.storages.emplace_back(v);
    } else {
        return who + "unknown kind " + std::to_string(d.kind);
    }
    auto& keys = tables.keys.emplace_back();
    if (auto why = copy_keys(d, keys); !why.empty()) return who + why;
    d.config_keys = keys.empty() ? nullptr : keys.data();
    tables.drivers.push_back(d);
    return "";
}

std::string refused(std::string& why, std::string text) {
    why = std::move(text);
    return why;
}

}  // namespace

std::string host_abi_version() {
    return std::to_string(CHIHAYA_ABI_MAJOR) + "." + std::to_string(CHIHAYA_ABI_MINOR);
}

std::shared_ptr<const PluginTables> handshake(const chihaya_plugin_descriptor* p, std::string& why) {
    // magic, abi_major, abi_minor and struct_size lead the descriptor in every major.
    if (!p) return refused(why, "entry returned no descriptor"), nullptr;
    if (p->magic != CHIHAYA_PLUGIN_MAGIC) return refused(why, "not a chihaya plugin (bad magic)"), nullptr;
    const std::string theirs = std::to_string(p->abi_major) + "." + std::to_string(p->abi_minor);
    if (p->abi_major != CHIHAYA_ABI_MAJOR)
        return refused(why, "built for ABI " + theirs + ", this host speaks ABI " + host_abi_version() +
                                " (major versions differ)"), nullptr;
    if (p->struct_size < kMinPlugin) return refused(why, "plugin descriptor too small"), nullptr;
    auto tables = std::make_shared<PluginTables>();
    tables->plugin = covered<chihaya_plugin_descriptor>(p, p->struct_size);
    const chihaya_plugin_descriptor& d = tables->plugin;
    if (d.min_host_minor > CHIHAYA_ABI_MINOR)
        return refused(why, "built for ABI " + theirs + " and needs a host of ABI " +
                                std::to_string(CHIHAYA_ABI_MAJOR) + "." + std::to_string(d.min_host_minor) +
                                " or newer; this host speaks ABI " + host_abi_version()), nullptr;
    if (d.driver_count == 0 || !d.drivers) return refused(why, "registers no driver"), nullptr;
    const uint32_t stride = d.drivers[0].struct_size;
    if (stride < kMinDriver) return refused(why, "driver descriptor too small"), nullptr;
    tables->drivers.reserve(d.driver_count);  // the registry points into it
    for (uint32_t i = 0; i < d.driver_count; ++i) {
        why = copy_driver(reinterpret_cast<const char*>(d.drivers) + size_t(i) * stride, stride, *tables);
        if (!why.empty()) return nullptr;
    }
    tables->plugin.drivers = tables->drivers.data();
    return tables;
}

}  // namespace chihaya
