# The metrics registry and text format (common/util/metrics.hpp), and the metrics-listen option.
mtasts_add_test(metrics_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/metrics_test.cpp
  LIBS mtasts_daemon mtasts_dns mtasts_test_support)
