# The .deb: cpack builds it from this tree, dpkg installs it (root), man and the binaries work
# from their installed places, the machine's own chrooted Postfix with the shipped snippet and
# the daemons started as their units say tag a message, then it is removed and purged.
# RUN_SERIAL: the first-install scenario refuses to start while any Postfix master runs, and
# the delivery tests run Postfix masters of their own; ctest runs nothing beside this test.
add_executable(install_test
  ${CMAKE_CURRENT_LIST_DIR}/install/install_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/milter/mail_env.cpp
  ${PROJECT_SOURCE_DIR}/tests/integration/milter/harness.cpp)
target_include_directories(install_test PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(install_test PRIVATE mtasts_milter_core mtasts_test_support GTest::gtest GTest::gmock
  GTest::gtest_main mtasts_flags)
gtest_discover_tests(install_test PROPERTIES LABELS e2e RUN_SERIAL TRUE DISCOVERY_TIMEOUT 30)
add_dependencies(e2e_tests install_test)
add_dependencies(install_test mta-sts-milter mta-sts-cached mta-sts-ctl mta-sts-tlsmap mta-sts-reportd mtasts_man)
target_compile_definitions(install_test PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_CACHED_BIN="$<TARGET_FILE:mta-sts-cached>"
  MTASTS_MILTERTEST_DIR="${PROJECT_SOURCE_DIR}/tests/integration/miltertest")
