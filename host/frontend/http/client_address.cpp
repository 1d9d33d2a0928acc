// Which address an HTTP client is: the real-IP header a trusted proxy sends.
#include "frontend/http/client_address.hpp"

namespace chihaya::http {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

bool last_forwarded_address(std::string_view header_value, Endpoint& out) {
    const size_t comma = header_value.rfind(',');
    std::string_view last = comma == std::string_view::npos ? header_value : header_value.substr(comma + 1);
    return parse_address(trim(last), out);
}

}  // namespace chihaya::http
