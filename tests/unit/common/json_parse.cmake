# The strict JSON reader for untrusted input (common/util/json_parse).
mtasts_add_test(json_parse_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/json_parse_test.cpp
  LIBS mtasts_util)
