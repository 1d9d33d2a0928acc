// Logging: secrets registered with add_secret never reach a line; JSON lines are one object.
#include "log/log.hpp"

#include <doctest/doctest.h>

#include <iostream>
#include <sstream>
#include <string>

using namespace chihaya;

namespace {
// Poco's ConsoleChannel writes to std::clog: capture it for one call.
std::string logged(log::Format format, std::string_view message) {
    std::ostringstream out;
    auto* previous = std::clog.rdbuf(out.rdbuf());
    log::init(log::Level::Debug, format);
    log::info("test", message);
    std::clog.rdbuf(previous);
    return out.str();
}
}  // namespace

TEST_CASE("registered secrets are redacted from every line") {
    CHECK(logged(log::Format::Text, "connect with hunter2-secret now").find("hunter2-secret") != std::string::npos);
    log::add_secret("hunter2-secret");
    const std::string line = logged(log::Format::Text, "connect with hunter2-secret now");
    CHECK(line.find("hunter2-secret") == std::string::npos);
    CHECK(line.find("connect with [redacted] now") != std::string::npos);
    log::add_secret("abc");  // too short to redact safely: ignored
    CHECK(logged(log::Format::Text, "abc").find("abc") != std::string::npos);
}

TEST_CASE("json lines escape the message") {
    const std::string line = logged(log::Format::Json, "a \"quoted\"\nline");
    CHECK(line.find("\"source\":\"test\",\"message\":\"a \\\"quoted\\\"\\nline\"}") != std::string::npos);
    CHECK(line.find("\"level\":\"info\"") != std::string::npos);
}
