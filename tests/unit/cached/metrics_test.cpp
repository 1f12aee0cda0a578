// The fetcher's metrics: outcomes under their Prometheus label values, downgrades counted only
// from an enforce policy to a weaker one or to no policy (never for a failure, which keeps the
// cached policy), and the DNS decorator timing each query under its record type.
#include "cached/metrics.hpp"

#include <gtest/gtest.h>

#include "tests/fakes/cache_entries.hpp"
#include "tests/fakes/fake_resolver.hpp"

namespace mtasts::worker {
namespace {

using test::policy_entry;

const SysTime kNow{Seconds{1'800'000'000}};

discovery::Report valid(Mode m) {
  discovery::Report r;
  r.status = discovery::Status::valid;
  Policy p;
  p.mode = m;
  r.policy = p;
  return r;
}

discovery::Report with_status(discovery::Status s) {
  discovery::Report r;
  r.status = s;
  return r;
}

std::uint64_t downgrades(std::size_t i) { return fetcher_metrics().downgrades[i]->value(); }

TEST(FetcherMetrics, DowngradesFromEnforceOnly) {
  FetcherMetrics& m = fetcher_metrics();
  const auto enforce = std::optional<CacheEntry>(policy_entry(Mode::enforce, "a", {"mx.example.com"}, kNow));
  const auto testing = std::optional<CacheEntry>(policy_entry(Mode::testing, "a", {"mx.example.com"}, kNow));
  const std::uint64_t t0 = downgrades(0), n0 = downgrades(1), g0 = downgrades(2);

  m.downgrade(enforce, valid(Mode::testing));
  EXPECT_EQ(downgrades(0), t0 + 1);
  m.downgrade(enforce, valid(Mode::none));
  EXPECT_EQ(downgrades(1), n0 + 1);
  m.downgrade(enforce, with_status(discovery::Status::no_policy));
  EXPECT_EQ(downgrades(2), g0 + 1);

  // Not downgrades: the same mode, a failure (the cached policy stays), an unchanged id,
  // testing to none, and a first discovery.
  m.downgrade(enforce, valid(Mode::enforce));
  m.downgrade(enforce, with_status(discovery::Status::dns_error));
  m.downgrade(enforce, with_status(discovery::Status::fetch_error));
  m.downgrade(enforce, with_status(discovery::Status::unchanged));
  m.downgrade(testing, valid(Mode::none));
  m.downgrade(std::nullopt, valid(Mode::none));
  EXPECT_EQ(downgrades(0), t0 + 1);
  EXPECT_EQ(downgrades(1), n0 + 1);
  EXPECT_EQ(downgrades(2), g0 + 1);
}

TEST(FetcherMetrics, OutcomesUseTheirLabelValues) {
  fetcher_metrics().discovery(discovery::Status::dns_error);
  fetcher_metrics().discovery(discovery::Status::policy_invalid);
  const std::string text = metrics::registry().render();
  for (const char* o : {"valid", "no-policy", "dns-error", "fetch-error", "policy-invalid", "unchanged"})
    EXPECT_NE(text.find(std::string("mta_sts_cached_discoveries_total{outcome=\"") + o + "\"} "), std::string::npos)
        << o;
  EXPECT_EQ(fetcher_metrics().discoveries[static_cast<std::size_t>(discovery::Status::dns_error)]->value(), 1u);
}

TEST(FetcherMetrics, TimedResolverRecordsEachQueryByType) {
  auto fake = std::make_shared<test::FakeResolver>();
  fake->set_txt("_mta-sts.example.com", {"v=STSv1; id=1;"});
  auto r = timed(fake);
  auto& txt = metrics::registry().histogram("mta_sts_cached_dns_duration_seconds", "", {{"type", "TXT"}});
  auto& a = metrics::registry().histogram("mta_sts_cached_dns_duration_seconds", "", {{"type", "A"}});
  const auto count = [](const metrics::Histogram& h) {
    std::uint64_t n = 0;
    for (auto c : h.counts()) n += c;
    return n;
  };
  const auto txt0 = count(txt), a0 = count(a);
  EXPECT_EQ(r->txt("_mta-sts.example.com").records.size(), 1u);  // the answer passes through
  (void)r->address("mta-sts.example.com", dns::AddressFamily::v4);
  (void)r->txt("_mta-sts.example.org");
  EXPECT_EQ(count(txt), txt0 + 2);
  EXPECT_EQ(count(a), a0 + 1);
}

}  // namespace
}  // namespace mtasts::worker
