# Fail-safe enforcement (issue 18): the real mta-sts-tlsmap and mta-sts-milter against a real
# redis-server, with the default on-redis-error and on-unknown, read an enforce domain once;
# then one fault at a time (key deleted, FLUSHALL, Redis killed, killed then SIGHUP, restarted
# empty, -LOADING, slow past the budget, an entry of a newer format). After local-cache-ttl the
# tlsmap still answers the policy (never NOTFOUND) and mail through the milter is still tagged.
mtasts_add_test(failsafe_integration_tests integration
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/failsafe/failsafe_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/milter/harness.cpp
  LIBS mtasts_tlsmap_harness mtasts_daemon mtasts_dns mtasts_test_support)
add_dependencies(failsafe_integration_tests mta-sts-milter mta-sts-tlsmap)
target_compile_definitions(failsafe_integration_tests PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_MILTERTEST_DIR="${CMAKE_CURRENT_LIST_DIR}/miltertest")

# An operator's drop (issue 19 defect 3) against the real mta-sts-cached and mta-sts-ctl: a
# drop during a slow refresh (nginx sends the body slowly) stays dropped.
mtasts_add_test(drop_integration_tests integration
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/failsafe/drop_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/milter/harness.cpp
  LIBS mtasts_daemon mtasts_dns mtasts_test_support)
add_dependencies(drop_integration_tests mta-sts-cached mta-sts-ctl)
target_compile_definitions(drop_integration_tests PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_MILTERTEST_DIR="${CMAKE_CURRENT_LIST_DIR}/miltertest"
  MTASTS_CTL_BIN="$<TARGET_FILE:mta-sts-ctl>")
