# The loopback test world (tests/support/world.hpp) and its CLI, checked with drill and curl.
mtasts_add_test(world_test integration
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/world_test.cpp
  LIBS mtasts_test_support)
add_dependencies(world_test mtasts-world)
