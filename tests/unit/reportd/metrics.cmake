# mta-sts-reportd's metrics (reportd/metrics.hpp): every series from the start, no domain label.
mtasts_add_test(reportd_metrics_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/metrics_test.cpp
  LIBS mtasts_reportd_metrics)
