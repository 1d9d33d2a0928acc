// The built-in "none" storage: open mode, no web application behind the tracker.
#include <chihaya/driver.hpp>

namespace {

// Accepts everything and stores nothing; the private-mode calls of a later ABI minor will
// answer "allowed" and drop deltas.
class NoneStorage {
public:
    NoneStorage(const chihaya::Host&, const chihaya::Config&) {}
};

}  // namespace

CHIHAYA_REGISTER_STORAGE("none", NoneStorage)
