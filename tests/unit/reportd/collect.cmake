# mta-sts-reportd's collectors (reportd/collect): the Postfix and Sendmail log parsers on real
# log lines, the policy attach, the file follower, the libtlsrpt socket, the journal reader and
# the durable spool (with the real batch codec, common/tlsrpt/batch_codec.cpp).
file(GLOB _collect_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/collect_*_test.cpp)
mtasts_add_test(reportd_collect_test unit
  SOURCES ${_collect_tests}
  LIBS mtasts_reportd_collect)
target_compile_definitions(reportd_collect_test PRIVATE
  MTASTS_FIXTURES="${PROJECT_SOURCE_DIR}/tests/fixtures/reportd")
