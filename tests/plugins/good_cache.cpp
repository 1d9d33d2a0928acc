// A minimal well-formed cache driver with config keys: the loader's positive case.
#include <chihaya/driver.hpp>

namespace {

class GoodCache {
public:
    static constexpr chihaya_config_key config_keys[] = {
        chihaya::config_int("size", "8", 1, 64, "a bounded integer"),
        chihaya::config_string("label", "\"x\"", "a string"),
        chihaya::config_bool("strict", false, "a flag"),
    };
    GoodCache(const chihaya::Host&, const chihaya::Config& config)
        : size_(config.integer("size")), label_(config.string("label")), strict_(config.boolean("strict")) {}
    // Echoes its resolved config in the counts, so the test sees what create received.
    void announce(const chihaya_announce_request&, chihaya_announce_result& r, chihaya::Completion done) {
        r.complete = uint32_t(size_);
        r.incomplete = uint32_t(label_.size());
        r.downloaded = strict_ ? 1 : 0;
        done(CHIHAYA_OK);
    }
    void scrape(chihaya_scrape_request&, chihaya::Completion done) { done(CHIHAYA_OK); }
    // The optional members: the registration macro must put them in the table.
    void scrape_all(chihaya_scrape_visit, void*, chihaya::Completion done) { done(CHIHAYA_OK); }
    void tick(uint64_t) {}
    chihaya_status stats(chihaya_cache_stats& out) {
        out.torrents = uint64_t(size_);
        return CHIHAYA_OK;
    }

private:
    int64_t size_;
    std::string label_;
    bool strict_;
};

}  // namespace

CHIHAYA_REGISTER_CACHE("good", GoodCache)
