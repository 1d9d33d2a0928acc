# Sanitizer builds (one build dir each; CMakePresets.json has the presets "asan" and "tsan"):
#   -DCHIHAYA_SANITIZE=address  ASan + UBSan (and LSan at exit)
#   -DCHIHAYA_SANITIZE=thread   TSan
# Every target, plugins included, so that a plugin's bug shows in the host's run. The runtime
# options and suppression files (tests/sanitizers/) reach every test through ctest's ENVIRONMENT,
# so a plain `ctest` in a sanitizer build dir is the whole procedure; a report fails its test.
set(CHIHAYA_SANITIZE "" CACHE STRING "address (ASan+UBSan) or thread (TSan); empty = none")
set_property(CACHE CHIHAYA_SANITIZE PROPERTY STRINGS "" address thread)

set(CHIHAYA_SANITIZER_SUPPRESSIONS ${CMAKE_SOURCE_DIR}/tests/sanitizers)
if(CHIHAYA_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
  set(CHIHAYA_SANITIZER_ENV
    "ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1:check_initialization_order=1"
    "LSAN_OPTIONS=suppressions=${CHIHAYA_SANITIZER_SUPPRESSIONS}/lsan.supp:print_suppressions=0"
    "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=${CHIHAYA_SANITIZER_SUPPRESSIONS}/ubsan.supp")
elseif(CHIHAYA_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
  set(CHIHAYA_SANITIZER_ENV
    "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=${CHIHAYA_SANITIZER_SUPPRESSIONS}/tsan.supp:print_suppressions=0")
elseif(NOT CHIHAYA_SANITIZE STREQUAL "")
  message(FATAL_ERROR "CHIHAYA_SANITIZE must be address, thread or empty (got '${CHIHAYA_SANITIZE}')")
endif()
# The Python tests read it to skip, with the reason, what cannot run under that sanitizer
# (tests/README.md lists each) and to fail on a report in a tracker's log.
list(APPEND CHIHAYA_SANITIZER_ENV "CHIHAYA_SANITIZE=${CHIHAYA_SANITIZE}")

# chihaya_sanitizer_test_env(): called once in each directory that adds tests. At the end of that
# directory (deferred, so after every set_tests_properties(... ENVIRONMENT ...) there, which would
# replace it) it appends CHIHAYA_SANITIZER_ENV to the ENVIRONMENT of each of its tests. One call per
# directory because CMake before 3.28 sets test properties only from the directory that added them.
function(chihaya_sanitizer_test_env)
  if(CHIHAYA_SANITIZE)
    cmake_language(DEFER CALL _chihaya_sanitizer_test_env_apply)
  endif()
endfunction()

function(_chihaya_sanitizer_test_env_apply)
  get_property(tests DIRECTORY PROPERTY TESTS)
  foreach(test IN LISTS tests)
    set_property(TEST ${test} APPEND PROPERTY ENVIRONMENT ${CHIHAYA_SANITIZER_ENV})
  endforeach()
endfunction()
