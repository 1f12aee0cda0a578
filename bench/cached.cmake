# bench_cached: warm and refresh passes of the fetcher over N loopback domains (not a test).
#   build/<dir>/bench/bench_cached [--domains N] [--concurrency C]
add_executable(bench_cached ${CMAKE_CURRENT_LIST_DIR}/cached/bench_cached.cpp)
target_include_directories(bench_cached PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(bench_cached PRIVATE mtasts_fetch mtasts_test_support mtasts_flags)
