// Where a private tracker's passkey sits in an announce URL, for every frontend: the first path
// segment of "/<passkey>/announce" (HTTP's request target, UDP's BEP 41 URL data).
#pragma once

#include <string_view>

namespace chihaya {

// The passkey in `path` ("/<passkey>" + endpoint, endpoint e.g. "/announce"), or empty when the
// path has no such segment. The query string must already be cut off.
constexpr std::string_view passkey_from_path(std::string_view path, std::string_view endpoint) {
    if (path.size() < endpoint.size() + 3 || path.front() != '/' || !path.ends_with(endpoint)) return {};
    std::string_view rest = path.substr(1, path.size() - 1 - endpoint.size());
    if (rest.size() < 2 || rest.back() != '/') return {};
    rest.remove_suffix(1);
    if (rest.find('/') != std::string_view::npos) return {};
    return rest;
}

}  // namespace chihaya
