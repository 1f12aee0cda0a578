# The .deb: cpack builds it from this tree, dpkg installs it (root), man and the binaries work
# from their installed places, the machine's own chrooted Postfix with the shipped snippet and
# the daemons started as their units say tag a message, then it is removed and purged.
mtasts_add_test(install_test e2e
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/install/install_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/milter/mail_env.cpp
    ${PROJECT_SOURCE_DIR}/tests/integration/milter/harness.cpp
  LIBS mtasts_milter_core mtasts_test_support)
add_dependencies(install_test mta-sts-milter mta-sts-cached mta-sts-ctl mta-sts-tlsmap mtasts_man)
target_compile_definitions(install_test PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_CACHED_BIN="$<TARGET_FILE:mta-sts-cached>"
  MTASTS_MILTERTEST_DIR="${PROJECT_SOURCE_DIR}/tests/integration/miltertest")
