// A well-formed descriptor that registers nothing.
#include <chihaya/abi.h>

static const chihaya_plugin_descriptor descriptor = {
    CHIHAYA_PLUGIN_MAGIC, CHIHAYA_ABI_MAJOR, CHIHAYA_ABI_MINOR, sizeof(chihaya_plugin_descriptor),
    0, 0, "empty", "1", nullptr};

extern "C" __attribute__((visibility("default"))) const chihaya_plugin_descriptor*
chihaya_plugin_entry(const chihaya_host_api*) {
    return &descriptor;
}
