# Debian packages with CPack (cpack -G DEB in the build tree):
#   chihaya      the tracker, its plugins, /etc/chihaya/chihaya.toml (a conffile), the systemd
#                unit, chihaya(8); postinst creates the `chihaya` system user
#   chihaya-dev  the driver SDK: headers, CMake package, pkg-config file, examples, conformance kit
# Components: everything installed from sdk/ is "dev", the rest "runtime" (set around the
# add_subdirectory calls in the top-level CMakeLists.txt).

# The configuration: <prefix>/etc/chihaya for `cmake --install --prefix X`; for the system
# prefix /usr (the package) the Debian place /etc/chihaya, with the admin listener on loopback
# and the memory driver's snapshot in the service's state directory.
install(CODE "set(CHIHAYA_SOURCE_DIR \"${CMAKE_SOURCE_DIR}\")\nset(CHIHAYA_BINARY_DIR \"${CMAKE_BINARY_DIR}\")"
        COMPONENT runtime)
install(SCRIPT cmake/install_config.cmake COMPONENT runtime)
install(FILES doc/chihaya.8 DESTINATION share/man/man8 COMPONENT runtime)
install(FILES etc/grafana/chihaya.json DESTINATION share/chihaya/grafana COMPONENT runtime)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME chihaya)
set(CPACK_PACKAGE_VENDOR "chihaya")
set(CPACK_PACKAGE_CONTACT "chihaya maintainers <chihaya@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "BitTorrent tracker (HTTP and UDP, open and private)")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)  # with CPACK_SET_DESTDIR this is the prefix the install runs with
set(CPACK_SET_DESTDIR ON)  # the absolute /etc and /lib/systemd destinations above
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # chihaya_0.1.0_amd64.deb, chihaya-dev_0.1.0_amd64.deb
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME chihaya)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION net)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
    "${CMAKE_SOURCE_DIR}/etc/debian/postinst;${CMAKE_SOURCE_DIR}/etc/debian/prerm;${CMAKE_SOURCE_DIR}/etc/debian/postrm;${CMAKE_SOURCE_DIR}/etc/debian/conffiles")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME chihaya-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_DEV_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "chihaya (= ${PROJECT_VERSION})")
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION "BitTorrent tracker with the memory, Redis and none drivers")
set(CPACK_COMPONENT_DEV_DESCRIPTION "SDK for chihaya driver plugins: headers, CMake and pkg-config files, examples, conformance kit")
include(CPack)
