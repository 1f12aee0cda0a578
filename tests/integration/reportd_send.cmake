# mta-sts-reportd's sender against real components (issue 20): dnsmasq for the _smtp._tls
# records and the https: rua's host, the HTTPS sink of tests/support (python3, test CA), a
# sendmail-command script storing each message and its argv, a real redis-server for the
# claims and records. Time is a fake clock (backoff), everything else is real.
mtasts_add_test(reportd_send_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/reportd_send/send_test.cpp
  LIBS mtasts_reportd_send mtasts_test_support ZLIB::ZLIB)
