# Unit tests of the milter's core (no libmilter, no Redis): recipient parsing, decisions and
# header text and the socket option (the lookup's tests are in unit/common/lookup.cmake).
mtasts_add_test(milter_unit_tests unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/recipient_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/decision_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/socket_spec_test.cpp
  LIBS mtasts_milter_core)
