# Unit tests of the infrastructure half of common/: cache entries, configuration, daemon
# helpers, Redis address parsing.
mtasts_add_test(cache_entry_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cache_entry_test.cpp
  LIBS mtasts_daemon mtasts_dns)
mtasts_add_test(config_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/config_test.cpp
  LIBS mtasts_daemon mtasts_dns mtasts_test_support)
mtasts_add_test(daemon_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/daemon_test.cpp
  LIBS mtasts_daemon mtasts_dns mtasts_test_support)
mtasts_add_test(redis_address_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/redis_address_test.cpp
  LIBS mtasts_daemon mtasts_dns)
