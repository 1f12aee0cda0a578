# Integration tests of the Redis layer and the policy store against a real redis-server.
mtasts_add_test(redis_test integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/redis_test.cpp
  LIBS mtasts_daemon mtasts_dns mtasts_test_support)
mtasts_add_test(store_test integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/store_test.cpp
  LIBS mtasts_daemon mtasts_dns mtasts_test_support)
