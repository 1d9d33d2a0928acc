// The command line: each option, both spellings of a value, and usage errors.
#include "cli/options.hpp"

#include <doctest/doctest.h>

#include <sstream>
#include <vector>

using namespace chihaya;

namespace {

struct Parsed {
    int code;
    Options options;
    std::string out;
    std::string err;
};

Parsed parse(std::vector<const char*> args) {
    args.insert(args.begin(), "chihaya");
    Parsed p;
    std::ostringstream out, err;
    p.code = parse_options(int(args.size()), args.data(), p.options, out, err);
    p.out = out.str();
    p.err = err.str();
    return p;
}

}  // namespace

TEST_CASE("no arguments: run with the configuration found in the usual places") {
    Parsed p = parse({});
    CHECK(p.code == -1);
    CHECK(p.options.config.empty());
    CHECK_FALSE(p.options.check_only);
}

TEST_CASE("--config takes a path as the next argument or after =") {
    CHECK(parse({"--config", "/etc/x.toml"}).options.config == "/etc/x.toml");
    CHECK(parse({"--config=/etc/y.toml"}).options.config == "/etc/y.toml");
    CHECK(parse({"-c", "z.toml"}).options.config == "z.toml");
    CHECK(parse({"--config", "a.toml"}).code == -1);
}

TEST_CASE("--check-config validates only") {
    Parsed p = parse({"--check-config", "c.toml"});
    CHECK(p.code == -1);
    CHECK(p.options.check_only);
    CHECK(p.options.config == "c.toml");
}

TEST_CASE("--help and --version print and exit 0") {
    Parsed help = parse({"--help"});
    CHECK(help.code == 0);
    CHECK(help.out.find("--check-config PATH") != std::string::npos);
    Parsed version = parse({"-v"});
    CHECK(version.code == 0);
    CHECK(version.out.find("chihaya " CHIHAYA_VERSION " (plugin ABI 2.") == 0);
}

TEST_CASE("usage errors exit 2 and say what is wrong") {
    Parsed missing = parse({"--config"});
    CHECK(missing.code == 2);
    CHECK(missing.err.find("--config needs a PATH") != std::string::npos);
    Parsed unknown = parse({"--frobnicate"});
    CHECK(unknown.code == 2);
    CHECK(unknown.err.find("unknown option --frobnicate") != std::string::npos);
    CHECK(parse({"--list-drivers=x"}).code == 2);
    CHECK(parse({"--list-drivers"}).options.list_drivers);
}

TEST_CASE("--list-plugins, and --connect only with --check-config") {
    CHECK(parse({"--list-plugins"}).options.list_plugins);
    CHECK(parse({"--list-plugins=x"}).code == 2);
    Parsed p = parse({"--check-config", "x.toml", "--connect"});
    CHECK(p.code == -1);
    CHECK(p.options.connect);
    CHECK(p.options.check_only);
    p = parse({"--connect", "--config", "x.toml"});
    CHECK(p.code == 2);
    CHECK(p.err.find("--connect goes with --check-config") != std::string::npos);
}
