// driver_under_test.hpp: the host side of a conformance suite, shared by the cache kit
// (chihaya-conformance) and the storage suite (tests/conformance): host services that keep every
// line a driver logs, dlopen of a plugin, the driver of one kind and name, and its config table
// with overrides applied. Only the ABI is used.
#pragma once

#include <chihaya/abi.h>

#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace chihaya_test {

inline uint64_t host_now_ms() {
    using namespace std::chrono;
    return static_cast<uint64_t>(
        duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

// Every line a driver logs, as "[level] source: message", kept for the tests that check what a
// driver must never log (a passkey, a password).
inline std::mutex log_mutex;
inline std::vector<std::string> log_lines;

inline std::vector<std::string> logged() {
    std::lock_guard lock(log_mutex);
    return log_lines;
}

inline void host_log(chihaya_log_level level, chihaya_str source, chihaya_str message) {
    static const char* names[] = {"debug", "info", "warning", "error"};
    std::string line = std::string("[") + names[level & 3] + "] " +
                       std::string(source.ptr, source.len) + ": " + std::string(message.ptr, message.len);
    std::fprintf(stderr, "%s\n", line.c_str());
    std::lock_guard lock(log_mutex);
    log_lines.push_back(std::move(line));
}

inline const chihaya_host_api host_api = {sizeof(chihaya_host_api), CHIHAYA_ABI_MAJOR, CHIHAYA_ABI_MINOR,
                                   &host_log, &host_now_ms};

inline std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

// The driver under test, loaded once for the whole run. Vtable: chihaya_cache_vtable or
// chihaya_storage_vtable.
template <class Vtable>
struct Driver {
    void* library = nullptr;
    const chihaya_plugin_descriptor* plugin = nullptr;
    const chihaya_driver_descriptor* descriptor = nullptr;
    const Vtable* vtable = nullptr;
    // Resolved config: values point into `strings`, which lives as long as the Driver.
    std::vector<std::string> strings;
    std::vector<chihaya_config_value> values;
    std::string error;
};

inline std::string trim(std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
    size_t i = 0;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    return s.substr(i);
}

// Parses a TOML-ish scalar as declared: ints, true/false, "quoted" strings.
inline bool parse_value(const chihaya_config_key& key, const std::string& text, chihaya_config_value& out,
                 std::string& storage, std::string& error) {
    out.struct_size = sizeof out;
    out.key = key.key;
    out.type = key.type;
    switch (key.type) {
    case CHIHAYA_CONFIG_INT: {
        char* end = nullptr;
        long long v = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0') {
            error = std::string(key.key) + ": not an integer: " + text;
            return false;
        }
        out.integer = v;
        return true;
    }
    case CHIHAYA_CONFIG_BOOL:
        if (text != "true" && text != "false") {
            error = std::string(key.key) + ": not true/false: " + text;
            return false;
        }
        out.integer = text == "true";
        return true;
    case CHIHAYA_CONFIG_STRING:
        storage = text;
        if (storage.size() >= 2 && storage.front() == '"' && storage.back() == '"')
            storage = storage.substr(1, storage.size() - 2);
        return true;
    }
    error = std::string(key.key) + ": unknown type";
    return false;
}

// Overrides of the driver's declared defaults, key -> TOML scalar as written ("16", "true",
// "\"text\""). From CHIHAYA_DRIVER_CONFIG: key=value lines (a value may hold commas).
inline std::map<std::string, std::string> overrides_from_env(std::string& error) {
    std::map<std::string, std::string> overrides;
    std::string text = env("CHIHAYA_DRIVER_CONFIG");
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        std::string line = trim(text.substr(start, end - start));
        start = end + 1;
        if (line.empty()) continue;
        size_t eq = line.find('=');
        if (eq == std::string::npos) {
            error = "CHIHAYA_DRIVER_CONFIG: expected key=value, got " + line;
            break;
        }
        overrides[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
    }
    return overrides;
}

template <class Vtable>
bool resolve_config(Driver<Vtable>& d, std::map<std::string, std::string> overrides) {
    uint32_t n = d.descriptor->config_key_count;
    d.strings.resize(n);
    d.values.resize(n);
    for (uint32_t i = 0; i < n; ++i) {
        const chihaya_config_key& key = *CHIHAYA_AT(const chihaya_config_key, d.descriptor->config_keys, i);
        std::string value = key.default_value ? key.default_value : "";
        if (auto it = overrides.find(key.key); it != overrides.end()) {
            value = it->second;
            overrides.erase(it);
        }
        if (!parse_value(key, value, d.values[i], d.strings[i], d.error)) return false;
    }
    for (uint32_t i = 0; i < n; ++i)
        if (d.values[i].type == CHIHAYA_CONFIG_STRING)
            d.values[i].string = {d.strings[i].data(), d.strings[i].size()};
    if (!overrides.empty()) {
        d.error = "config: the driver declares no key " + overrides.begin()->first;
        return false;
    }
    return true;
}

// The driver `name` of `kind` (matching Vtable; kind_name for messages) in the plugin at `path`,
// its config resolved with `overrides`. On any failure d.error says why.
template <class Vtable>
Driver<Vtable> load(const std::string& path, const std::string& name, chihaya_driver_kind kind,
                    const char* kind_name, const std::map<std::string, std::string>& overrides) {
    Driver<Vtable> d;
    if (path.empty() || name.empty()) {
        d.error = std::string("no plugin path or ") + kind_name + " driver name given";
        return d;
    }
    d.library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!d.library) {
        d.error = std::string("dlopen: ") + dlerror();
        return d;
    }
    auto entry = reinterpret_cast<chihaya_plugin_entry_fn>(dlsym(d.library, CHIHAYA_PLUGIN_ENTRY_SYMBOL));
    if (!entry) {
        d.error = path + ": no " CHIHAYA_PLUGIN_ENTRY_SYMBOL;
        return d;
    }
    d.plugin = entry(&host_api);
    if (!d.plugin || d.plugin->magic != CHIHAYA_PLUGIN_MAGIC || d.plugin->abi_major != CHIHAYA_ABI_MAJOR) {
        d.error = path + ": not a chihaya plugin of ABI major " + std::to_string(CHIHAYA_ABI_MAJOR);
        return d;
    }
    if (d.plugin->min_host_minor > CHIHAYA_ABI_MINOR) {
        d.error = path + ": needs a host of ABI minor " + std::to_string(d.plugin->min_host_minor) +
                  "; this kit speaks " + std::to_string(CHIHAYA_ABI_MAJOR) + "." +
                  std::to_string(CHIHAYA_ABI_MINOR);
        return d;
    }
    for (uint32_t i = 0; i < d.plugin->driver_count; ++i) {
        const chihaya_driver_descriptor& desc = *CHIHAYA_AT(const chihaya_driver_descriptor, d.plugin->drivers, i);
        if (desc.kind == kind && name == desc.name) d.descriptor = &desc;
    }
    if (!d.descriptor) {
        d.error = path + ": no " + kind_name + " driver named " + name;
        return d;
    }
    d.vtable = static_cast<const Vtable*>(d.descriptor->vtable);
    resolve_config(d, overrides);
    return d;
}

}  // namespace chihaya_test
