// Secret driver config values (CHIHAYA_CONFIG_SECRET keys) into the log's redaction list.
#pragma once

#include "plugin/registry.hpp"

namespace chihaya {

// Every string value in the selected driver's table whose key the driver declares secret, and
// any value that looks like a connection string with a password ("password=", "://user:pass@"),
// is handed to log::add_secret, so that no log line ever carries it.
void register_driver_secrets(const RegisteredDriver& driver, const DriverSelection& selection);

}  // namespace chihaya
