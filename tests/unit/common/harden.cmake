# Unit tests of the hardening work (issue 12) that have no other home: kernel randomness.
mtasts_add_test(random_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/random_test.cpp
  LIBS mtasts_daemon mtasts_dns)
# The production DNS client against a scripted server on loopback UDP (hostile answers).
mtasts_add_test(dns_answer_test unit
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/dns_answer_test.cpp
  LIBS mtasts_daemon mtasts_dns)
