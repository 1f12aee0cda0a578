# Table-driven unit tests of the pure parsers (domain, TXT record, MX pattern, policy) and logging.
foreach(_t domain txt_record mx_pattern policy log)
  mtasts_add_test(common_${_t}_test unit
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/${_t}_test.cpp
    LIBS mtasts_sts)
endforeach()
