// A driver that misuses its completions: announce calls done twice, scrape calls done and then
// throws (the SDK trampoline then completes it a second time, with CHIHAYA_INTERNAL). The host must
// answer the client once, log the misuse and keep serving; chihaya-conformance must report it.
#include <chihaya/driver.hpp>

#include <stdexcept>

namespace {

class DoubleDone {
public:
    // A secret with a default: --list-plugins must never print it.
    static constexpr chihaya_config_key config_keys[] = {
        chihaya::config_secret("token", "\"s3cr3t-default\"", "a secret the listing hides"),
    };
    DoubleDone(const chihaya::Host&, const chihaya::Config&) {}
    void announce(const chihaya_announce_request&, chihaya_announce_result& result,
                  chihaya::Completion done) {
        result.peer_count = result.complete = result.incomplete = result.downloaded = 0;
        done(CHIHAYA_OK);
        done(CHIHAYA_OK);
    }
    void scrape(chihaya_scrape_request&, chihaya::Completion done) {
        done(CHIHAYA_OK);
        throw std::runtime_error("failed after done");
    }
};

}  // namespace

CHIHAYA_REGISTER_CACHE("double_done", DoubleDone)
