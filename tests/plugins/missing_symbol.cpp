// Needs a symbol nothing provides: RTLD_NOW must refuse it at load with the loader's reason.
#include <chihaya/abi.h>

extern "C" int chihaya_test_symbol_that_does_not_exist(void);

static const chihaya_plugin_descriptor descriptor = {
    CHIHAYA_PLUGIN_MAGIC, CHIHAYA_ABI_MAJOR, CHIHAYA_ABI_MINOR, sizeof(chihaya_plugin_descriptor),
    0, 0, "missing", "1", nullptr};

extern "C" __attribute__((visibility("default"))) const chihaya_plugin_descriptor*
chihaya_plugin_entry(const chihaya_host_api*) {
    return chihaya_test_symbol_that_does_not_exist() ? &descriptor : nullptr;
}
