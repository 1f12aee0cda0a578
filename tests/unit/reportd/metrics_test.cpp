#include "reportd/metrics.hpp"

#include <gtest/gtest.h>

#include <string>

namespace mtasts::reportd {
namespace {

TEST(ReportdMetrics, EveryResultTypeIsASeriesFromTheStart) {
  metrics::Registry r;
  ReportdMetrics m(r);
  m.session(tlsrpt::Result::success);
  m.session(tlsrpt::Result::success);
  m.session(tlsrpt::Result::certificate_expired);
  m.flushes_duplicate.inc();
  const std::string text = r.render();
  EXPECT_NE(text.find("mta_sts_reportd_sessions_total{result=\"success\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mta_sts_reportd_sessions_total{result=\"certificate-expired\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("mta_sts_reportd_sessions_total{result=\"sts-webpki-invalid\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("mta_sts_reportd_flushes_total{outcome=\"duplicate\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("mta_sts_reportd_flushes_total{outcome=\"error\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("mta_sts_reportd_failure_details_dropped_total 0\n"), std::string::npos);
  EXPECT_NE(text.find("mta_sts_reportd_spooled_batches 0\n"), std::string::npos);
  EXPECT_EQ(text.find("domain="), std::string::npos);
  std::size_t series = 0;
  for (std::size_t at = 0; (at = text.find("\nmta_sts_reportd_sessions_total{", at)) != std::string::npos; ++at) ++series;
  EXPECT_EQ(series, tlsrpt::kResultCount);
}

}  // namespace
}  // namespace mtasts::reportd
