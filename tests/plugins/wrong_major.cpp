// A plugin built for a future ABI major: must be refused, naming both versions.
#include <chihaya/abi.h>

static const chihaya_plugin_descriptor descriptor = {
    CHIHAYA_PLUGIN_MAGIC, 99, 3, sizeof(chihaya_plugin_descriptor), 0, 0, "future", "9.9", nullptr};

extern "C" __attribute__((visibility("default"))) const chihaya_plugin_descriptor*
chihaya_plugin_entry(const chihaya_host_api*) {
    return &descriptor;
}
