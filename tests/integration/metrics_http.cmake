# The metrics endpoint (common/daemon/metrics_http.hpp) on loopback, asked by curl.
mtasts_add_test(metrics_http_test integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/metrics_http_test.cpp
  LIBS mtasts_metrics_http mtasts_test_support)
add_dependencies(metrics_http_test mta-sts-tlsmap)
target_compile_definitions(metrics_http_test PRIVATE MTASTS_TLSMAP_BIN="$<TARGET_FILE:mta-sts-tlsmap>")
