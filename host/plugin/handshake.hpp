// The version handshake: what the host checks in a plugin's descriptor before any other call.
#pragma once

#include <chihaya/abi.h>

#include <string>

namespace chihaya {

// Empty when the descriptor is acceptable; otherwise why it is refused, in words for the log
// (the caller prefixes the file). Checks magic, ABI major, struct sizes, driver names and kinds,
// function tables and declared config keys.
std::string check_plugin(const chihaya_plugin_descriptor* descriptor);

// Arrays in a descriptor are walked with the stride the plugin was built with, so a plugin of a
// newer minor (larger, appended structs) still reads right. check_plugin verifies the strides.
inline const chihaya_driver_descriptor& driver_at(const chihaya_plugin_descriptor* p, uint32_t i) {
    auto base = reinterpret_cast<const char*>(p->drivers);
    return *reinterpret_cast<const chihaya_driver_descriptor*>(base + size_t(i) * p->drivers[0].struct_size);
}
inline const chihaya_config_key& config_key_at(const chihaya_driver_descriptor& d, uint32_t i) {
    auto base = reinterpret_cast<const char*>(d.config_keys);
    return *reinterpret_cast<const chihaya_config_key*>(base + size_t(i) * d.config_keys[0].struct_size);
}

// "1.0": the ABI this host speaks.
std::string host_abi_version();

}  // namespace chihaya
