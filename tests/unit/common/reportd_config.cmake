# The [reportd] section of mta-sts-reportd (issue 20).
mtasts_add_test(reportd_config_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/reportd_config_test.cpp
  LIBS mtasts_daemon mtasts_test_support)
