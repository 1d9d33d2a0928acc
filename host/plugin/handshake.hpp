// The version handshake: what the host checks in a plugin's descriptor before any other call, and
// the host-side copy of the descriptor that the rest of the host reads.
#pragma once

#include <chihaya/abi.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace chihaya {

// A plugin's descriptor as this host reads it: every struct copied into the host's own layout.
// Members the plugin's (older) struct does not cover are zero or NULL, members its (newer)
// struct adds are dropped, and every array has the host's stride. After the handshake nothing
// in the host reads a plugin struct directly, so no other file needs to think about sizes.
struct PluginTables {
    chihaya_plugin_descriptor plugin{};
    std::vector<chihaya_driver_descriptor> drivers;
    std::deque<std::vector<chihaya_config_key>> keys;  // deque: the descriptors point into it
    std::deque<chihaya_cache_vtable> caches;
    std::deque<chihaya_storage_vtable> storages;
};

// Checks the descriptor and copies it. On refusal returns null and sets `why` in words for the
// log (the caller prefixes the file): magic, ABI major, the minor the plugin needs, struct sizes,
// driver names and kinds, function tables and declared config keys.
std::shared_ptr<const PluginTables> handshake(const chihaya_plugin_descriptor* descriptor,
                                              std::string& why);

// Element i of a host-layout array (see PluginTables).
inline const chihaya_driver_descriptor& driver_at(const chihaya_plugin_descriptor* p, uint32_t i) {
    return *CHIHAYA_AT(const chihaya_driver_descriptor, p->drivers, i);
}
inline const chihaya_config_key& config_key_at(const chihaya_driver_descriptor& d, uint32_t i) {
    return *CHIHAYA_AT(const chihaya_config_key, d.config_keys, i);
}

// "2.1": the ABI this host speaks.
std::string host_abi_version();

}  // namespace chihaya
