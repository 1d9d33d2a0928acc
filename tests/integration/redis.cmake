# Integration tests of the redis cache driver against real redis-server processes (redis_fixture.py),
# included from CMakeLists.txt after CHIHAYA_TEST_ENV is set. They need redis-server and
# redis-cli on PATH; without them the tests fail and say so rather than vanish.
if(NOT TARGET redis)
  message(WARNING "the redis cache driver is not built: integration.redis* tests are not registered")
  return()
endif()

foreach(name redis redis_cluster redis_failover)
  add_test(NAME integration.${name}
           COMMAND ${CHIHAYA_TEST_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_${name}.py)
  # RESOURCE_LOCK: the fault tests bound latencies, so the two suites do not share the 2 cores
  # with each other's redis-servers.
  set_tests_properties(integration.${name} PROPERTIES
    ENVIRONMENT "${CHIHAYA_TEST_ENV}" TIMEOUT 90 LABELS "integration;redis"
    RESOURCE_LOCK redis SKIP_RETURN_CODE 77)
endforeach()

# bench/chaos.py, CI-sized: each fault once (redis-server SIGKILL and SIGTERM, the Redis-backed
# tracker SIGKILLed, the memory tracker with its snapshot SIGTERMed and SIGKILLed) under traffic;
# the tracker must survive Redis dying and serve again within the reconnect backoff cap. The long
# run (50 cycles) is bench/chaos.py's default, on demand.
add_test(NAME integration.chaos
         COMMAND ${CHIHAYA_TEST_PYTHON} ${CMAKE_SOURCE_DIR}/bench/chaos.py --cycles 5 --seed 11 --duration 60)
set_tests_properties(integration.chaos PROPERTIES
  ENVIRONMENT "${CHIHAYA_TEST_ENV}" TIMEOUT 120 LABELS "integration;redis"
  RESOURCE_LOCK redis)
