# Integration tests of the fetcher against the loopback world (dnsmasq, nginx, test CA, Redis):
# discovery with the production resolver and HTTPS client; the worker's cache rules over real
# servers; the mta-sts-cached binary itself (signals, Redis restarts, two fetchers).
mtasts_add_test(cached_fetch_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cached/fetch_test.cpp
  LIBS mtasts_fetch mtasts_test_support)
