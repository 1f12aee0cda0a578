# bench_tlsmap: socketmap lookups/s and p50/p99 of mta-sts-tlsmap (local-cache and Redis
# hits) next to Debian's postfix-mta-sts-resolver (internal and Redis cache), 1 and 8
# connections, and peak RSS with 100,000 domains cached (not a test).
#   build/<dir>/bench/bench_tlsmap [--domains D] [--seconds T] [--rss-domains R] [--no-peer]
add_executable(bench_tlsmap ${CMAKE_CURRENT_LIST_DIR}/tlsmap/bench_tlsmap.cpp)
target_include_directories(bench_tlsmap PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(bench_tlsmap PRIVATE mtasts_tlsmap_harness mtasts_daemon mtasts_dns mtasts_test_support mtasts_flags)
add_dependencies(bench_tlsmap mta-sts-tlsmap)
target_compile_definitions(bench_tlsmap PRIVATE MTASTS_PEER_DAEMON="${CMAKE_CURRENT_LIST_DIR}/tlsmap/peer_daemon.py")
