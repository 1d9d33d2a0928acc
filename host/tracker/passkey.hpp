// Where a private tracker's passkey sits in an announce URL, for every frontend: the first path
// segment of "/<passkey>/announce" (HTTP's request target, UDP's BEP 41 URL data).
#pragma once

#include <string_view>

namespace chihaya {

// The passkey in `path` ("/<passkey>" + endpoint, endpoint e.g. "/announce"), or empty when the
// path has no such segment. The query string must already be cut off.
constexpr std::string_view passkey_from_path(std::string_view path, std::string_view endpoint) {
    // "/" passkey endpoint, where the endpoint brings its own leading '/'.
    if (path.size() < endpoint.size() + 2 || path.front() != '/' || !path.ends_with(endpoint)) return {};
    const std::string_view passkey = path.substr(1, path.size() - 1 - endpoint.size());
    if (passkey.find('/') != std::string_view::npos) return {};
    return passkey;
}

static_assert(passkey_from_path("/abc/announce", "/announce") == "abc");
static_assert(passkey_from_path("/announce", "/announce").empty());
static_assert(passkey_from_path("//announce", "/announce").empty());
static_assert(passkey_from_path("/a/b/announce", "/announce").empty());
static_assert(passkey_from_path("/abcannounce", "/announce").empty());

}  // namespace chihaya
