// A plugin whose static constructor never returns: the probe gives up on it after its timeout.
#include <chihaya/driver.hpp>

#include <unistd.h>

namespace {

struct HangOnLoad {
    HangOnLoad() {
        for (;;) ::pause();
    }
} hang_on_load;

class Unreachable {
public:
    static constexpr chihaya_config_key config_keys[] = {chihaya::config_bool("unused", false, "unused")};
    Unreachable(const chihaya::Host&, const chihaya::Config&) {}
    void announce(const chihaya_announce_request&, chihaya_announce_result&, chihaya::Completion done) { done(CHIHAYA_OK); }
    void scrape(chihaya_scrape_request&, chihaya::Completion done) { done(CHIHAYA_OK); }
};

}  // namespace

CHIHAYA_REGISTER_CACHE("hang", Unreachable)
