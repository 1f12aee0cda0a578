# Integration tests of the fetcher against the loopback world (dnsmasq, nginx, test CA, Redis):
# discovery with the production resolver and HTTPS client; the worker's cache rules over real
# servers; the mta-sts-cached binary itself (signals, Redis restarts, two fetchers).
mtasts_add_test(cached_fetch_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cached/fetch_test.cpp
  LIBS mtasts_fetch mtasts_test_support)
mtasts_add_test(cached_rules_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cached/cache_rules_test.cpp
  LIBS mtasts_fetch mtasts_test_support)
mtasts_add_test(cached_daemon_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cached/daemon_test.cpp
  LIBS mtasts_daemon mtasts_dns mtasts_test_support)
# The daemon tests run the binary: build it with them.
add_dependencies(cached_daemon_tests mta-sts-cached)
# The claim keeper (cached/claims) against a real Redis: claims stay held while a task works,
# expire once it stops, and a claim taken over is marked lost, never taken back.
mtasts_add_test(cached_claims_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cached/claims_test.cpp
  LIBS mtasts_fetch mtasts_test_support)
# The queues under a compromised MTA host (issue 19): the shipped ACL users on a real Redis, the
# milter's user writing garbage members and scores, the real fetcher and its store.
mtasts_add_test(cached_adversity_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cached/adversity_test.cpp
  LIBS mtasts_fetch mtasts_test_support)
add_dependencies(cached_adversity_tests mta-sts-cached)
# The real fetcher with Redis stopped during a long discovery (issue 19): the claim keeper's
# retries back off.
mtasts_add_test(cached_outage_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/cached/outage_test.cpp
  LIBS mtasts_fetch mtasts_test_support)
add_dependencies(cached_outage_tests mta-sts-cached)
