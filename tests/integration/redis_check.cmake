# Per-program Redis users and --check-redis of the four real binaries against a real
# redis-server loaded with the shipped ACL users of etc/redis-acl.conf.
mtasts_add_test(redis_check_test integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/redis_check/redis_check_test.cpp
  LIBS mtasts_daemon mtasts_dns mtasts_test_support)
add_dependencies(redis_check_test mta-sts-milter mta-sts-cached mta-sts-ctl mta-sts-tlsmap)
target_compile_definitions(redis_check_test PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_CACHED_BIN="$<TARGET_FILE:mta-sts-cached>"
  MTASTS_CTL_BIN="$<TARGET_FILE:mta-sts-ctl>"
  MTASTS_TLSMAP_BIN="$<TARGET_FILE:mta-sts-tlsmap>")
# Redis server settings that put the fleet's data at risk (issue 19): --check-redis warnings
# (maxmemory-policy, persistence), and a full Redis (maxmemory, noeviction) with the real
# fetcher and mta-sts-tlsmap.
mtasts_add_test(redis_server_settings_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/redis_check/server_settings_test.cpp
  LIBS mtasts_tlsmap_harness mtasts_daemon mtasts_dns mtasts_test_support)
add_dependencies(redis_server_settings_tests mta-sts-cached mta-sts-tlsmap)
