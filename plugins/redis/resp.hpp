// resp.hpp: writes Redis commands in RESP (the wire format) straight into a reusable string.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace chihaya::redis::resp {

// "*<n>\r\n": the start of a command of n arguments.
inline void array(std::string& out, size_t n) {
    char buf[24];
    auto end = std::to_chars(buf, buf + sizeof buf, n).ptr;
    out += '*';
    out.append(buf, end);
    out += "\r\n";
}

// "$<len>\r\n<bytes>\r\n": one argument; binary-safe.
inline void bulk(std::string& out, std::string_view s) {
    char buf[24];
    auto end = std::to_chars(buf, buf + sizeof buf, s.size()).ptr;
    out += '$';
    out.append(buf, end);
    out += "\r\n";
    out.append(s);
    out += "\r\n";
}

inline void bulk(std::string& out, uint64_t v) {
    char buf[24];
    auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
    bulk(out, std::string_view(buf, size_t(end - buf)));
}

}  // namespace chihaya::redis::resp
