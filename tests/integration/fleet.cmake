# The fleet on a real replicated Redis: primary, replica and three redis-sentinels on loopback,
# with the real fetcher, milter and mta-sts-tlsmap following a failover (issue 10).
mtasts_add_test(fleet_integration_tests integration
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/fleet/fleet_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/milter/harness.cpp
  LIBS mtasts_tlsmap_harness mtasts_daemon mtasts_dns mtasts_test_support)
add_dependencies(fleet_integration_tests mta-sts-milter mta-sts-cached mta-sts-tlsmap)
target_compile_definitions(fleet_integration_tests PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_MILTERTEST_DIR="${CMAKE_CURRENT_LIST_DIR}/miltertest")
# Two real fetchers on one Redis, one with its clock 10 minutes fast (libfaketime), one slow
# discovery longer than lock-ttl: the fleet clock and the claim keep-alive (issue 10).
mtasts_add_test(fleet_clock_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fleet/clock_test.cpp
  LIBS mtasts_daemon mtasts_dns mtasts_test_support)
add_dependencies(fleet_clock_tests mta-sts-cached)
# The Redis client when a server goes away or cannot answer: a fixed replica down or loading,
# a subscriber's host vanishing without a FIN, with the real mta-sts-tlsmap (issue 19, defect 5).
mtasts_add_test(fleet_adversity_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fleet/redis_adversity_test.cpp
  LIBS mtasts_tlsmap_harness mtasts_daemon mtasts_dns mtasts_test_support)
add_dependencies(fleet_adversity_tests mta-sts-tlsmap)
# A partition and its healing: the primary frozen (SIGSTOP) while Sentinel promotes one of two
# replicas, policies written only to it, two real fetchers and mta-sts-tlsmap (issue 19).
mtasts_add_test(fleet_partition_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fleet/partition_test.cpp
  LIBS mtasts_tlsmap_harness mtasts_daemon mtasts_dns mtasts_test_support)
add_dependencies(fleet_partition_tests mta-sts-cached mta-sts-tlsmap)
