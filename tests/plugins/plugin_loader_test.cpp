// The plugin boundary from the host's side: handshake refusals, registry rules, config checks.
#include "config/config.hpp"
#include "plugin/loader.hpp"
#include "plugin/registry.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

using namespace chihaya;

namespace {

const std::string dir = CHIHAYA_TEST_PLUGIN_DIR;

std::string refusal(const std::string& file) {
    std::string why;
    auto plugin = load_plugin(dir + "/" + file, host_api(), why);
    CHECK(plugin == nullptr);
    return why;
}

LoadedPlugin load(const std::string& file) {
    std::string why;
    auto plugin = load_plugin(dir + "/" + file, host_api(), why);
    REQUIRE_MESSAGE(plugin != nullptr, why);
    return *plugin;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

void record(void* ctx, chihaya_status status);

struct Outcome {
    int calls = 0;
    chihaya_status status = CHIHAYA_OK;
    chihaya_completion completion{sizeof(chihaya_completion), 0, &record, this};
};

void record(void* ctx, chihaya_status status) {
    auto* o = static_cast<Outcome*>(ctx);
    ++o->calls;
    o->status = status;
}

chihaya_announce_result announce(const DriverInstance& driver, Outcome& outcome) {
    chihaya_announce_request request{};
    request.struct_size = sizeof request;
    chihaya_announce_result result{};
    result.struct_size = sizeof result;
    static_cast<const chihaya_cache_vtable*>(driver.vtable())
        ->announce(driver.get(), &request, &result, &outcome.completion);
    return result;
}

std::string config_error(const Registry& registry, const std::string& toml) {
    Config config = parse_config(toml, "test.toml");
    try {
        registry.check_selection(CHIHAYA_KIND_CACHE, config.cache, config.source);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("handshake refusals name the reason") {
    CHECK(contains(refusal("wrong_major.so"), "ABI 99.3"));
    CHECK(contains(refusal("wrong_major.so"), "this host speaks ABI 2."));
    CHECK(contains(refusal("bad_magic.so"), "not a chihaya plugin"));
    CHECK(contains(refusal("no_entry.so"), "no entry symbol chihaya_plugin_entry"));
    CHECK(contains(refusal("no_drivers.so"), "registers no driver"));
    CHECK(contains(refusal("missing_symbol.so"), "chihaya_test_symbol_that_does_not_exist"));
    CHECK(contains(refusal("does_not_exist.so"), "does_not_exist.so"));
}

TEST_CASE("a plugin of a newer minor loads when it needs nothing the host lacks") {
    LoadedPlugin plugin = load("newer_minor.so");
    CHECK(plugin.descriptor->abi_minor == 9);
    REQUIRE(plugin.descriptor->driver_count == 2);
    // Read with the plugin's (larger) stride: both names and the key come out intact.
    CHECK(std::string(driver_at(plugin.descriptor, 0).name) == "future_a");
    CHECK(std::string(driver_at(plugin.descriptor, 1).name) == "future_b");
    const chihaya_config_key& key = config_key_at(driver_at(plugin.descriptor, 1), 0);
    CHECK(std::string(key.key) == "answer");
    CHECK(std::string(key.default_value) == "42");

    Registry registry;
    registry.add(plugin);
    Config config = parse_config("[cache]\ndriver = \"future_b\"\n", "t.toml");
    DriverInstance driver = registry.create(CHIHAYA_KIND_CACHE, config.cache, config.source, host_api());
    Outcome outcome;
    chihaya_announce_result result = announce(driver, outcome);
    CHECK(outcome.calls == 1);
    CHECK(result.complete == 29);
    // The host's copy of the table has the host's size: the 2.9 member is not reachable.
    CHECK(static_cast<const chihaya_cache_vtable*>(driver.vtable())->struct_size == sizeof(chihaya_cache_vtable));
}

TEST_CASE("a plugin of an older minor has no member it did not have: stats read as NULL") {
    LoadedPlugin plugin = load("older_minor.so");
    CHECK(plugin.descriptor->abi_minor == 1);
    Registry registry;
    registry.add(plugin);
    Config config = parse_config("[cache]\ndriver = \"past\"\n", "t.toml");
    DriverInstance driver = registry.create(CHIHAYA_KIND_CACHE, config.cache, config.source, host_api());
    auto* v = static_cast<const chihaya_cache_vtable*>(driver.vtable());
    // Past the plugin's 2.1 table lies a pointer to a trap: the host's copy must not hold it.
    CHECK((v->stats == nullptr));
    CHECK(v->struct_size == sizeof(chihaya_cache_vtable));
    Outcome outcome;
    announce(driver, outcome);
    CHECK(outcome.calls == 1);
}

TEST_CASE("a plugin that needs a newer host minor is refused, naming both versions") {
    std::string why = refusal("needs_newer_host.so");
    CHECK(contains(why, "needs a host of ABI 2.9 or newer"));
    CHECK(contains(why, "this host speaks ABI 2." + std::to_string(CHIHAYA_ABI_MINOR)));
}

TEST_CASE("a directory scan keeps the good plugins and skips the broken ones") {
    // test-plugins/ holds plugins that abort, exit and hang while loading: had any of them been
    // loaded into this process, the test would have died or never ended.
    const auto timeout = std::chrono::milliseconds(1500);
    std::vector<PluginFile> plugins = load_plugins(dir, host_api(), LoadFilter::everything(), timeout);
    std::vector<std::string> names;
    for (const auto& p : plugins) {
        CHECK(p.state == PluginFile::State::Loaded);
        names.push_back(p.plugin->descriptor->name);
    }
    CHECK(names == std::vector<std::string>{"double_done", "dup", "dup", "good", "future", "past",
                                            "silent", "slow", "throwing"});
    CHECK_THROWS(load_plugins(dir + "/nowhere", host_api()));
}

TEST_CASE("a plugin that crashes, exits or hangs while loading is refused by its probe, naming why") {
    ProbeResult crash = probe_plugin(dir + "/crash_on_load.so", host_api());
    CHECK(crash.state == ProbeResult::State::Refused);
    CHECK(contains(crash.why, "crashed while loading (signal " + std::to_string(SIGABRT)));
    ProbeResult exits = probe_plugin(dir + "/exit_on_load.so", host_api());
    CHECK(exits.state == ProbeResult::State::Refused);
    CHECK(contains(exits.why, "exited with status 7 while loading"));
    ProbeResult hangs = probe_plugin(dir + "/hang_on_load.so", host_api(), std::chrono::milliseconds(300));
    CHECK(hangs.state == ProbeResult::State::Refused);
    CHECK(contains(hangs.why, "did not finish loading within 300 ms"));
    // Its pipe closed (end of file) but the child still running: the deadline holds all the same.
    ProbeResult closes = probe_plugin(dir + "/close_and_hang.so", host_api(), std::chrono::milliseconds(300));
    CHECK(closes.state == ProbeResult::State::Refused);
    CHECK(contains(closes.why, "did not finish loading within 300 ms"));
    // The loader's own refusals come back from the child word for word.
    ProbeResult major = probe_plugin(dir + "/wrong_major.so", host_api());
    CHECK(major.state == ProbeResult::State::Refused);
    CHECK(major.why == refusal("wrong_major.so"));
}

TEST_CASE("a probe reports the plugin's name, version and every driver it registers") {
    ProbeResult future = probe_plugin(dir + "/newer_minor.so", host_api());
    REQUIRE(future.state == ProbeResult::State::Loaded);
    CHECK(future.name == load("newer_minor.so").descriptor->name);
    CHECK(future.version == "2.9.0");
    REQUIRE(future.drivers.size() == 2);
    CHECK(future.drivers[0].kind == CHIHAYA_KIND_CACHE);
    CHECK(future.drivers[0].name == "future_a");
    CHECK(future.drivers[1].name == "future_b");
}

TEST_CASE("a driver name registered twice stops start-up, naming both files") {
    Registry registry;
    registry.add(load("duplicate_a.so"));
    try {
        registry.add(load("duplicate_b.so"));
        FAIL("duplicate accepted");
    } catch (const std::runtime_error& e) {
        std::string what = e.what();
        CHECK(contains(what, "\"dup\" is registered twice"));
        CHECK(contains(what, "duplicate_a.so"));
        CHECK(contains(what, "duplicate_b.so"));
    }
}

TEST_CASE("the selected driver gets its table with defaults filled in") {
    Registry registry;
    registry.add(load("good_cache.so"));

    Config config = parse_config("[cache]\ndriver = \"good\"\n[cache.good]\nsize = 16\nlabel = \"abc\"\nstrict = true\n", "t.toml");
    DriverInstance driver = registry.create(CHIHAYA_KIND_CACHE, config.cache, config.source, host_api());
    Outcome outcome;
    chihaya_announce_result result = announce(driver, outcome);
    CHECK(outcome.calls == 1);
    CHECK(result.complete == 16);
    CHECK(result.incomplete == 3);
    CHECK(result.downloaded == 1);

    Config defaults = parse_config("[cache]\ndriver = \"good\"\n", "t.toml");
    DriverInstance plain = registry.create(CHIHAYA_KIND_CACHE, defaults.cache, defaults.source, host_api());
    result = announce(plain, outcome);
    CHECK(result.complete == 8);
    CHECK(result.incomplete == 1);
    CHECK(result.downloaded == 0);
}

TEST_CASE("optional driver methods are in the table exactly when the class has them") {
    LoadedPlugin good = load("good_cache.so");
    auto* with = static_cast<const chihaya_cache_vtable*>(good.descriptor->drivers[0].vtable);
    CHECK((with->scrape_all != nullptr));
    CHECK((with->tick != nullptr));
    CHECK((with->stats != nullptr));
    LoadedPlugin throwing = load("throwing_cache.so");
    auto* without = static_cast<const chihaya_cache_vtable*>(throwing.descriptor->drivers[0].vtable);
    CHECK((without->scrape_all == nullptr));
    CHECK((without->tick == nullptr));
    CHECK((without->stats == nullptr));
    CHECK((without->announce != nullptr));
}

TEST_CASE("stats (2.2) fill the host's struct through the C++ layer, struct_size kept") {
    Registry registry;
    registry.add(load("good_cache.so"));
    Config config = parse_config("[cache]\ndriver = \"good\"\n[cache.good]\nsize = 13\n", "t.toml");
    DriverInstance driver = registry.create(CHIHAYA_KIND_CACHE, config.cache, config.source, host_api());
    chihaya_cache_stats stats{};
    stats.struct_size = sizeof stats;
    auto* v = static_cast<const chihaya_cache_vtable*>(driver.vtable());
    REQUIRE((v->stats != nullptr));
    CHECK(v->stats(driver.get(), &stats) == CHIHAYA_OK);
    CHECK(stats.torrents == 13);
    CHECK(stats.struct_size == sizeof stats);
}

TEST_CASE("driver selection and driver tables are checked with file, line and key") {
    Registry registry;
    registry.add(load("good_cache.so"));
    registry.add(load("throwing_cache.so"));

    std::string unknown = config_error(registry, "[cache]\ndriver = \"nosuch\"\n");
    CHECK(contains(unknown, "no cache driver named \"nosuch\""));
    CHECK(contains(unknown, "registered: good, throwing"));

    CHECK(contains(config_error(registry, "[cache]\ndriver = \"good\"\n[cache.good]\nbogus = 1\n"),
                   "test.toml:4: cache.good.bogus: unknown key (good accepts: size, label, strict)"));
    CHECK(contains(config_error(registry, "[cache]\ndriver = \"good\"\n[cache.good]\nsize = \"big\"\n"),
                   "test.toml:4: cache.good.size: expected an integer"));
    CHECK(contains(config_error(registry, "[cache]\ndriver = \"good\"\n[cache.good]\n\nsize = 65\n"),
                   "test.toml:5: cache.good.size: 65 is out of range [1, 64]"));
    CHECK(contains(config_error(registry, "[cache]\ndriver = \"good\"\n[cache.good]\nstrict = 1\n"),
                   "cache.good.strict: expected true or false"));
    CHECK(config_error(registry, "[cache]\ndriver = \"good\"\n[cache.good]\nsize = 64\n").empty());
}

TEST_CASE("exceptions inside a driver become status codes at the boundary") {
    Registry registry;
    registry.add(load("throwing_cache.so"));

    Config failing = parse_config("[cache]\ndriver = \"throwing\"\n[cache.throwing]\nfail_create = true\n", "t.toml");
    try {
        registry.create(CHIHAYA_KIND_CACHE, failing.cache, failing.source, host_api());
        FAIL("create should fail");
    } catch (const std::runtime_error& e) {
        CHECK(contains(e.what(), "\"throwing\""));
        CHECK(contains(e.what(), "cannot reach the store at 127.0.0.1:1"));
    }

    Config ok = parse_config("[cache]\ndriver = \"throwing\"\n", "t.toml");
    DriverInstance driver = registry.create(CHIHAYA_KIND_CACHE, ok.cache, ok.source, host_api());
    Outcome outcome;
    chihaya_announce_result result = announce(driver, outcome);
    CHECK(outcome.calls == 1);
    CHECK(outcome.status == CHIHAYA_INTERNAL);
    CHECK(std::string(result.message) == "announce exploded");

    chihaya_scrape_request scrape{};
    scrape.struct_size = sizeof scrape;
    Outcome scraped;
    static_cast<const chihaya_cache_vtable*>(driver.vtable())->scrape(driver.get(), &scrape, &scraped.completion);
    CHECK(scraped.calls == 1);
    CHECK(scraped.status == CHIHAYA_INTERNAL);
    CHECK(std::string(scrape.message) == "unknown exception");
}

// ---- plugins_dir safety (plugin/safety.hpp): each refusal, on real files in a temp dir ----------

namespace {

namespace fs = std::filesystem;

// A plugins_dir of its own: 0755, owned by the test's user, with good_cache.so at 0644.
struct SafeDir {
    std::string path;
    SafeDir() {
        char tmpl[] = "/tmp/chihaya-safety-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
        ::chmod(path.c_str(), 0755);
        fs::copy_file(dir + "/good_cache.so", path + "/good_cache.so");
        ::chmod((path + "/good_cache.so").c_str(), 0644);
    }
    ~SafeDir() { fs::remove_all(path); }
    std::string file(const std::string& name) const { return path + "/" + name; }
};

const PluginFile& entry(const std::vector<PluginFile>& files, const std::string& name) {
    for (const auto& f : files)
        if (fs::path(f.path).filename() == name) return f;
    FAIL("no entry " << name);
    throw 0;
}

// State and reason of one entry after a fresh scan.
struct Seen {
    PluginFile::State state;
    std::string why;
};
Seen scanned(const std::string& path, const std::string& name) {
    auto files = scan_plugins(path, host_api());
    const PluginFile& f = entry(files, name);
    return {f.state, f.why};
}

std::string scan_error(const std::string& path) {
    try {
        scan_plugins(path, host_api());
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("a safe plugins_dir loads its plugin; other files are listed as ignored") {
    SafeDir d;
    std::ofstream(d.file("README.txt")) << "notes";
    fs::create_directory(d.file("subdir"));
    auto files = scan_plugins(d.path, host_api());
    CHECK(entry(files, "good_cache.so").state == PluginFile::State::Loaded);
    CHECK(entry(files, "README.txt").state == PluginFile::State::Ignored);
    CHECK(files.size() == 2);  // a subdirectory is not listed
}

TEST_CASE("with a filter only the plugins of the selected drivers are loaded; the others are named") {
    SafeDir d;
    fs::copy_file(dir + "/older_minor.so", d.file("older_minor.so"));
    ::chmod(d.file("older_minor.so").c_str(), 0644);
    auto files = load_plugins(d.path, host_api(), LoadFilter::only({{CHIHAYA_KIND_CACHE, "past"}}));
    REQUIRE(files.size() == 2);
    const PluginFile& good = entry(files, "good_cache.so");
    CHECK(good.state == PluginFile::State::Probed);
    CHECK(good.plugin == nullptr);
    REQUIRE(good.probe.drivers.size() == 1);
    CHECK(good.probe.drivers[0].name == "good");
    CHECK(entry(files, "older_minor.so").state == PluginFile::State::Loaded);
    // Never mapped into this process: neither by the scan nor left behind by its child.
    std::ifstream maps("/proc/self/maps");
    std::string text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
    CHECK(!contains(text, d.file("good_cache.so")));
    CHECK(contains(text, d.file("older_minor.so")));

    Registry registry;
    for (const auto& f : files) registry.add(f);
    CHECK(registry.names(CHIHAYA_KIND_CACHE) == std::vector<std::string>{"good", "past"});
    CHECK(registry.find(CHIHAYA_KIND_CACHE, "good") == nullptr);
    CHECK(registry.find(CHIHAYA_KIND_CACHE, "past") != nullptr);
    CHECK(contains(config_error(registry, "[cache]\ndriver = \"good\"\n"),
                   "cache driver \"good\" is registered by " + d.file("good_cache.so") + ", which is not loaded"));
    CHECK(registry.describe().find("[cache.good]") == std::string::npos);
    // A probed plugin's names still catch a duplicate.
    CHECK_THROWS_WITH(registry.add(d.file("other.so"), {{CHIHAYA_KIND_CACHE, "good"}}),
                      doctest::Contains("\"good\" is registered twice"));
}

TEST_CASE("a plugin writable by group or others is refused, naming the path and the fix") {
    SafeDir d;
    ::chmod(d.file("good_cache.so").c_str(), 0664);
    Seen f = scanned(d.path, "good_cache.so");
    CHECK(f.state == PluginFile::State::Refused);
    CHECK(contains(f.why, d.file("good_cache.so") + " is writable by its group"));
    CHECK(contains(f.why, "chmod go-w " + d.file("good_cache.so")));
    ::chmod(d.file("good_cache.so").c_str(), 0646);
    f = scanned(d.path, "good_cache.so");
    CHECK(f.state == PluginFile::State::Refused);
    CHECK(contains(f.why, "is writable by others"));
    // The normal loader refuses it too (logged, skipped).
    CHECK(load_plugins(d.path, host_api()).empty());
}

TEST_CASE("a plugin owned by another user is refused") {
    SafeDir d;
    if (::geteuid() != 0) return;  // only root can hand a file to another user
    REQUIRE(::chown(d.file("good_cache.so").c_str(), 65534, 65534) == 0);
    Seen f = scanned(d.path, "good_cache.so");
    CHECK(f.state == PluginFile::State::Refused);
    CHECK(contains(f.why, "uid 65534"));
    CHECK(contains(f.why, "not by root or the tracker's user"));
    CHECK(contains(f.why, "chown root " + d.file("good_cache.so")));
}

TEST_CASE("only regular files are opened: a symlink or a directory named *.so is refused") {
    SafeDir d;
    fs::create_symlink(d.file("good_cache.so"), d.file("link.so"));
    fs::create_directory(d.file("dir.so"));
    auto files = scan_plugins(d.path, host_api());
    CHECK(entry(files, "good_cache.so").state == PluginFile::State::Loaded);
    CHECK(entry(files, "link.so").state == PluginFile::State::Refused);
    CHECK(contains(entry(files, "link.so").why, "a symlink"));
    CHECK(entry(files, "dir.so").state == PluginFile::State::Refused);
    CHECK(contains(entry(files, "dir.so").why, "not a regular file"));
}

TEST_CASE("a plugins_dir writable by group or others, or owned by another user, stops the scan") {
    SafeDir d;
    ::chmod(d.path.c_str(), 0775);
    CHECK(contains(scan_error(d.path), "plugins_dir " + d.path + " is writable by its group"));
    CHECK(contains(scan_error(d.path), "chmod go-w " + d.path));
    ::chmod(d.path.c_str(), 01777);  // sticky, like /tmp: others may still add files
    CHECK(contains(scan_error(d.path), "is writable by others"));
    CHECK_THROWS(load_plugins(d.path, host_api()));
    ::chmod(d.path.c_str(), 0755);
    CHECK(scan_error(d.path).empty());
    if (::geteuid() != 0) return;
    REQUIRE(::chown(d.path.c_str(), 65534, 65534) == 0);
    CHECK(contains(scan_error(d.path), "is owned by"));
    CHECK(contains(scan_error(d.path), "chown root " + d.path));
}
