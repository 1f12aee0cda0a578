# mta-sts-tlsmap's DNS side under load: one domain whose DNS hangs does not starve the others
# (real binary, redis-server, dnsmasq with a silent upstream).
mtasts_add_test(tlsmap_dns_integration_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/tlsmap/dns_starvation_test.cpp
  LIBS mtasts_tlsmap_harness mtasts_daemon mtasts_dns mtasts_test_support)
