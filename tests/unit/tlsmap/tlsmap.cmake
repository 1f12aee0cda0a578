# Unit tests of mta-sts-tlsmap's core: the netstring reader, request parsing and key
# normalisation, every reply row, the DANE decision and the MX set over a fake resolver, the
# responder over a fake source and a fake clock, and the server's pipelining over socketpairs.
mtasts_add_test(tlsmap_unit_tests unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/netstring_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/request_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/reply_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/mx_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/responder_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/server_test.cpp
  LIBS mtasts_tlsmap_core)
