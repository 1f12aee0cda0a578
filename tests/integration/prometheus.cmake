# The shipped Prometheus files (etc/prometheus/): the alert rules and the scrape example are
# valid for promtool, and every alert fires on the trouble it describes and stays quiet on a
# healthy fleet (tests/prometheus/mta-sts.rules.test.yml). Fast and server-free: label unit.
find_program(MTASTS_PROMTOOL promtool)
if(NOT MTASTS_PROMTOOL)
  set(MTASTS_PROMTOOL promtool)  # the test fails, naming it: scripts/install-deps.sh installs it
endif()
add_test(NAME prometheus_rules_check
  COMMAND ${MTASTS_PROMTOOL} check rules ${PROJECT_SOURCE_DIR}/etc/prometheus/mta-sts.rules.yml)
add_test(NAME prometheus_config_check
  COMMAND ${MTASTS_PROMTOOL} check config ${PROJECT_SOURCE_DIR}/etc/prometheus/prometheus.yml)
add_test(NAME prometheus_rules_test
  COMMAND ${MTASTS_PROMTOOL} test rules mta-sts.rules.test.yml
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests/prometheus)
set_tests_properties(prometheus_rules_check prometheus_config_check prometheus_rules_test PROPERTIES LABELS unit)
