# ChihayaAddDriver.cmake: chihaya_add_driver(), the one way a chihaya driver plugin is built.
# The tracker's own plugins use it from the source tree, third-party drivers from the installed
# SDK (find_package(chihaya-sdk CONFIG REQUIRED)), so both are built the same way.
#
#   chihaya_add_driver(NAME <name> SOURCES <file>... [VERSION <x.y.z>] [NO_INSTALL])
#
# makes the MODULE library target <name>, written as chihaya_<name>.so, that:
#   - links chihaya::sdk (headers, C++20);
#   - compiles with hidden visibility and, with g++, -fno-gnu-unique, and links with -z defs and
#     the SDK's version script (plugin.map says why), so that it exports its entry symbol only and
#     a missing symbol fails the link here rather than the load in the field;
#   - leaves the built file not writable by group or others (the host refuses it otherwise);
#   - defines CHIHAYA_PLUGIN_VERSION as VERSION, else the enclosing project's version;
#   - goes to ${CHIHAYA_PLUGIN_OUTPUT_DIR} in the build tree when that variable is set;
#   - installs to ${CHIHAYA_PLUGIN_INSTALL_DIR} (default lib/chihaya/plugins, relative to the
#     install prefix), where an installed chihaya looks by default; NO_INSTALL skips that.
# Add its own dependencies with target_link_libraries(<name> PRIVATE ...) as for any target.

if(CMAKE_VERSION VERSION_LESS 3.17)  # CMAKE_CURRENT_FUNCTION_LIST_DIR
  message(FATAL_ERROR "chihaya-sdk needs CMake 3.17 or newer")
endif()
set(CHIHAYA_PLUGIN_INSTALL_DIR "lib/chihaya/plugins" CACHE STRING
    "where chihaya_add_driver installs plugins, relative to CMAKE_INSTALL_PREFIX")

function(chihaya_add_driver)
  cmake_parse_arguments(PARSE_ARGV 0 arg "NO_INSTALL" "NAME;VERSION" "SOURCES")
  if(NOT arg_NAME OR NOT arg_SOURCES)
    message(FATAL_ERROR "chihaya_add_driver: NAME <name> SOURCES <file>... are required")
  endif()
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "chihaya_add_driver: unexpected arguments ${arg_UNPARSED_ARGUMENTS}")
  endif()
  set(version "${arg_VERSION}")
  if(NOT version)
    set(version "${PROJECT_VERSION}")
  endif()
  if(NOT version)
    message(FATAL_ERROR "chihaya_add_driver(${arg_NAME}): no version; give project(... VERSION x.y.z) or VERSION")
  endif()

  # The version script beside this file (in the source tree or the installed package).
  set(map "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/plugin.map")
  set(name ${arg_NAME})
  add_library(${name} MODULE ${arg_SOURCES})
  target_link_libraries(${name} PRIVATE chihaya::sdk)
  target_compile_definitions(${name} PRIVATE CHIHAYA_PLUGIN_VERSION="${version}")
  set_target_properties(${name} PROPERTIES
    PREFIX "" OUTPUT_NAME "chihaya_${name}" SUFFIX ".so"
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
    LINK_DEPENDS "${map}")
  if(CHIHAYA_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${CHIHAYA_PLUGIN_OUTPUT_DIR}")
  endif()
  target_link_options(${name} PRIVATE -Wl,-z,defs "-Wl,--version-script=${map}")
  # GNU "unique" statics (inline/template statics) would bind process-wide and pin the library.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${name} PRIVATE -fno-gnu-unique)
  endif()
  # The host refuses a plugin writable by group or others (its loader says why); under a umask
  # such as 002 the linker's output would be, so take that bit away after every link.
  add_custom_command(TARGET ${name} POST_BUILD COMMAND chmod go-w $<TARGET_FILE:${name}> VERBATIM)
  if(NOT arg_NO_INSTALL)
    install(TARGETS ${name} LIBRARY DESTINATION "${CHIHAYA_PLUGIN_INSTALL_DIR}")
  endif()
endfunction()
