# MTA-STS enforced at delivery (issue 9): real Postfix and Sendmail asking mta-sts-tlsmap,
# delivering to real STARTTLS MX hosts in a network namespace of the test's own, with the real
# fetcher filling Redis from the loopback world. Needs root (skips otherwise).
if(TARGET mta-sts-tlsmap)
  set(_dlv_tlsmap_bin "$<TARGET_FILE:mta-sts-tlsmap>")
else()
  # Until the tlsmap/ directory exists the tests build and skip with a clear reason.
  set(_dlv_tlsmap_bin "${PROJECT_BINARY_DIR}/tlsmap/mta-sts-tlsmap")
endif()
# The delivery world and its helpers, compiled once for every test and program below.
add_library(mtasts_delivery_world STATIC
  ${CMAKE_CURRENT_LIST_DIR}/deliver/delivery_world.cpp
  ${CMAKE_CURRENT_LIST_DIR}/deliver/tls_cases.cpp
  ${CMAKE_CURRENT_LIST_DIR}/milter/mail_env.cpp
  ${PROJECT_SOURCE_DIR}/tests/integration/milter/harness.cpp)
target_include_directories(mtasts_delivery_world PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(mtasts_delivery_world PUBLIC mtasts_milter_core mtasts_test_support mtasts_flags)
target_compile_definitions(mtasts_delivery_world PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_CACHED_BIN="$<TARGET_FILE:mta-sts-cached>"
  MTASTS_TLSMAP_BIN="${_dlv_tlsmap_bin}"
  MTASTS_MILTERTEST_DIR="${PROJECT_SOURCE_DIR}/tests/integration/miltertest")

foreach(_mta postfix sendmail dane tlsrpt_world)
  mtasts_add_test(deliver_${_mta}_e2e e2e
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/deliver/${_mta}_test.cpp
    LIBS mtasts_delivery_world)
  add_dependencies(deliver_${_mta}_e2e mta-sts-cached mta-sts-milter)
  if(TARGET mta-sts-tlsmap)
    add_dependencies(deliver_${_mta}_e2e mta-sts-tlsmap)
  endif()
  target_compile_definitions(deliver_${_mta}_e2e PRIVATE
    MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
    MTASTS_CACHED_BIN="$<TARGET_FILE:mta-sts-cached>"
    MTASTS_TLSMAP_BIN="${_dlv_tlsmap_bin}"
    MTASTS_MILTERTEST_DIR="${PROJECT_SOURCE_DIR}/tests/integration/miltertest")
endforeach()

# mta-sts-reportd end to end (issue 20): real Postfix, OpenDKIM, the report sinks. Until
# reportd/main.cpp exists the test builds and skips with a clear reason.
if(TARGET mta-sts-reportd)
  set(_dlv_reportd_bin "$<TARGET_FILE:mta-sts-reportd>")
else()
  set(_dlv_reportd_bin "${PROJECT_BINARY_DIR}/reportd/mta-sts-reportd")
endif()
mtasts_add_test(deliver_reportd_e2e e2e
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/deliver/reportd_test.cpp
  LIBS mtasts_delivery_world)
add_dependencies(deliver_reportd_e2e mta-sts-cached mta-sts-milter mta-sts-ctl)
foreach(_t mta-sts-tlsmap mta-sts-reportd)
  if(TARGET ${_t})
    add_dependencies(deliver_reportd_e2e ${_t})
  endif()
endforeach()
target_compile_definitions(deliver_reportd_e2e PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_CACHED_BIN="$<TARGET_FILE:mta-sts-cached>"
  MTASTS_TLSMAP_BIN="${_dlv_tlsmap_bin}"
  MTASTS_REPORTD_BIN="${_dlv_reportd_bin}"
  MTASTS_CTL_BIN="$<TARGET_FILE:mta-sts-ctl>"
  MTASTS_MILTERTEST_DIR="${PROJECT_SOURCE_DIR}/tests/integration/miltertest")

# The delivery demo (scripts/demo.sh runs it last): not a test. Built beside mtasts-world.
add_executable(mtasts-delivery-demo ${CMAKE_CURRENT_LIST_DIR}/deliver/demo_main.cpp)
target_link_libraries(mtasts-delivery-demo PRIVATE mtasts_delivery_world)
add_dependencies(mtasts-delivery-demo mta-sts-cached)
if(TARGET mta-sts-tlsmap)
  add_dependencies(mtasts-delivery-demo mta-sts-tlsmap)
endif()
target_compile_definitions(mtasts-delivery-demo PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_CACHED_BIN="$<TARGET_FILE:mta-sts-cached>"
  MTASTS_TLSMAP_BIN="${_dlv_tlsmap_bin}"
  MTASTS_MILTERTEST_DIR="${PROJECT_SOURCE_DIR}/tests/integration/miltertest")
set_target_properties(mtasts-delivery-demo PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests/world)

# The TLS-RPT fixtures (tests/fixtures/reportd/) regenerated from real Postfix and Sendmail
# logs: not a test (its output differs at every run); run by hand as root.
add_executable(mtasts-reportd-fixtures ${CMAKE_CURRENT_LIST_DIR}/deliver/fixtures_main.cpp)
target_link_libraries(mtasts-reportd-fixtures PRIVATE mtasts_delivery_world)
add_dependencies(mtasts-reportd-fixtures mta-sts-cached)
if(TARGET mta-sts-tlsmap)
  add_dependencies(mtasts-reportd-fixtures mta-sts-tlsmap)
endif()
target_compile_definitions(mtasts-reportd-fixtures PRIVATE
  MTASTS_MILTER_BIN="$<TARGET_FILE:mta-sts-milter>"
  MTASTS_CACHED_BIN="$<TARGET_FILE:mta-sts-cached>"
  MTASTS_TLSMAP_BIN="${_dlv_tlsmap_bin}"
  MTASTS_MILTERTEST_DIR="${PROJECT_SOURCE_DIR}/tests/integration/miltertest")
set_target_properties(mtasts-reportd-fixtures PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests/world)

# The TLS-RPT report validator (tests/support/validate_tlsrpt.py, python3-jsonschema) and the
# JSON Schema written from RFC 8460 (tests/fixtures/reportd/tlsrpt-report.schema.json).
add_test(NAME TlsRptValidator.AcceptsValidRejectsMissingPolicyDomainAndBadMail
  COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/tests/support/validate_tlsrpt_test.py)
set_tests_properties(TlsRptValidator.AcceptsValidRejectsMissingPolicyDomainAndBadMail PROPERTIES LABELS integration)
