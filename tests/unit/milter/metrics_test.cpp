// The milter's metrics: each decision counted under its decision and action labels, each end
// of message under its result, and lookups under what answered them.
#include "milter/metrics.hpp"

#include <gtest/gtest.h>

namespace mtasts::milter {
namespace {

std::string scrape() { return metrics::registry().render(); }

bool has(const std::string& text, const std::string& line) { return text.find("\n" + line + "\n") != std::string::npos; }

TEST(MilterMetrics, DecisionsAndMessagesUnderTheirLabels) {
  MilterMetrics& m = milter_metrics();
  Decision d;
  d.status = Status::enforce;
  d.action = Action::tag;
  m.decided(d);
  m.decided(d);
  d.status = Status::error;
  d.action = Action::tempfail;
  m.decided(d);
  d.status = Status::no_policy;
  d.action = Action::pass;
  m.decided(d);
  m.message(MessageResult::tagged);
  m.message(MessageResult::opted_out);
  m.message(MessageResult::tlsrpt);
  const std::string text = scrape();
  EXPECT_TRUE(has(text, R"(mta_sts_milter_recipient_domains_total{decision="enforce",action="tag"} 2)")) << text;
  EXPECT_TRUE(has(text, R"(mta_sts_milter_recipient_domains_total{decision="redis-error",action="tempfail"} 1)"));
  EXPECT_TRUE(has(text, R"(mta_sts_milter_recipient_domains_total{decision="no-policy",action="pass"} 1)"));
  EXPECT_TRUE(has(text, R"(mta_sts_milter_recipient_domains_total{decision="unknown",action="pass"} 0)"));
  EXPECT_TRUE(has(text, R"(mta_sts_milter_messages_total{result="tagged"} 1)"));
  EXPECT_TRUE(has(text, R"(mta_sts_milter_messages_total{result="opted-out"} 1)"));
  EXPECT_TRUE(has(text, R"(mta_sts_milter_messages_total{result="tlsrpt"} 1)"));
  EXPECT_TRUE(has(text, R"(mta_sts_milter_messages_total{result="untagged"} 0)"));
}

TEST(MilterMetrics, LookupsBySourceAndRedisErrors) {
  MilterMetrics& m = milter_metrics();
  LookupResult local;
  local.source = LookupSource::local;
  LookupResult failed;
  failed.failed = true;
  LookupResult miss;
  miss.source = LookupSource::redis;
  miss.miss_signalled = true;
  m.lookup.record(local);
  m.lookup.record(failed);
  m.lookup.record(miss);
  const std::string text = scrape();
  EXPECT_TRUE(has(text, R"(mta_sts_milter_lookup_duration_seconds_count{source="local"} 1)")) << text;
  EXPECT_TRUE(has(text, R"(mta_sts_milter_lookup_duration_seconds_count{source="failed"} 1)"));
  EXPECT_TRUE(has(text, R"(mta_sts_milter_lookup_duration_seconds_count{source="redis"} 1)"));
  EXPECT_TRUE(has(text, "mta_sts_milter_redis_errors_total 1"));
  EXPECT_TRUE(has(text, "mta_sts_milter_misses_signalled_total 1"));
}

}  // namespace
}  // namespace mtasts::milter
