// The plugin boundary from the host's side: handshake refusals, registry rules, config checks.
#include "config/config.hpp"
#include "plugin/loader.hpp"
#include "plugin/registry.hpp"

#include <doctest/doctest.h>

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

TEST_CASE("a plugin that needs a newer host minor is refused, naming both versions") {
    std::string why = refusal("needs_newer_host.so");
    CHECK(contains(why, "needs a host of ABI 2.9 or newer"));
    CHECK(contains(why, "this host speaks ABI 2.1"));
}

TEST_CASE("a directory scan keeps the good plugins and skips the broken ones") {
    std::vector<LoadedPlugin> plugins = load_plugins(dir, host_api());
    std::vector<std::string> names;
    for (const auto& p : plugins) names.push_back(p.descriptor->name);
    CHECK(names == std::vector<std::string>{"dup", "dup", "good", "future", "throwing"});
    CHECK_THROWS(load_plugins(dir + "/nowhere", host_api()));
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
    LoadedPlugin throwing = load("throwing_cache.so");
    auto* without = static_cast<const chihaya_cache_vtable*>(throwing.descriptor->drivers[0].vtable);
    CHECK((without->scrape_all == nullptr));
    CHECK((without->tick == nullptr));
    CHECK((without->announce != nullptr));
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
