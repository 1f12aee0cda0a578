# mta-sts-milter driven by miltertest (Lua scripts in miltertest/) against a real
# redis-server, the real binary, and the daemon behaviour an operator relies on. One test runs
# the binary under valgrind (definite and indirect leaks and memory errors fail it).
mtasts_add_test(milter_integration_tests integration
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/milter/harness.cpp
    ${CMAKE_CURRENT_LIST_DIR}/milter/milter_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/milter/daemon_test.cpp
  LIBS mtasts_milter_core mtasts_test_support)
add_dependencies(milter_integration_tests mta-sts-milter)
target_compile_definitions(milter_integration_tests PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_MILTERTEST_DIR="${CMAKE_CURRENT_LIST_DIR}/miltertest"
  $<$<BOOL:${MTASTS_SANITIZE}>:MTASTS_SANITIZED=1>)
