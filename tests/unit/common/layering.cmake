# The direction of dependency between common/'s libraries (cmake/CheckLayers.cmake): the real
# tree keeps it, and each kind of violation, planted in a copy of the tree, is caught.
add_test(NAME Layering.Tree
  COMMAND ${CMAKE_COMMAND} -DROOT=${PROJECT_SOURCE_DIR} -P ${PROJECT_SOURCE_DIR}/cmake/CheckLayers.cmake)
foreach(_case sts_includes_fleet sts_includes_dns sts_includes_daemon util_includes_sts
              fleet_includes_daemon sts_includes_hiredis fleet_includes_ldns loose_file)
  add_test(NAME Layering.Catches.${_case}
    COMMAND ${CMAKE_COMMAND} -DROOT=${PROJECT_SOURCE_DIR} -DWORK=${CMAKE_CURRENT_BINARY_DIR}/layering/${_case}
      -DCASE=${_case} -P ${CMAKE_CURRENT_LIST_DIR}/layering/plant.cmake)
endforeach()
set_tests_properties(Layering.Tree PROPERTIES LABELS unit)
foreach(_case sts_includes_fleet sts_includes_dns sts_includes_daemon util_includes_sts
              fleet_includes_daemon sts_includes_hiredis fleet_includes_ldns loose_file)
  set_tests_properties(Layering.Catches.${_case} PROPERTIES LABELS unit)
endforeach()
