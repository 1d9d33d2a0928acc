// Secret driver config values into the log's redaction list (log::add_secret).
#include "plugin/secrets.hpp"

#include "log/log.hpp"

#include <cstring>

namespace chihaya {

void register_driver_secrets(const RegisteredDriver& driver, const DriverSelection& selection) {
    auto table = selection.tables.find(selection.driver);
    if (table == selection.tables.end()) return;
    const chihaya_driver_descriptor& d = *driver.descriptor;
    for (uint32_t i = 0; i < d.config_key_count; ++i) {
        const chihaya_config_key& key = *CHIHAYA_AT(const chihaya_config_key, d.config_keys, i);
        if (!CHIHAYA_HAS_MEMBER(&key, chihaya_config_key, flags) || !(key.flags & CHIHAYA_CONFIG_SECRET)) continue;
        auto value = table->second.find(key.key);
        if (value != table->second.end() && value->second.type == DriverTableValue::Type::String) {
            log::add_secret(value->second.string);
            // A connection string also carries its password alone ("password=..."): redact that too.
            const std::string& s = value->second.string;
            for (const char* marker : {"password=", "PASSWORD="}) {
                size_t at = s.find(marker);
                if (at == std::string::npos) continue;
                at += std::strlen(marker);
                log::add_secret(s.substr(at, s.find_first_of(" ;&", at) - at));
            }
        }
    }
}

}  // namespace chihaya
