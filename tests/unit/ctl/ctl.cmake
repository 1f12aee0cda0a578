# mta-sts-ctl unit tests: the subcommands' logic and output, without a process or a server.
mtasts_add_test(ctl_commands_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/commands_test.cpp ${CMAKE_CURRENT_LIST_DIR}/mini_json_test.cpp
  LIBS mtasts_ctl)
