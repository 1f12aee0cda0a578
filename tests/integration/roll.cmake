# Rolling upgrade (issue 10): today's real milter, mta-sts-tlsmap and mta-sts-cached against
# entries of the next codec version, and the next version's reader and writer against what
# today's fetcher wrote. The next version is the same codec source built again with its version
# raised by one: mta-sts-next-codec, a test-only program (the production build never defines
# MTASTS_CODEC_VERSION).
add_executable(mta-sts-next-codec
  ${CMAKE_CURRENT_LIST_DIR}/roll/next_codec.cpp
  ${PROJECT_SOURCE_DIR}/common/sts/cache_entry.cpp)
target_include_directories(mta-sts-next-codec PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_definitions(mta-sts-next-codec PRIVATE MTASTS_CODEC_VERSION=2 MTASTS_CODEC_READER=1)
# The policy model (mx patterns, modes) from the core; its cache_entry.o is never linked in:
# every symbol it defines is already defined by the next version's object above.
target_link_libraries(mta-sts-next-codec PRIVATE mtasts_daemon mtasts_dns mtasts_flags)

mtasts_add_test(roll_integration_tests integration
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/roll/roll_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/roll/fleet_roll_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/milter/harness.cpp
  LIBS mtasts_tlsmap_harness mtasts_daemon mtasts_dns mtasts_test_support)
add_dependencies(roll_integration_tests mta-sts-milter mta-sts-cached mta-sts-tlsmap mta-sts-next-codec
  mta-sts-next-cached)
target_compile_definitions(roll_integration_tests PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_MILTERTEST_DIR="${CMAKE_CURRENT_LIST_DIR}/miltertest"
  MTASTS_NEXT_CODEC_BIN="$<TARGET_FILE:mta-sts-next-codec>"
  MTASTS_NEXT_CACHED_BIN="$<TARGET_FILE:mta-sts-next-cached>")
# The next version's fetcher, for the rolling fleet (issue 19): today's mta-sts-cached sources
# with the codec (and the store and worker, which compare versions) built again at version 2.
# Like mta-sts-next-codec, its own objects define every symbol of the library members they
# replace, so those members are never linked in.
add_executable(mta-sts-next-cached
  ${PROJECT_SOURCE_DIR}/cached/main.cpp
  ${PROJECT_SOURCE_DIR}/cached/https.cpp
  ${PROJECT_SOURCE_DIR}/cached/discovery.cpp
  ${PROJECT_SOURCE_DIR}/cached/refresh.cpp
  ${PROJECT_SOURCE_DIR}/cached/schedule.cpp
  ${PROJECT_SOURCE_DIR}/cached/worker.cpp
  ${PROJECT_SOURCE_DIR}/cached/claims.cpp
  ${PROJECT_SOURCE_DIR}/cached/metrics.cpp
  ${PROJECT_SOURCE_DIR}/common/fleet/store.cpp
  ${PROJECT_SOURCE_DIR}/common/sts/cache_entry.cpp)
target_include_directories(mta-sts-next-cached PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_definitions(mta-sts-next-cached PRIVATE MTASTS_CODEC_VERSION=2 MTASTS_CODEC_READER=1)
target_link_libraries(mta-sts-next-cached PRIVATE mtasts_metrics_http mtasts_daemon mtasts_dns mtasts_flags
  Threads::Threads CURL::libcurl OpenSSL::SSL)
