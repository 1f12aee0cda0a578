# Prometheus metrics end to end: a real Prometheus server scraping the real fetcher, milter
# and mta-sts-tlsmap while mail flows through a private Postfix instance.
mtasts_add_test(metrics_e2e e2e
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/milter/mail_env.cpp
    ${CMAKE_CURRENT_LIST_DIR}/metrics/metrics_test.cpp
    ${PROJECT_SOURCE_DIR}/tests/integration/milter/harness.cpp
  LIBS mtasts_milter_core mtasts_tlsmap_harness mtasts_test_support)
add_dependencies(metrics_e2e mta-sts-milter mta-sts-cached mta-sts-tlsmap)
target_compile_definitions(metrics_e2e PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_CACHED_BIN="$<TARGET_FILE:mta-sts-cached>"
  MTASTS_MILTERTEST_DIR="${PROJECT_SOURCE_DIR}/tests/integration/miltertest")
