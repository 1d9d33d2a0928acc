// A plugin from a future minor of this major (2.9): every struct it hands over has grown by an
// appended member, so its arrays have a larger stride than the host's. It needs nothing the host
// lacks (min_host_minor 0), so a 2.1 host must load it, read its two drivers and their keys with
// the plugin's stride, and never touch the members it does not know.
#include <chihaya/abi.h>

#include <cstring>

namespace {

struct FutureKey {
    chihaya_config_key base;
    uint64_t added_in_2_9;
};
struct FutureCacheTable {
    chihaya_cache_vtable base;
    void (*added_in_2_9)(void);
};
struct FutureDriver {
    chihaya_driver_descriptor base;
    uint64_t added_in_2_9;
};
struct FuturePlugin {
    chihaya_plugin_descriptor base;
    uint64_t added_in_2_9;
};

int instance_tag;

chihaya_instance* create(const chihaya_host_api*, const chihaya_config* config, char* error, size_t cap) {
    // The one key must arrive as declared, whatever stride the host uses for values.
    if (config->count != 1 || std::strcmp(CHIHAYA_AT(const chihaya_config_value, config->values, 0)->key, "answer") != 0) {
        std::strncpy(error, "config not as declared", cap - 1);
        return nullptr;
    }
    return reinterpret_cast<chihaya_instance*>(&instance_tag + CHIHAYA_AT(const chihaya_config_value, config->values, 0)->integer * 0);
}
void destroy(chihaya_instance*) {}
void announce(chihaya_instance*, const chihaya_announce_request* request, chihaya_announce_result* r,
              const chihaya_completion* c) {
    r->complete = 29;
    r->incomplete = request->port;
    c->done(c->ctx, CHIHAYA_OK);
}
void scrape(chihaya_instance*, chihaya_scrape_request*, const chihaya_completion* c) { c->done(c->ctx, CHIHAYA_OK); }
void never(void) { __builtin_trap(); }  // a host that called an unknown member would crash here

const FutureKey keys[] = {
    {{sizeof(FutureKey), CHIHAYA_CONFIG_INT, "answer", "42", 0, 100, "a key read with the plugin's stride", 0, 0}, 0xfeed},
};
const FutureCacheTable table = {
    {sizeof(FutureCacheTable), &create, &destroy, &announce, &scrape, nullptr, nullptr, nullptr}, &never};
const FutureDriver drivers[] = {
    {{sizeof(FutureDriver), CHIHAYA_KIND_CACHE, "future_a", 1, 0, &keys[0].base, &table.base}, 0xfeed},
    {{sizeof(FutureDriver), CHIHAYA_KIND_CACHE, "future_b", 1, 0, &keys[0].base, &table.base}, 0xfeed},
};
const FuturePlugin descriptor = {
    {CHIHAYA_PLUGIN_MAGIC, CHIHAYA_ABI_MAJOR, 9, sizeof(FuturePlugin), 0, 2, "future", "2.9.0",
     &drivers[0].base},
    0xfeed};

}  // namespace

extern "C" __attribute__((visibility("default"))) const chihaya_plugin_descriptor*
chihaya_plugin_entry(const chihaya_host_api*) {
    return &descriptor.base;
}
