// Descriptor checks: every refusal a plugin can get, worded for an operator.
#include "plugin/handshake.hpp"

#include <charconv>
#include <cstring>
#include <string_view>

namespace chihaya {
namespace {

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

std::string check_keys(const chihaya_driver_descriptor& d) {
    if (d.config_key_count > 0 && !d.config_keys) return "declares config keys but no table";
    for (uint32_t i = 0; i < d.config_key_count; ++i) {
        if (d.config_keys[0].struct_size < sizeof(chihaya_config_key))
            return "config key table entry too small";
        const chihaya_config_key& key = config_key_at(d, i);
        if (!valid_name(key.key)) return "config key with an invalid name";
        if (key.type != CHIHAYA_CONFIG_STRING && key.type != CHIHAYA_CONFIG_INT &&
            key.type != CHIHAYA_CONFIG_BOOL)
            return std::string("config key ") + key.key + " has an unknown type";
        if (!valid_default(key))
            return std::string("config key ") + key.key + " has an invalid default";
    }
    return "";
}

std::string check_driver(const chihaya_driver_descriptor& d) {
    if (d.struct_size < sizeof(chihaya_driver_descriptor)) return "driver descriptor too small";
    if (!valid_name(d.name)) return "a driver has an empty or invalid name (want [a-z0-9_-]+)";
    std::string who = std::string("driver ") + d.name + ": ";
    if (!d.vtable) return who + "no function table";
    if (d.kind == CHIHAYA_KIND_CACHE) {
        auto* v = static_cast<const chihaya_cache_vtable*>(d.vtable);
        if (!CHIHAYA_HAS_MEMBER(v, chihaya_cache_vtable, scrape))
            return who + "cache function table too small";
        if (!v->create || !v->destroy || !v->announce || !v->scrape)
            return who + "cache function table lacks create, destroy, announce or scrape";
    } else if (d.kind == CHIHAYA_KIND_STORAGE) {
        auto* v = static_cast<const chihaya_storage_vtable*>(d.vtable);
        if (!CHIHAYA_HAS_MEMBER(v, chihaya_storage_vtable, destroy))
            return who + "storage function table too small";
        if (!v->create || !v->destroy) return who + "storage function table lacks create or destroy";
    } else {
        return who + "unknown kind " + std::to_string(d.kind);
    }
    if (auto why = check_keys(d); !why.empty()) return who + why;
    return "";
}

}  // namespace

std::string host_abi_version() {
    return std::to_string(CHIHAYA_ABI_MAJOR) + "." + std::to_string(CHIHAYA_ABI_MINOR);
}

std::string check_plugin(const chihaya_plugin_descriptor* p) {
    if (!p) return "entry returned no descriptor";
    if (p->magic != CHIHAYA_PLUGIN_MAGIC) return "not a chihaya plugin (bad magic)";
    if (p->abi_major != CHIHAYA_ABI_MAJOR)
        return "built for ABI " + std::to_string(p->abi_major) + "." + std::to_string(p->abi_minor) +
               ", this host speaks ABI " + host_abi_version() + " (major versions differ)";
    if (p->struct_size < sizeof(chihaya_plugin_descriptor)) return "plugin descriptor too small";
    if (p->driver_count == 0 || !p->drivers) return "registers no driver";
    if (p->drivers[0].struct_size < sizeof(chihaya_driver_descriptor))
        return "driver descriptor too small";
    for (uint32_t i = 0; i < p->driver_count; ++i)
        if (auto why = check_driver(driver_at(p, i)); !why.empty()) return why;
    return "";
}

}  // namespace chihaya
