# Unit tests of the fetcher (cached/): discovery and the RFC 8461 refresh rules over fake DNS,
# HTTPS and clock; the scheduling rules; the worker over the same fakes with a real redis-server on a unix socket.
mtasts_add_test(cached_unit_tests unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/discovery_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/refresh_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/schedule_test.cpp
  LIBS mtasts_fetch)
mtasts_add_test(cached_worker_tests unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/worker_test.cpp
  LIBS mtasts_fetch mtasts_test_support)
