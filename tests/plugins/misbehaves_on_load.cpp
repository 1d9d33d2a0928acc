// A plugin whose static constructor misbehaves, built once per behaviour (tests/plugins/
// CMakeLists.txt): the probe's child suffers it, the tracker must not.
//   MISBEHAVE_ABORT     abort(): the child dies of SIGABRT
//   MISBEHAVE_EXIT      exit(7): the child exits with a status of the plugin's choosing
//   MISBEHAVE_HANG      never returns: the probe gives up at its timeout
//   MISBEHAVE_CLOSE     closes every descriptor (the probe's pipe with them), then never
//                       returns: end of file must not make the probe wait for the child for ever
#include <chihaya/driver.hpp>

#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>

namespace {

struct Misbehave {
    Misbehave() {
#if defined(MISBEHAVE_ABORT)
        std::abort();
#elif defined(MISBEHAVE_EXIT)
        std::exit(7);
#else
#if defined(MISBEHAVE_CLOSE)
        ::syscall(SYS_close_range, 3u, ~0u, 0u);
#endif
        for (;;) ::pause();
#endif
    }
} misbehave;

class Unreachable {
public:
    static constexpr chihaya_config_key config_keys[] = {chihaya::config_bool("unused", false, "unused")};
    Unreachable(const chihaya::Host&, const chihaya::Config&) {}
    void announce(const chihaya_announce_request&, chihaya_announce_result&, chihaya::Completion done) { done(CHIHAYA_OK); }
    void scrape(chihaya_scrape_request&, chihaya::Completion done) { done(CHIHAYA_OK); }
};

}  // namespace

CHIHAYA_REGISTER_CACHE(MISBEHAVE_NAME, Unreachable)
