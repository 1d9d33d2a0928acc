// A plugin that states it needs host ABI 2.9 (CHIHAYA_MIN_HOST_MINOR): a 2.1 host must refuse it,
// naming both versions, rather than load it and leave it without the calls it relies on.
#define CHIHAYA_MIN_HOST_MINOR 9u
#include <chihaya/driver.hpp>

namespace {

class NeedsNewerHost {
public:
    NeedsNewerHost(const chihaya::Host&, const chihaya::Config&) {}
    void announce(const chihaya_announce_request&, chihaya_announce_result&, chihaya::Completion done) {
        done(CHIHAYA_OK);
    }
    void scrape(chihaya_scrape_request&, chihaya::Completion done) { done(CHIHAYA_OK); }
};

}  // namespace

CHIHAYA_REGISTER_CACHE("needs_newer", NeedsNewerHost)
