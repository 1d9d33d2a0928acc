// chihaya/driver.hpp: header-only C++ layer over abi.h, so a driver is a plain class plus one line.
//
//   class MyCache {
//    public:
//     static constexpr chihaya_config_key config_keys[] = {           // omit when there are none
//         chihaya::config_int("shards", "64", 1, 4096, "lock shards"),
//     };
//     MyCache(const chihaya::Host& host, const chihaya::Config& config);  // throw to refuse
//     void announce(const chihaya_announce_request&, chihaya_announce_result&, chihaya::Completion);
//     void scrape(chihaya_scrape_request&, chihaya::Completion);
//     // optional: void scrape_all(chihaya_scrape_visit, void*, chihaya::Completion);
//     // optional: void tick(uint64_t now_ms);
//   };
//   CHIHAYA_REGISTER_CACHE("mycache", MyCache)
//
// A plugin with several drivers writes
//   CHIHAYA_PLUGIN("my-plugin", "1.2.0", chihaya::cache_driver<A>("a"), chihaya::storage_driver<B>("b"))
//
// The macros emit trampolines (each catching every exception and mapping it to
// CHIHAYA_INTERNAL with its message), a constant descriptor table and the exported entry symbol.
// Nothing runs at load time. Rules for methods, on top of abi.h's THREADS and MEMORY:
//   - announce/scrape/scrape_all/tick run concurrently from many threads: lock what you share.
//   - call the Completion exactly once; a method that throws must not have called it.
//   - do not let an exception escape after the Completion was called.
// Plugins are built with -fvisibility=hidden: only the entry symbol is exported.
#ifndef CHIHAYA_DRIVER_HPP
#define CHIHAYA_DRIVER_HPP

#include <chihaya/abi.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace chihaya {

// Writes a NUL-terminated, truncated message into a caller-owned buffer.
inline void write_message(char* buffer, size_t cap, std::string_view text) noexcept {
    if (cap == 0) return;
    size_t n = text.size() < cap - 1 ? text.size() : cap - 1;
    std::memcpy(buffer, text.data(), n);
    buffer[n] = '\0';
}

// Config key declarations for `static constexpr chihaya_config_key config_keys[]`. Defaults are
// written as TOML text, so the host can print them and check them against the type and range.
constexpr chihaya_config_key config_int(const char* key, const char* default_value, int64_t min,
                                        int64_t max, const char* doc) {
    return {sizeof(chihaya_config_key), key, CHIHAYA_CONFIG_INT, default_value, min, max, doc};
}
// `quoted_default` includes the quotes: "\"127.0.0.1:6379\"".
constexpr chihaya_config_key config_string(const char* key, const char* quoted_default,
                                           const char* doc) {
    return {sizeof(chihaya_config_key), key, CHIHAYA_CONFIG_STRING, quoted_default, 0, 0, doc};
}
constexpr chihaya_config_key config_bool(const char* key, bool default_value, const char* doc) {
    return {sizeof(chihaya_config_key), key, CHIHAYA_CONFIG_BOOL, default_value ? "true" : "false",
            0, 0, doc};
}

// The host's services, as lent to the driver. Cheap to copy; valid for the instance's lifetime.
class Host {
public:
    Host(const chihaya_host_api* api, std::string_view source) : api_(api), source_(source) {}
    void log(chihaya_log_level level, std::string_view message) const noexcept {
        api_->log(level, {source_.data(), source_.size()}, {message.data(), message.size()});
    }
    void info(std::string_view m) const noexcept { log(CHIHAYA_LOG_INFO, m); }
    void warning(std::string_view m) const noexcept { log(CHIHAYA_LOG_WARNING, m); }
    void error(std::string_view m) const noexcept { log(CHIHAYA_LOG_ERROR, m); }
    uint64_t now_ms() const noexcept { return api_->now_ms(); }
    const chihaya_host_api* api() const noexcept { return api_; }

private:
    const chihaya_host_api* api_;
    std::string_view source_;
};

// The driver's config table, validated by the host: every declared key is present.
class Config {
public:
    explicit Config(const chihaya_config* config) : config_(config) {}
    int64_t integer(std::string_view key) const { return find(key).integer; }
    bool boolean(std::string_view key) const { return find(key).integer != 0; }
    std::string_view string(std::string_view key) const {
        const auto& v = find(key);
        return {v.string.ptr, v.string.len};
    }

private:
    const chihaya_config_value& find(std::string_view key) const {
        for (uint32_t i = 0; i < config_->count; ++i)
            if (key == config_->values[i].key) return config_->values[i];
        throw std::invalid_argument("undeclared config key: " + std::string(key));
    }
    const chihaya_config* config_;
};

// Completion handle: call it exactly once.
class Completion {
public:
    explicit Completion(chihaya_completion c) noexcept : c_(c) {}
    void operator()(chihaya_status status) const noexcept { c_.done(c_.ctx, status); }

private:
    chihaya_completion c_;
};

namespace detail {

template <class T>
constexpr auto has_config_keys(int) -> decltype(sizeof(T::config_keys), true) { return true; }
template <class T>
constexpr bool has_config_keys(...) { return false; }

template <class T>
constexpr const chihaya_config_key* config_keys() {
    if constexpr (has_config_keys<T>(0)) return T::config_keys; else return nullptr;
}
template <class T>
constexpr uint32_t config_key_count() {
    if constexpr (has_config_keys<T>(0))
        return sizeof(T::config_keys) / sizeof(T::config_keys[0]);
    else
        return 0;
}

template <class T, const char* const* Name>
chihaya_instance* create(const chihaya_host_api* host, const chihaya_config* config, char* error,
                         size_t error_cap) noexcept {
    try {
        return reinterpret_cast<chihaya_instance*>(new T(Host(host, *Name), Config(config)));
    } catch (const std::exception& e) {
        write_message(error, error_cap, e.what());
    } catch (...) {
        write_message(error, error_cap, "unknown exception");
    }
    return nullptr;
}

template <class T>
void destroy(chihaya_instance* instance) noexcept {
    delete reinterpret_cast<T*>(instance);
}

template <class T>
T& self(chihaya_instance* instance) noexcept { return *reinterpret_cast<T*>(instance); }

inline void fail(char* message, const char* what, chihaya_completion c) noexcept {
    write_message(message, CHIHAYA_MESSAGE_CAP, what);
    c.done(c.ctx, CHIHAYA_INTERNAL);
}

template <class T>
void announce(chihaya_instance* instance, const chihaya_announce_request* request,
              chihaya_announce_result* result, chihaya_completion c) noexcept {
    try {
        self<T>(instance).announce(*request, *result, Completion(c));
    } catch (const std::exception& e) {
        fail(result->message, e.what(), c);
    } catch (...) {
        fail(result->message, "unknown exception", c);
    }
}

template <class T>
void scrape(chihaya_instance* instance, chihaya_scrape_request* request,
            chihaya_completion c) noexcept {
    try {
        self<T>(instance).scrape(*request, Completion(c));
    } catch (const std::exception& e) {
        fail(request->message, e.what(), c);
    } catch (...) {
        fail(request->message, "unknown exception", c);
    }
}

template <class T>
void scrape_all(chihaya_instance* instance, chihaya_scrape_visit visit, void* ctx,
                chihaya_completion c) noexcept {
    try {
        self<T>(instance).scrape_all(visit, ctx, Completion(c));
    } catch (...) {
        c.done(c.ctx, CHIHAYA_INTERNAL);
    }
}

template <class T>
void tick(chihaya_instance* instance, uint64_t now_ms) noexcept {
    try {
        self<T>(instance).tick(now_ms);
    } catch (...) {
        // Housekeeping is retried on the next tick; nothing to report to a client.
    }
}

// Optional methods: present in the table only when the class has them.
template <class T>
constexpr auto scrape_all_fn() -> decltype(&scrape_all<T>) {
    if constexpr (requires(T& t, chihaya_scrape_visit v, void* c, Completion d) { t.scrape_all(v, c, d); })
        return &scrape_all<T>;
    else
        return nullptr;
}
template <class T>
constexpr auto tick_fn() -> decltype(&tick<T>) {
    if constexpr (requires(T& t, uint64_t now) { t.tick(now); })
        return &tick<T>;
    else
        return nullptr;
}

template <class T, const char* const* Name>
inline constexpr chihaya_cache_vtable cache_vtable = {
    sizeof(chihaya_cache_vtable), &create<T, Name>, &destroy<T>, &announce<T>, &scrape<T>,
    scrape_all_fn<T>(),           tick_fn<T>(),
};

template <class T, const char* const* Name>
inline constexpr chihaya_storage_vtable storage_vtable = {
    sizeof(chihaya_storage_vtable), &create<T, Name>, &destroy<T>,
};

}  // namespace detail

// Descriptors for CHIHAYA_PLUGIN. `Name` is a pointer to a static string so that the
// trampolines can attribute log lines to the driver without any state set at load time.
template <class T, const char* const* Name>
constexpr chihaya_driver_descriptor cache_driver() {
    return {sizeof(chihaya_driver_descriptor), CHIHAYA_KIND_CACHE, *Name,
            detail::config_key_count<T>(), detail::config_keys<T>(),
            &detail::cache_vtable<T, Name>};
}

template <class T, const char* const* Name>
constexpr chihaya_driver_descriptor storage_driver() {
    return {sizeof(chihaya_driver_descriptor), CHIHAYA_KIND_STORAGE, *Name,
            detail::config_key_count<T>(), detail::config_keys<T>(),
            &detail::storage_vtable<T, Name>};
}

}  // namespace chihaya

#define CHIHAYA_EXPORT __attribute__((visibility("default")))

// The entry symbol with a constant table of drivers. Use once per plugin.
#define CHIHAYA_PLUGIN(plugin_name, plugin_version, ...)                                        \
    extern "C" CHIHAYA_EXPORT const chihaya_plugin_descriptor* chihaya_plugin_entry(           \
        const chihaya_host_api*) {                                                              \
        static constexpr chihaya_driver_descriptor drivers[] = {__VA_ARGS__};                   \
        static constexpr chihaya_plugin_descriptor descriptor = {                               \
            CHIHAYA_PLUGIN_MAGIC,                                                               \
            CHIHAYA_ABI_MAJOR,                                                                  \
            CHIHAYA_ABI_MINOR,                                                                  \
            sizeof(chihaya_plugin_descriptor),                                                  \
            plugin_name,                                                                        \
            plugin_version,                                                                     \
            sizeof(drivers) / sizeof(drivers[0]),                                               \
            drivers};                                                                           \
        return &descriptor;                                                                     \
    }

// Declares a driver name usable as the second template argument of cache_driver/storage_driver.
#define CHIHAYA_DRIVER_NAME(ident, text) \
    namespace { constexpr const char ident##_text[] = text; constexpr const char* ident = ident##_text; }

// One-driver plugins: the Go-style "Register(name, driver)" line.
#define CHIHAYA_REGISTER_CACHE(name, Class)                                            \
    CHIHAYA_DRIVER_NAME(chihaya_cache_driver_name_, name)                              \
    CHIHAYA_PLUGIN(name, "1", chihaya::cache_driver<Class, &chihaya_cache_driver_name_>())

#define CHIHAYA_REGISTER_STORAGE(name, Class)                                          \
    CHIHAYA_DRIVER_NAME(chihaya_storage_driver_name_, name)                            \
    CHIHAYA_PLUGIN(name, "1", chihaya::storage_driver<Class, &chihaya_storage_driver_name_>())

#endif  // CHIHAYA_DRIVER_HPP
