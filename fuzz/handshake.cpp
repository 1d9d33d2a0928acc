// Fuzz target: the plugin handshake over descriptors whose sizes, strides, counts, kinds, names,
// defaults and function tables come from the input. Every struct is allocated with exactly the
// bytes its struct_size declares (at least the 16-byte prefix every major shares), so a read past
// what a plugin wrote is an ASan report; function pointers abort if the handshake ever calls one.
#include "plugin/handshake.hpp"

#include <chihaya/abi.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

using namespace chihaya;

namespace {

// Reads the input front to back; past its end, zeros.
struct Input {
    const uint8_t* data;
    size_t size;
    uint8_t byte() { return size ? (--size, *data++) : 0; }
    uint32_t u32() { return uint32_t(byte()) | uint32_t(byte()) << 8 | uint32_t(byte()) << 16 | uint32_t(byte()) << 24; }
    // A struct size near the host's: smaller (an older plugin), equal, larger (a newer one), or raw.
    uint32_t size_near(uint32_t host) {
        switch (byte() % 5) {
            case 0: return host;
            case 1: return host > 8 ? host - 8 : host;
            case 2: return host + 8 * (1 + byte() % 4);
            case 3: return byte();
            default: return host > 24 ? host - 24 : 0;
        }
    }
    // A NUL-terminated string (plugins promise termination) or null.
    const char* text(std::deque<std::string>& keep) {
        const uint8_t n = byte();
        if (n == 255) return nullptr;
        std::string s;
        for (uint8_t i = 0; i < n % 24; ++i) s.push_back(char(byte()));
        return keep.emplace_back(std::move(s)).c_str();
    }
};

[[noreturn]] void never() { std::abort(); }
chihaya_instance* create(const chihaya_host_api*, const chihaya_config*, char*, size_t) { never(); }
void destroy(chihaya_instance*) { never(); }
void announce(chihaya_instance*, const chihaya_announce_request*, chihaya_announce_result*,
              const chihaya_completion*) { never(); }
void scrape(chihaya_instance*, chihaya_scrape_request*, const chihaya_completion*) { never(); }
chihaya_status subscribe(chihaya_instance*, const chihaya_registry_sink*, char*, size_t) { never(); }
void apply(chihaya_instance*, chihaya_delta_batch*, const chihaya_completion*) { never(); }

// Exactly `size` bytes (at least `floor`), holding the prefix of `full` that fits.
template <class T>
void* exact(std::vector<std::unique_ptr<char[]>>& blocks, const T& full, uint32_t size, uint32_t floor = 4) {
    const size_t n = std::max(size, floor);
    blocks.emplace_back(new char[n]());
    std::memcpy(blocks.back().get(), &full, std::min(n, sizeof(T)));
    return blocks.back().get();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in{data, size};
    std::vector<std::unique_ptr<char[]>> blocks;
    std::deque<std::string> strings;

    chihaya_plugin_descriptor plugin{};
    plugin.magic = in.byte() % 8 ? CHIHAYA_PLUGIN_MAGIC : in.u32();
    plugin.abi_major = in.byte() % 8 ? CHIHAYA_ABI_MAJOR : in.byte();
    plugin.abi_minor = in.byte() % 4;
    plugin.struct_size = in.size_near(sizeof plugin);
    plugin.min_host_minor = in.byte() % 4;
    plugin.driver_count = in.byte() % 4;
    plugin.name = in.text(strings);
    plugin.version = in.text(strings);

    const uint32_t driver_stride = std::max<uint32_t>(in.size_near(sizeof(chihaya_driver_descriptor)), 4);
    if (plugin.driver_count > 0 && in.byte() % 16) {
        blocks.emplace_back(new char[size_t(driver_stride) * plugin.driver_count]());
        char* drivers = blocks.back().get();
        for (uint32_t i = 0; i < plugin.driver_count; ++i) {
            chihaya_driver_descriptor d{};
            d.struct_size = driver_stride;
            d.kind = in.byte() % 4;
            d.name = in.byte() % 4 ? (i % 2 ? "cache_x" : "store-1") : in.text(strings);
            d.config_key_count = in.byte() % 4;
            const uint32_t key_stride = std::max<uint32_t>(in.size_near(sizeof(chihaya_config_key)), 4);
            if (d.config_key_count > 0 && in.byte() % 16) {
                blocks.emplace_back(new char[size_t(key_stride) * d.config_key_count]());
                char* keys = blocks.back().get();
                for (uint32_t k = 0; k < d.config_key_count; ++k) {
                    chihaya_config_key key{};
                    key.struct_size = key_stride;
                    key.type = in.byte() % 5;
                    key.key = in.byte() % 4 ? "some_key" : in.text(strings);
                    static const char* defaults[] = {"1", "true", "\"x\"", "", "\"", "99999999999999999999", "-5"};
                    key.default_value = in.byte() % 2 ? defaults[in.byte() % 7] : in.text(strings);
                    key.min = int64_t(int32_t(in.u32()));
                    key.max = int64_t(int32_t(in.u32()));
                    key.doc = in.text(strings);
                    key.flags = in.byte();
                    std::memcpy(keys + size_t(k) * key_stride, &key, std::min<size_t>(key_stride, sizeof key));
                }
                d.config_keys = reinterpret_cast<const chihaya_config_key*>(keys);
            }
            if (in.byte() % 8) {
                if (d.kind == CHIHAYA_KIND_STORAGE) {
                    chihaya_storage_vtable v{};
                    v.struct_size = in.size_near(sizeof v);
                    const uint8_t present = in.byte();
                    v.create = present & 1 ? create : nullptr;
                    v.destroy = present & 2 ? destroy : nullptr;
                    v.subscribe = present & 4 ? subscribe : nullptr;
                    v.apply = present & 8 ? apply : nullptr;
                    d.vtable = exact(blocks, v, v.struct_size);
                } else {
                    chihaya_cache_vtable v{};
                    v.struct_size = in.size_near(sizeof v);
                    const uint8_t present = in.byte();
                    v.create = present & 1 ? create : nullptr;
                    v.destroy = present & 2 ? destroy : nullptr;
                    v.announce = present & 4 ? announce : nullptr;
                    v.scrape = present & 8 ? scrape : nullptr;
                    d.vtable = exact(blocks, v, v.struct_size);
                }
            }
            std::memcpy(drivers + size_t(i) * driver_stride, &d, std::min<size_t>(driver_stride, sizeof d));
        }
        plugin.drivers = reinterpret_cast<const chihaya_driver_descriptor*>(drivers);
    }
    const auto* descriptor = static_cast<const chihaya_plugin_descriptor*>(exact(blocks, plugin, plugin.struct_size, 16));

    std::string why;
    auto tables = handshake(descriptor, why);
    if (!tables) {
        if (why.empty()) std::abort();  // every refusal says why
        return 0;
    }
    // An accepted plugin is whole in the host's layout: named drivers of a known kind, each with
    // its mandatory functions, and keys with names and defaults.
    if (tables->drivers.size() != plugin.driver_count) std::abort();
    for (uint32_t i = 0; i < tables->plugin.driver_count; ++i) {
        const chihaya_driver_descriptor& d = driver_at(&tables->plugin, i);
        if (d.struct_size != sizeof d || !d.name || !d.vtable) std::abort();
        if (d.kind == CHIHAYA_KIND_CACHE) {
            const auto* v = static_cast<const chihaya_cache_vtable*>(d.vtable);
            if (!v->create || !v->destroy || !v->announce || !v->scrape) std::abort();
        } else if (d.kind == CHIHAYA_KIND_STORAGE) {
            const auto* v = static_cast<const chihaya_storage_vtable*>(d.vtable);
            if (!v->create || !v->destroy) std::abort();
        } else {
            std::abort();
        }
        for (uint32_t k = 0; k < d.config_key_count; ++k) {
            const chihaya_config_key& key = config_key_at(d, k);
            if (!key.key || !key.default_value) std::abort();
        }
    }
    return 0;
}
