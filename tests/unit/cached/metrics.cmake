# The fetcher's metrics (cached/metrics.hpp) over fakes.
mtasts_add_test(cached_metrics_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/metrics_test.cpp
  LIBS mtasts_fetch)
