// One of two plugins that both register the cache driver "dup": start-up must stop.
#include <chihaya/driver.hpp>

namespace {
struct Dupb {
    Dupb(const chihaya::Host&, const chihaya::Config&) {}
    void announce(const chihaya_announce_request&, chihaya_announce_result&, chihaya::Completion d) { d(CHIHAYA_OK); }
    void scrape(chihaya_scrape_request&, chihaya::Completion d) { d(CHIHAYA_OK); }
};
}  // namespace

CHIHAYA_REGISTER_CACHE("dup", Dupb)
