# mta-sts-ctl, the real binary: exit codes and JSON of every subcommand, `query` against the
# loopback DNS + HTTPS world, `cache` against a real redis-server.
mtasts_add_test(ctl_integration_test integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/ctl/ctl_test.cpp
  LIBS mtasts_daemon mtasts_dns mtasts_test_support)
add_dependencies(ctl_integration_test mta-sts-ctl)
target_compile_definitions(ctl_integration_test PRIVATE MTASTS_CTL_BIN="$<TARGET_FILE:mta-sts-ctl>")
