# The [tlsmap] section of the configuration (mta-sts-tlsmap): defaults, every option from the
# file and the command line, the repeatable listen option, and its errors.
mtasts_add_test(tlsmap_config_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/tlsmap_config_test.cpp
  LIBS mtasts_daemon mtasts_dns mtasts_test_support)
