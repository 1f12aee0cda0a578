# mta-sts-milter end to end through a private Postfix instance (SMTP and the sendmail
# command), with the real fetcher filling Redis from the loopback world.
mtasts_add_test(milter_postfix_e2e e2e
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/milter/mail_env.cpp
    ${CMAKE_CURRENT_LIST_DIR}/milter/postfix_test.cpp
    ${PROJECT_SOURCE_DIR}/tests/integration/milter/harness.cpp
  LIBS mtasts_milter_core mtasts_test_support)
add_dependencies(milter_postfix_e2e mta-sts-milter mta-sts-cached)
target_compile_definitions(milter_postfix_e2e PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_CACHED_BIN="$<TARGET_FILE:mta-sts-cached>"
  MTASTS_MILTERTEST_DIR="${PROJECT_SOURCE_DIR}/tests/integration/miltertest")
# The milter in Postfix against entries crafted by an attacker with write access to Redis
# (issue 12): mail flows, no injected header line is delivered, nothing crashes.
mtasts_add_test(milter_hostile_cache_e2e e2e
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/milter/mail_env.cpp
    ${CMAKE_CURRENT_LIST_DIR}/milter/hostile_cache_test.cpp
    ${PROJECT_SOURCE_DIR}/tests/integration/milter/harness.cpp
  LIBS mtasts_milter_core mtasts_test_support)
add_dependencies(milter_hostile_cache_e2e mta-sts-milter mta-sts-cached)
target_compile_definitions(milter_hostile_cache_e2e PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_CACHED_BIN="$<TARGET_FILE:mta-sts-cached>"
  MTASTS_MILTERTEST_DIR="${PROJECT_SOURCE_DIR}/tests/integration/miltertest")
