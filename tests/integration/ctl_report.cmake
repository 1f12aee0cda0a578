# `mta-sts-ctl report show|json`, the real binary against a real redis-server holding the
# fleet's TLS-RPT aggregates (issue 20); the report checked with python3-jsonschema.
mtasts_add_test(ctl_report_test integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/ctl/report_test.cpp
  LIBS mtasts_fleet mtasts_test_support)
add_dependencies(ctl_report_test mta-sts-ctl)
target_compile_definitions(ctl_report_test PRIVATE MTASTS_CTL_BIN="$<TARGET_FILE:mta-sts-ctl>"
  MTASTS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
