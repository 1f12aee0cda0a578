# mta-sts-tlsmap, the real binary, against a real redis-server and dnsmasq, queried by our own
# socketmap client and by Postfix's postmap (a real Postfix socketmap client).
add_library(mtasts_tlsmap_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/tlsmap/harness.cpp)
target_include_directories(mtasts_tlsmap_harness PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(mtasts_tlsmap_harness PUBLIC mtasts_test_support mtasts_flags)
target_compile_definitions(mtasts_tlsmap_harness PRIVATE MTASTS_TLSMAP_BIN="$<TARGET_FILE:mta-sts-tlsmap>")
add_dependencies(mtasts_tlsmap_harness mta-sts-tlsmap)

mtasts_add_test(tlsmap_integration_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/tlsmap/tlsmap_test.cpp
  LIBS mtasts_tlsmap_harness mtasts_daemon mtasts_dns mtasts_test_support)
# Clients that misbehave (slowloris, unread pipelines) and DNS that hangs, against the real
# mta-sts-tlsmap (issue 18, defects 9 and 10).
mtasts_add_test(tlsmap_abuse_tests integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/tlsmap/abuse_test.cpp
  LIBS mtasts_tlsmap_harness mtasts_daemon mtasts_dns mtasts_test_support)
