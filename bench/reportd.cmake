# bench_reportd: Postfix log lines parsed per second on one core by mta-sts-reportd's
# collector (real Postfix 3.7 lines replicated with varying PIDs and queue ids), and the
# spool checkpoint cost (not a test).
#   build/<dir>/bench/bench_reportd [--lines N] [LOGFILE]
# Until common/tlsrpt/batch_codec.cpp is merged, the unit tests' marked test double encodes
# the batch of the checkpoint figure.
set(_bench_codec)
if(NOT EXISTS ${PROJECT_SOURCE_DIR}/common/tlsrpt/batch_codec.cpp)
  set(_bench_codec ${PROJECT_SOURCE_DIR}/tests/unit/reportd/batch_codec_double.cpp)
endif()
add_executable(bench_reportd ${CMAKE_CURRENT_LIST_DIR}/reportd/bench_reportd.cpp ${_bench_codec})
target_include_directories(bench_reportd PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(bench_reportd PRIVATE mtasts_reportd_collect mtasts_flags)
target_compile_definitions(bench_reportd PRIVATE
  MTASTS_BENCH_LOGS="${PROJECT_SOURCE_DIR}/tests/fixtures/reportd/postfix-3.7.log")
