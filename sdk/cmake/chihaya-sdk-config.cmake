# chihaya-sdk-config.cmake: find_package(chihaya-sdk CONFIG REQUIRED) gives
#   chihaya::sdk            the headers (chihaya/abi.h, chihaya/driver.hpp) and C++20;
#   chihaya_add_driver()    builds a driver plugin (ChihayaAddDriver.cmake documents it);
#   chihaya-sdk_VERSION     the plugin ABI version (major.minor) the headers define.
# The SDK is header-only and needs nothing else at build time.
include("${CMAKE_CURRENT_LIST_DIR}/chihaya-sdk-targets.cmake")
include("${CMAKE_CURRENT_LIST_DIR}/ChihayaAddDriver.cmake")
