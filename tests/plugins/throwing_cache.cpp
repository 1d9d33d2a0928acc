// A driver whose methods throw: the SDK trampolines must turn that into status codes.
#include <chihaya/driver.hpp>

#include <stdexcept>

namespace {

class ThrowingCache {
public:
    static constexpr chihaya_config_key config_keys[] = {
        chihaya::config_bool("fail_create", false, "throw in create"),
    };
    ThrowingCache(const chihaya::Host&, const chihaya::Config& config) {
        if (config.boolean("fail_create")) throw std::runtime_error("cannot reach the store at 127.0.0.1:1");
    }
    void announce(const chihaya_announce_request&, chihaya_announce_result&, chihaya::Completion) {
        throw std::runtime_error("announce exploded");
    }
    void scrape(chihaya_scrape_request&, chihaya::Completion) { throw 42; }
};

}  // namespace

CHIHAYA_REGISTER_CACHE("throwing", ThrowingCache)
