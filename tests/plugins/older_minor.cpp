// A plugin built for ABI 2.1: its cache table ends where 2.2 appended `stats`. What lies in the
// plugin's memory past the end of its table (here a trap where a 2.2 table would hold stats) is
// not part of it: the host must read the member as NULL, never call it, and count through
// scrape_all as it did for 2.1.
#include <chihaya/abi.h>

#include <cstddef>

namespace {

int instance_tag;

chihaya_instance* create(const chihaya_host_api*, const chihaya_config*, char*, size_t) {
    return reinterpret_cast<chihaya_instance*>(&instance_tag);
}
void destroy(chihaya_instance*) {}
void announce(chihaya_instance*, const chihaya_announce_request*, chihaya_announce_result*,
              const chihaya_completion* c) {
    c->done(c->ctx, CHIHAYA_OK);
}
void scrape(chihaya_instance*, chihaya_scrape_request*, const chihaya_completion* c) { c->done(c->ctx, CHIHAYA_OK); }
chihaya_status trap(chihaya_instance*, chihaya_cache_stats*) { __builtin_trap(); }

// The 2.1 size, with the bytes after it holding a non-null pointer.
const chihaya_cache_vtable table = {offsetof(chihaya_cache_vtable, stats), &create, &destroy, &announce,
                                    &scrape, nullptr, nullptr, &trap};
const chihaya_driver_descriptor drivers[] = {
    {sizeof(chihaya_driver_descriptor), CHIHAYA_KIND_CACHE, "past", 0, 0, nullptr, &table},
};
const chihaya_plugin_descriptor descriptor = {CHIHAYA_PLUGIN_MAGIC, CHIHAYA_ABI_MAJOR, 1,
                                              sizeof(chihaya_plugin_descriptor), 0, 1, "past",
                                              "2.1.0", drivers};

}  // namespace

extern "C" __attribute__((visibility("default"))) const chihaya_plugin_descriptor*
chihaya_plugin_entry(const chihaya_host_api*) {
    return &descriptor;
}
