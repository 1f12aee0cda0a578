# The .deb: cpack builds it from this tree, dpkg installs it (root), man and the binaries work
# from their installed places, then it is removed and purged.
mtasts_add_test(install_test e2e
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/install/install_test.cpp
  LIBS mtasts_test_support)
add_dependencies(install_test mta-sts-milter mta-sts-cached mta-sts-ctl mta-sts-tlsmap mtasts_man)
