# RFC 8460 model (common/tlsrpt): result names, days, policy identity, batches.
file(GLOB _tlsrpt_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/tlsrpt_*_test.cpp)
mtasts_add_test(common_tlsrpt_test unit
  SOURCES ${_tlsrpt_tests}
  LIBS mtasts_tlsrpt)
