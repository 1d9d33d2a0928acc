// A shared object with no chihaya entry symbol (say, a stray library in plugins_dir).
extern "C" __attribute__((visibility("default"))) int not_a_plugin() { return 1; }
