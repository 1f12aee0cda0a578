# mta-sts-reportd's collectors (reportd/collect): the Postfix and Sendmail log parsers on real
# log lines, the policy attach, the file follower, the libtlsrpt socket, the journal reader and
# the durable spool. The batch codec here is a test double (batch_codec_double.cpp) until the
# real one (common/tlsrpt/batch_codec.cpp) is merged.
file(GLOB _collect_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/collect_*_test.cpp)
set(_collect_double)
if(NOT EXISTS ${PROJECT_SOURCE_DIR}/common/tlsrpt/batch_codec.cpp)
  set(_collect_double ${CMAKE_CURRENT_LIST_DIR}/batch_codec_double.cpp)
endif()
mtasts_add_test(reportd_collect_test unit
  SOURCES ${_collect_tests} ${_collect_double}
  LIBS mtasts_reportd_collect)
target_compile_definitions(reportd_collect_test PRIVATE
  MTASTS_FIXTURES="${PROJECT_SOURCE_DIR}/tests/fixtures/reportd")
