# Unit tests of the milter's core (no libmilter, no Redis): recipient parsing, decisions and
# header text, the local cache and lookup with a fake clock and a fake source, statistics and
# the socket option.
mtasts_add_test(milter_unit_tests unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/recipient_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/decision_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/lookup_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/stats_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/socket_spec_test.cpp
  LIBS mtasts_milter_core)
