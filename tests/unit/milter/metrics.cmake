# The milter's metrics (milter/metrics.hpp).
mtasts_add_test(milter_metrics_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/metrics_test.cpp
  LIBS mtasts_milter_core)
