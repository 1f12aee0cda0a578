# mta-sts-tlsmap's metrics (tlsmap/metrics.hpp) through the responder over fakes.
mtasts_add_test(tlsmap_metrics_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/metrics_test.cpp
  LIBS mtasts_tlsmap_core)
