# Manuals and example configuration against the code: option lists, defaults, mandoc lint,
# the Redis ACL example against a real redis-server, the MTA snippets (postconf reads them).
mtasts_add_test(docs_test integration
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/docs/docs_test.cpp
  LIBS mtasts_daemon mtasts_dns mtasts_test_support)
add_dependencies(docs_test mta-sts-ctl)
target_compile_definitions(docs_test PRIVATE MTASTS_CTL_BIN="$<TARGET_FILE:mta-sts-ctl>")
