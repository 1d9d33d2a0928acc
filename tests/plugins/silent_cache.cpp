// A driver that never completes a call: chihaya-conformance must say so rather than read the
// untouched (zeroed) result as an answer of 0 peers.
#include <chihaya/driver.hpp>

namespace {

class Silent {
public:
    Silent(const chihaya::Host&, const chihaya::Config&) {}
    void announce(const chihaya_announce_request&, chihaya_announce_result&, chihaya::Completion) {}
    void scrape(chihaya_scrape_request&, chihaya::Completion) {}
};

}  // namespace

CHIHAYA_REGISTER_CACHE("silent", Silent)
