# Install-time half of cmake/packaging.cmake: where the configuration goes. CHIHAYA_SOURCE_DIR and
# CHIHAYA_BINARY_DIR are set by the install(CODE) line before this script.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  # The Debian package: /etc/chihaya (a conffile), the admin listener on loopback, the memory
  # driver's snapshot in the service's state directory, and the systemd unit.
  file(READ "${CHIHAYA_SOURCE_DIR}/etc/chihaya.toml" text)
  string(REPLACE "# listen = \"127.0.0.1:6880\"\nlisten = \"\"" "listen = \"127.0.0.1:6880\"" text "${text}")
  string(REPLACE "snapshot_path = \"\"" "snapshot_path = \"/var/lib/chihaya/swarms.snapshot\"" text "${text}")
  file(WRITE "${CHIHAYA_BINARY_DIR}/packaged/chihaya.toml" "${text}")
  file(INSTALL "${CHIHAYA_BINARY_DIR}/packaged/chihaya.toml" DESTINATION "/etc/chihaya")
  file(INSTALL "${CHIHAYA_SOURCE_DIR}/etc/chihaya.service" DESTINATION "/lib/systemd/system")
else()
  file(INSTALL "${CHIHAYA_SOURCE_DIR}/etc/chihaya.toml" DESTINATION "${CMAKE_INSTALL_PREFIX}/etc/chihaya")
endif()
