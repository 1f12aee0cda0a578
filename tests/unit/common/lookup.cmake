# Unit tests of the policy lookup shared by the milter and mta-sts-tlsmap: the local cache
# and lookup with a fake clock and a fake source, and the latency statistics.
mtasts_add_test(lookup_unit_tests unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/lookup_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/lookup_held_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/lookup_stats_test.cpp
  LIBS mtasts_daemon mtasts_dns)
