# bench_milter: Postfix throughput with and without mta-sts-milter, the milter's lookup latency
# (local-cache and Redis hits, measured inside the milter) and its peak RSS at 200 concurrent
# SMTP sessions, next to a do-nothing milter as the floor (not a test; needs root for Postfix).
#   build/<dir>/bench/bench_milter [--messages N] [--sessions S] [--domains D] [--rounds R] [--rss-sessions R] [--size BYTES] [--keep-sessions] [--untagged]
add_executable(bench_milter
  ${CMAKE_CURRENT_LIST_DIR}/milter/bench_milter.cpp
  ${PROJECT_SOURCE_DIR}/tests/e2e/milter/mail_env.cpp
  ${PROJECT_SOURCE_DIR}/tests/integration/milter/harness.cpp)
target_include_directories(bench_milter PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(bench_milter PRIVATE mtasts_milter_core mtasts_test_support mtasts_flags)
add_dependencies(bench_milter mta-sts-milter mta-sts-cached bench_null_milter)
target_compile_definitions(bench_milter PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_CACHED_BIN="$<TARGET_FILE:mta-sts-cached>"
  MTASTS_NULL_MILTER_BIN="$<TARGET_FILE:bench_null_milter>"
  MTASTS_MILTERTEST_DIR="${PROJECT_SOURCE_DIR}/tests/integration/miltertest")

# bench_null_milter: the do-nothing filter bench_milter measures as the floor of any milter.
add_executable(bench_null_milter ${CMAKE_CURRENT_LIST_DIR}/milter/null_milter.cpp)
target_link_libraries(bench_null_milter PRIVATE PkgConfig::MILTER mtasts_flags)
