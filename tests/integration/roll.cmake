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
    ${CMAKE_CURRENT_LIST_DIR}/milter/harness.cpp
  LIBS mtasts_tlsmap_harness mtasts_daemon mtasts_dns mtasts_test_support)
add_dependencies(roll_integration_tests mta-sts-milter mta-sts-cached mta-sts-tlsmap mta-sts-next-codec)
target_compile_definitions(roll_integration_tests PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_MILTERTEST_DIR="${CMAKE_CURRENT_LIST_DIR}/miltertest"
  MTASTS_NEXT_CODEC_BIN="$<TARGET_FILE:mta-sts-next-codec>")
