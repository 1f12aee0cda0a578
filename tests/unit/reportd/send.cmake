# Unit tests of mta-sts-reportd's sender (reportd/send/): the report message read back by
# Python's email package, the sendmail transport with a script, and the sending rules over
# fake DNS, transports and clock with a real redis-server on a private unix socket.
mtasts_add_test(reportd_send_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/send_test.cpp
  LIBS mtasts_reportd_send mtasts_test_support ZLIB::ZLIB)
