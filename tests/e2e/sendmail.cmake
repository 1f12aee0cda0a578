# mta-sts-milter end to end through Sendmail 8.17 (INPUT_MAIL_FILTER, unpacked by
# scripts/install-deps.sh), with the real fetcher filling Redis from the loopback world.
mtasts_add_test(milter_sendmail_e2e e2e
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/milter/mail_env.cpp
    ${CMAKE_CURRENT_LIST_DIR}/milter/sendmail_test.cpp
    ${PROJECT_SOURCE_DIR}/tests/integration/milter/harness.cpp
  LIBS mtasts_milter_core mtasts_test_support)
add_dependencies(milter_sendmail_e2e mta-sts-milter mta-sts-cached)
target_compile_definitions(milter_sendmail_e2e PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_CACHED_BIN="$<TARGET_FILE:mta-sts-cached>"
  MTASTS_MILTERTEST_DIR="${PROJECT_SOURCE_DIR}/tests/integration/miltertest")
