# The fleet's TLS-RPT aggregates (common/fleet/report_store) against a real redis-server:
# exactly-once batches, hosts summed, caps, untrusted fields, expiry, the ACL (issue 20).
mtasts_add_test(report_store_test integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/report_store_test.cpp
  LIBS mtasts_fleet mtasts_test_support)
