# The fleet clock (common/fleet_clock): offset arithmetic, discarded samples, failures.
mtasts_add_test(fleet_clock_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/fleet_clock_test.cpp
  LIBS mtasts_daemon mtasts_dns)
