// chihaya/driver.hpp: header-only C++ layer over abi.h, so a driver is a plain class plus one line.
// (Each ```cpp sample below is compiled by the test sdk.code_samples.)
//
//   ```cpp
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
//     // optional (2.2): chihaya_status stats(chihaya_cache_stats& out);  // cheap: /metrics
//     // optional (2.3): capabilities, e.g. when announce enforces the request's [limits] budgets:
//     // static constexpr uint32_t driver_flags = CHIHAYA_DRIVER_PROVIDES_LIMITS;
//   };
//   CHIHAYA_REGISTER_CACHE("mycache", MyCache)
//   ```
//
// A storage driver has the same constructor and, for private mode (ABI 2.1), optionally
// subscribe and apply, and (ABI 2.2) health for /readyz:
//
//   ```cpp
//   class MyStorage {
//    public:
//     MyStorage(const chihaya::Host& host, const chihaya::Config& config);
//     void subscribe(const chihaya::RegistrySink& sink);                // throw to refuse start-up
//     void apply(chihaya_delta_batch& batch, chihaya::Completion done);
//     chihaya_status health(std::string& why);  // optional: OK, or UNAVAILABLE and why
//   };
//   CHIHAYA_REGISTER_STORAGE("mystore", MyStorage)
//   ```
//
// The plugin's version string is CHIHAYA_PLUGIN_VERSION, which the build defines (the SDK's
// chihaya_add_driver passes the project's version); define CHIHAYA_MIN_HOST_MINOR before this
// include when the plugin needs a newer host minor than 0 (see VERSIONING in abi.h).
//
// A plugin with several drivers writes
//
//   ```cpp
//   struct A {
//     A(const chihaya::Host&, const chihaya::Config&) {}
//     void announce(const chihaya_announce_request&, chihaya_announce_result&, chihaya::Completion done) { done(CHIHAYA_OK); }
//     void scrape(chihaya_scrape_request&, chihaya::Completion done) { done(CHIHAYA_OK); }
//   };
//   struct B {
//     B(const chihaya::Host&, const chihaya::Config&) {}
//   };
//   CHIHAYA_DRIVER_NAME(a_name, "a")
//   CHIHAYA_DRIVER_NAME(b_name, "b")
//   CHIHAYA_PLUGIN("my-plugin", "1.2.0", chihaya::cache_driver<A, &a_name>(),
//                  chihaya::storage_driver<B, &b_name>())
//   ```
//
// A method with the name of an optional one but the wrong signature is a compile error, and so
// are an invalid driver name, config key name or default.
//
// The macros emit trampolines (each catching every exception and mapping it to
// CHIHAYA_INTERNAL with its message), a constant descriptor table and the exported entry symbol.
// Nothing runs at load time. Rules for methods, on top of abi.h's THREADS and MEMORY:
//   - announce/scrape/scrape_all/tick/stats run concurrently from many threads: lock what you
//     share. stats and health answer from state the driver keeps: no I/O (THREADS in abi.h).
//   - call the Completion exactly once; a method that throws must not have called it.
//   - do not let an exception escape after the Completion was called.
// Plugins are built with -fvisibility=hidden: only the entry symbol is exported.
#ifndef CHIHAYA_DRIVER_HPP
#define CHIHAYA_DRIVER_HPP

#include <chihaya/abi.h>

#include <algorithm>
#include <concepts>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

#ifndef CHIHAYA_MIN_HOST_MINOR
#define CHIHAYA_MIN_HOST_MINOR 0u
#endif

namespace chihaya {

// Writes a NUL-terminated, truncated message into a caller-owned buffer.
inline void write_message(char* buffer, size_t cap, std::string_view text) noexcept {
    if (cap == 0) return;
    size_t n = text.size() < cap - 1 ? text.size() : cap - 1;
    std::memcpy(buffer, text.data(), n);
    buffer[n] = '\0';
}

namespace detail {

// Compile-time checks of what a driver declares. Evaluated in a constant expression (the
// `static constexpr` tables below), a failed check is a compile error whose note names it.
constexpr bool valid_name(const char* name) {
    if (!name || !*name) return false;
    size_t n = 0;
    for (const char* p = name; *p; ++p, ++n)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return false;
    return n <= 64;
}

constexpr bool parse_int(const char* text, int64_t& out) {
    if (!text || !*text) return false;
    bool negative = *text == '-';
    if (negative) ++text;
    if (!*text) return false;
    int64_t value = 0;
    for (; *text; ++text) {
        if (*text < '0' || *text > '9') return false;
        if (value > (INT64_MAX - (*text - '0')) / 10) return false;
        value = value * 10 + (*text - '0');
    }
    out = negative ? -value : value;
    return true;
}

constexpr bool quoted(const char* text) {
    if (!text || *text != '"') return false;
    size_t n = 0;
    while (text[n]) ++n;
    return n >= 2 && text[n - 1] == '"';
}

inline void invalid_config_key_name() {}  // named in the compile error: see config_int & co.
inline void invalid_config_default() {}
inline void invalid_driver_name() {}

}  // namespace detail

// Config key declarations for `static constexpr chihaya_config_key config_keys[]`. Defaults are
// written as TOML text, so the host can print them and check them against the type and range.
// An invalid key name or a default that does not parse or lies outside [min, max] does not
// compile.
consteval chihaya_config_key config_int(const char* key, const char* default_value, int64_t min,
                                        int64_t max, const char* doc) {
    if (!detail::valid_name(key)) detail::invalid_config_key_name();
    int64_t value = 0;
    if (!detail::parse_int(default_value, value) || value < min || value > max)
        detail::invalid_config_default();
    return {sizeof(chihaya_config_key), CHIHAYA_CONFIG_INT, key, default_value, min, max, doc, 0, 0};
}
// `quoted_default` includes the quotes: "\"127.0.0.1:6379\"".
consteval chihaya_config_key config_string(const char* key, const char* quoted_default,
                                           const char* doc) {
    if (!detail::valid_name(key)) detail::invalid_config_key_name();
    if (!detail::quoted(quoted_default)) detail::invalid_config_default();
    return {sizeof(chihaya_config_key), CHIHAYA_CONFIG_STRING, key, quoted_default, 0, 0, doc, 0, 0};
}
// A string the host never prints or logs (passwords, connection strings).
consteval chihaya_config_key config_secret(const char* key, const char* quoted_default,
                                           const char* doc) {
    chihaya_config_key k = config_string(key, quoted_default, doc);
    k.flags = CHIHAYA_CONFIG_SECRET;
    return k;
}
consteval chihaya_config_key config_bool(const char* key, bool default_value, const char* doc) {
    if (!detail::valid_name(key)) detail::invalid_config_key_name();
    return {sizeof(chihaya_config_key), CHIHAYA_CONFIG_BOOL, key, default_value ? "true" : "false",
            0, 0, doc, 0, 0};
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
        for (uint32_t i = 0; i < config_->count; ++i) {
            const chihaya_config_value& v = *CHIHAYA_AT(const chihaya_config_value, config_->values, i);
            if (key == v.key) return v;
        }
        throw std::invalid_argument("undeclared config key: " + std::string(key));
    }
    const chihaya_config* config_;
};

// Completion handle: call it exactly once. Copies the host's `done` and `ctx` when made, so a
// second call by mistake names the request it came from even after the host reused the
// completion struct for another one; the host then logs and ignores it (abi.h, THREADS).
class Completion {
public:
    explicit Completion(const chihaya_completion* c) noexcept : done_(c->done), ctx_(c->ctx) {}
    void operator()(chihaya_status status) const noexcept { done_(ctx_, status); }

private:
    void (*done_)(void*, chihaya_status);
    void* ctx_;
};

// Entry i of a scrape request, walked with the host's stride (see VERSIONING in abi.h).
inline chihaya_scrape_entry& scrape_entry(chihaya_scrape_request& request, uint32_t i) noexcept {
    return *CHIHAYA_AT(chihaya_scrape_entry, request.entries, i);
}

// The host's registry, as lent to a storage driver's subscribe (see chihaya_registry_sink).
class RegistrySink {
public:
    explicit RegistrySink(const chihaya_registry_sink* sink) noexcept : s_(sink) {}
    void put_user(const chihaya_user& u) const noexcept { s_->put_user(s_->ctx, &u); }
    void remove_user(uint64_t id) const noexcept { s_->remove_user(s_->ctx, id); }
    void put_torrent(const chihaya_torrent& t) const noexcept { s_->put_torrent(s_->ctx, &t); }
    void remove_torrent(uint64_t id) const noexcept { s_->remove_torrent(s_->ctx, id); }
    void put_client(const chihaya_client& c) const noexcept { s_->put_client(s_->ctx, &c); }
    void remove_client(uint64_t id) const noexcept { s_->remove_client(s_->ctx, id); }
    void reset() const noexcept { s_->reset(s_->ctx); }
    void loaded() const noexcept { s_->loaded(s_->ctx); }

private:
    const chihaya_registry_sink* s_;
};

// Delta i of a batch and torrent stats i, walked with the host's stride.
inline const chihaya_peer_delta& delta_at(const chihaya_delta_batch& batch, uint32_t i) noexcept {
    return *CHIHAYA_AT(const chihaya_peer_delta, batch.deltas, i);
}
inline const chihaya_torrent_stats& torrent_stats_at(const chihaya_delta_batch& batch,
                                                     uint32_t i) noexcept {
    return *CHIHAYA_AT(const chihaya_torrent_stats, batch.torrents, i);
}

namespace detail {

template <class T>
constexpr auto has_config_keys(int) -> decltype(sizeof(T::config_keys), true) { return true; }
template <class T>
constexpr bool has_config_keys(...) { return false; }

// Capabilities (abi.h CHIHAYA_DRIVER_*): `static constexpr uint32_t driver_flags = ...;` in the
// driver class, 0 without it.
template <class T>
constexpr uint32_t driver_flags() {
    if constexpr (requires { { T::driver_flags } -> std::convertible_to<uint32_t>; })
        return T::driver_flags;
    else
        return 0;
}

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

inline void fail(char* message, const char* what, const chihaya_completion* c) noexcept {
    write_message(message, CHIHAYA_MESSAGE_CAP, what);
    c->done(c->ctx, CHIHAYA_INTERNAL);
}

template <class T>
void announce(chihaya_instance* instance, const chihaya_announce_request* request,
              chihaya_announce_result* result, const chihaya_completion* c) noexcept {
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
            const chihaya_completion* c) noexcept {
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
                const chihaya_completion* c) noexcept {
    try {
        self<T>(instance).scrape_all(visit, ctx, Completion(c));
    } catch (...) {
        c->done(c->ctx, CHIHAYA_INTERNAL);
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

template <class T>
chihaya_status subscribe(chihaya_instance* instance, const chihaya_registry_sink* sink, char* error,
                         size_t error_cap) noexcept {
    try {
        self<T>(instance).subscribe(RegistrySink(sink));
        return CHIHAYA_OK;
    } catch (const std::exception& e) {
        write_message(error, error_cap, e.what());
    } catch (...) {
        write_message(error, error_cap, "unknown exception");
    }
    return CHIHAYA_UNAVAILABLE;
}

template <class T>
void apply(chihaya_instance* instance, chihaya_delta_batch* batch,
           const chihaya_completion* c) noexcept {
    try {
        self<T>(instance).apply(*batch, Completion(c));
    } catch (const std::exception& e) {
        fail(batch->message, e.what(), c);
    } catch (...) {
        fail(batch->message, "unknown exception", c);
    }
}

// The driver fills a stats struct of its own layout; only what the host's struct covers is
// copied back (abi.h: the host's struct_size says how much it has), so a driver built for a later
// minor never writes past an older host's struct.
template <class T>
chihaya_status stats(chihaya_instance* instance, chihaya_cache_stats* out) noexcept {
    chihaya_cache_stats mine{};
    mine.struct_size = sizeof mine;
    chihaya_status status = CHIHAYA_INTERNAL;
    try {
        status = self<T>(instance).stats(mine);
    } catch (const std::exception& e) {
        write_message(mine.message, CHIHAYA_MESSAGE_CAP, e.what());
    } catch (...) {
        write_message(mine.message, CHIHAYA_MESSAGE_CAP, "unknown exception");
    }
    const uint32_t host_size = out->struct_size;
    std::memcpy(out, &mine, std::min<size_t>(host_size, sizeof mine));
    out->struct_size = host_size;
    return status;
}

template <class T>
chihaya_status health(chihaya_instance* instance, char* message, size_t message_cap) noexcept {
    try {
        std::string why;
        const chihaya_status status = self<T>(instance).health(why);
        if (status != CHIHAYA_OK) write_message(message, message_cap, why);
        return status;
    } catch (const std::exception& e) {
        write_message(message, message_cap, e.what());
    } catch (...) {
        write_message(message, message_cap, "unknown exception");
    }
    return CHIHAYA_INTERNAL;
}

// Optional methods: present in the table only when the class has them. A member of that name
// with another signature is a mistake the compiler reports rather than a method silently unused.
#define CHIHAYA_DETAIL_OPTIONAL(method, signature_text, ...)                                     \
    template <class T>                                                                            \
    constexpr auto method##_fn() -> decltype(&method<T>) {                                        \
        constexpr bool named = requires { &T::method; };                                          \
        constexpr bool callable = requires __VA_ARGS__;                                           \
        static_assert(!named || callable, "optional driver method has the wrong signature; want " \
                                          signature_text);                                        \
        if constexpr (callable) return &method<T>; else return nullptr;                           \
    }
CHIHAYA_DETAIL_OPTIONAL(scrape_all, "void scrape_all(chihaya_scrape_visit, void*, chihaya::Completion)",
                        (T& t, chihaya_scrape_visit v, void* c, Completion d) { t.scrape_all(v, c, d); })
CHIHAYA_DETAIL_OPTIONAL(tick, "void tick(uint64_t now_ms)", (T& t, uint64_t now) { t.tick(now); })
CHIHAYA_DETAIL_OPTIONAL(subscribe, "void subscribe(const chihaya::RegistrySink&)",
                        (T& t, const RegistrySink& s) { t.subscribe(s); })
CHIHAYA_DETAIL_OPTIONAL(apply, "void apply(chihaya_delta_batch&, chihaya::Completion)",
                        (T& t, chihaya_delta_batch& b, Completion d) { t.apply(b, d); })
CHIHAYA_DETAIL_OPTIONAL(stats, "chihaya_status stats(chihaya_cache_stats&)",
                        (T& t, chihaya_cache_stats& s) { { t.stats(s) } -> std::same_as<chihaya_status>; })
CHIHAYA_DETAIL_OPTIONAL(health, "chihaya_status health(std::string& why)",
                        (T& t, std::string& why) { { t.health(why) } -> std::same_as<chihaya_status>; })
#undef CHIHAYA_DETAIL_OPTIONAL

template <class T, const char* const* Name>
inline constexpr chihaya_cache_vtable cache_vtable = {
    sizeof(chihaya_cache_vtable), &create<T, Name>, &destroy<T>, &announce<T>, &scrape<T>,
    scrape_all_fn<T>(),           tick_fn<T>(),     stats_fn<T>(),
};

template <class T, const char* const* Name>
inline constexpr chihaya_storage_vtable storage_vtable = {
    sizeof(chihaya_storage_vtable), &create<T, Name>, &destroy<T>, subscribe_fn<T>(), apply_fn<T>(),
    health_fn<T>(),
};

constexpr const char* checked_name(const char* name) {
    if (!valid_name(name)) invalid_driver_name();  // want [a-z0-9_-]{1,64}
    return name;
}

}  // namespace detail

// Descriptors for CHIHAYA_PLUGIN. `Name` is a pointer to a static string so that the
// trampolines can attribute log lines to the driver without any state set at load time.
template <class T, const char* const* Name>
constexpr chihaya_driver_descriptor cache_driver() {
    return {sizeof(chihaya_driver_descriptor), CHIHAYA_KIND_CACHE, detail::checked_name(*Name),
            detail::config_key_count<T>(), detail::driver_flags<T>(), detail::config_keys<T>(),
            &detail::cache_vtable<T, Name>};
}

template <class T, const char* const* Name>
constexpr chihaya_driver_descriptor storage_driver() {
    return {sizeof(chihaya_driver_descriptor), CHIHAYA_KIND_STORAGE, detail::checked_name(*Name),
            detail::config_key_count<T>(), detail::driver_flags<T>(), detail::config_keys<T>(),
            &detail::storage_vtable<T, Name>};
}

}  // namespace chihaya

#define CHIHAYA_EXPORT __attribute__((visibility("default")))

// Without a version from the build, the registration lines name the fix in the compile error.
#ifndef CHIHAYA_PLUGIN_VERSION
#define CHIHAYA_PLUGIN_VERSION chihaya_plugin_version_undefined_pass_DCHIHAYA_PLUGIN_VERSION
#endif

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
            CHIHAYA_MIN_HOST_MINOR,                                                             \
            sizeof(drivers) / sizeof(drivers[0]),                                               \
            plugin_name,                                                                        \
            plugin_version,                                                                     \
            drivers};                                                                           \
        return &descriptor;                                                                     \
    }

// Declares a driver name usable as the second template argument of cache_driver/storage_driver.
#define CHIHAYA_DRIVER_NAME(ident, text) \
    namespace { constexpr const char ident##_text[] = text; constexpr const char* ident = ident##_text; }

// One-driver plugins: the Go-style "Register(name, driver)" line. The plugin is named after its
// driver and versioned with CHIHAYA_PLUGIN_VERSION.
#define CHIHAYA_REGISTER_CACHE(name, Class)                                            \
    CHIHAYA_DRIVER_NAME(chihaya_cache_driver_name_, name)                              \
    CHIHAYA_PLUGIN(name, CHIHAYA_PLUGIN_VERSION,                                       \
                   chihaya::cache_driver<Class, &chihaya_cache_driver_name_>())

#define CHIHAYA_REGISTER_STORAGE(name, Class)                                          \
    CHIHAYA_DRIVER_NAME(chihaya_storage_driver_name_, name)                            \
    CHIHAYA_PLUGIN(name, CHIHAYA_PLUGIN_VERSION,                                       \
                   chihaya::storage_driver<Class, &chihaya_storage_driver_name_>())

#endif  // CHIHAYA_DRIVER_HPP
