// A plugin whose static constructor aborts: the probe's child dies, the tracker must not.
#include <chihaya/driver.hpp>

#include <cstdlib>

namespace {

struct AbortOnLoad {
    AbortOnLoad() { std::abort(); }
} abort_on_load;

class Unreachable {
public:
    static constexpr chihaya_config_key config_keys[] = {chihaya::config_bool("unused", false, "unused")};
    Unreachable(const chihaya::Host&, const chihaya::Config&) {}
    void announce(const chihaya_announce_request&, chihaya_announce_result&, chihaya::Completion done) { done(CHIHAYA_OK); }
    void scrape(chihaya_scrape_request&, chihaya::Completion done) { done(CHIHAYA_OK); }
};

}  // namespace

CHIHAYA_REGISTER_CACHE("crash", Unreachable)
