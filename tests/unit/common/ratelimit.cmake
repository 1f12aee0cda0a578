# FailureLog: the rate limit of repeated failure lines (milter lookups during a Redis outage).
mtasts_add_test(ratelimit_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/ratelimit_test.cpp
  LIBS mtasts_daemon mtasts_dns)
