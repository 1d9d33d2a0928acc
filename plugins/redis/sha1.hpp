// sha1.hpp: SHA-1 of the Lua scripts, so EVALSHA needs no SCRIPT LOAD round trip to learn it.
#pragma once

#include <string>
#include <string_view>

namespace chihaya::redis {

// Lower-case hex digest (40 characters), as Redis names scripts.
std::string sha1_hex(std::string_view data);

}  // namespace chihaya::redis
