// Which address an HTTP client is: the real-IP header a trusted proxy sends.
#pragma once

#include "net/address.hpp"

#include <string_view>

namespace chihaya::http {

// The client a proxy vouches for: the last element of a comma-separated header such as
// X-Forwarded-For (earlier ones were written by whoever the client is, so they prove nothing).
// False when the header is empty or its last element is not a numeric address.
bool last_forwarded_address(std::string_view header_value, Endpoint& out);

}  // namespace chihaya::http
