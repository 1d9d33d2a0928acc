// A plugin whose static constructor closes every descriptor (the probe's pipe with them) and then
// never returns: end of file on the pipe must not make the probe wait for the child without end.
#include <chihaya/driver.hpp>

#include <linux/close_range.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace {

struct CloseAndHang {
    CloseAndHang() {
        ::syscall(SYS_close_range, 3u, ~0u, 0u);
        for (;;) ::pause();
    }
} close_and_hang;

class Unreachable {
public:
    static constexpr chihaya_config_key config_keys[] = {chihaya::config_bool("unused", false, "unused")};
    Unreachable(const chihaya::Host&, const chihaya::Config&) {}
    void announce(const chihaya_announce_request&, chihaya_announce_result&, chihaya::Completion done) { done(CHIHAYA_OK); }
    void scrape(chihaya_scrape_request&, chihaya::Completion done) { done(CHIHAYA_OK); }
};

}  // namespace

CHIHAYA_REGISTER_CACHE("close_and_hang", Unreachable)
