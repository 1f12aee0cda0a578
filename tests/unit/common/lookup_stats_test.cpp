// Latency histogram: percentiles within a bucket's precision.
#include "common/fleet/lookup_stats.hpp"

#include <gtest/gtest.h>

namespace mtasts {
namespace {

using std::chrono::microseconds;
using std::chrono::nanoseconds;

TEST(LatencyHistogram, EmptyIsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(0.99).count(), 0);
}

TEST(LatencyHistogram, BucketsAreMonotonicAndTight) {
  std::size_t last = 0;
  for (std::uint64_t v = 0; v < 5'000'000; v = v < 64 ? v + 1 : v + v / 7) {
    const std::size_t b = LatencyHistogram::bucket_of(v);
    EXPECT_GE(b, last);
    last = b;
    const double mid = static_cast<double>(LatencyHistogram::bucket_mid(b));
    EXPECT_LE(std::abs(mid - static_cast<double>(v)), static_cast<double>(v) * 0.125 + 1) << v;
  }
}

TEST(LatencyHistogram, Percentiles) {
  LatencyHistogram h;
  for (int i = 0; i < 98; ++i) h.record(microseconds{50});
  h.record(microseconds{900});
  h.record(microseconds{5000});
  EXPECT_EQ(h.count(), 100u);
  EXPECT_NEAR(static_cast<double>(h.percentile(0.50).count()), 50'000, 50'000 * 0.125);
  EXPECT_NEAR(static_cast<double>(h.percentile(0.99).count()), 900'000, 900'000 * 0.125);
  EXPECT_NEAR(static_cast<double>(h.percentile(1.0).count()), 5'000'000, 5'000'000 * 0.125);
  h.reset();
  EXPECT_EQ(h.count(), 0u);
}

TEST(LookupStats, SummaryNamesEverySeries) {
  LookupStats s;
  s.local.record(nanoseconds{2000});
  const std::string t = s.summary();
  for (const char* k : {"local=1", "local_p50_us=", "redis=0", "redis_p99_us=", "failed=0", "misses_signalled=0"})
    EXPECT_NE(t.find(k), std::string::npos) << k << " in " << t;
}

}  // namespace
}  // namespace mtasts
