#include <gtest/gtest.h>

#include "common/sts/cache_entry.hpp"
#include "common/sts/policy.hpp"
#include "common/tlsrpt/batch.hpp"
#include "common/tlsrpt/model.hpp"

namespace mtasts::tlsrpt {
namespace {

TEST(TlsrptResult, EveryRegisteredNameRoundTrips) {
  const char* names[] = {"starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
                         "certificate-not-trusted", "validation-failure", "tlsa-invalid",
                         "dnssec-invalid", "dane-required", "sts-policy-fetch-error",
                         "sts-policy-invalid", "sts-webpki-invalid"};
  for (const char* n : names) {
    auto r = parse_result(n);
    ASSERT_TRUE(r) << n;
    EXPECT_TRUE(is_failure(*r));
    EXPECT_STREQ(to_string(*r), n);
  }
  EXPECT_EQ(parse_result("success"), Result::success);
  EXPECT_FALSE(parse_result("Certificate-Expired"));
  EXPECT_FALSE(parse_result(""));
  EXPECT_EQ(parse_policy_type("no-policy-found"), PolicyType::no_policy_found);
  EXPECT_FALSE(parse_policy_type("STS"));
}

TEST(TlsrptDay, UtcDaysAndTheirStart) {
  EXPECT_EQ(day_of(0), "1970-01-01");
  EXPECT_EQ(day_of(1796601599), "2026-12-06");  // 23:59:59Z
  EXPECT_EQ(day_of(1796601600), "2026-12-07");
  EXPECT_EQ(day_start("2026-12-07"), 1796601600);
  EXPECT_EQ(day_start("2024-02-29"), 1709164800);
  EXPECT_EQ(rfc3339(1796601600), "2026-12-07T00:00:00Z");
  for (const char* bad : {"2023-02-29", "2026-13-01", "2026-00-10", "2026-1-01", "2026-12-07x",
                          "20261207", "1969-12-31", "2026-12-32", "abcd-ef-gh", ""}) {
    EXPECT_FALSE(day_start(bad)) << bad;
  }
}

TEST(TlsrptPolicy, KeyIsStableAndSeparatesFields) {
  AppliedPolicy a{PolicyType::sts, {"version: STSv1", "mode: enforce"}, {"mx.example.com"}};
  AppliedPolicy b = a;
  EXPECT_EQ(a.key(), b.key());
  EXPECT_EQ(a.key().size(), 16u);
  b.mx_hosts = {"*.example.com"};
  EXPECT_NE(a.key(), b.key());
  // Moving text from one field to the next gives another key.
  AppliedPolicy c{PolicyType::sts, {"ab"}, {"c"}}, d{PolicyType::sts, {"a"}, {"bc"}};
  EXPECT_NE(c.key(), d.key());
  EXPECT_NE(AppliedPolicy{}.key(), (AppliedPolicy{PolicyType::tlsa, {}, {}}.key()));
}

TEST(TlsrptPolicy, FromACacheEntry) {
  CacheEntry e;
  EXPECT_EQ(applied_policy_of(e).type, PolicyType::no_policy_found);
  StoredPolicy sp;
  sp.raw = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n";
  auto parsed = parse_policy(sp.raw);
  ASSERT_TRUE(parsed.policy);
  sp.policy = *parsed.policy;
  e.policy = sp;
  const AppliedPolicy p = applied_policy_of(e);
  EXPECT_EQ(p.type, PolicyType::sts);
  EXPECT_EQ(p.strings, (std::vector<std::string>{"version: STSv1", "mode: enforce", "mx: mx1.example.com",
                                                 "mx: *.example.net", "max_age: 86400"}));
  EXPECT_EQ(p.mx_hosts, (std::vector<std::string>{"mx1.example.com", "*.example.net"}));
}

TEST(TlsrptBatch, CountsPerDayDomainAndPolicyAndCapsDetails) {
  Batch b;
  const AppliedPolicy p{PolicyType::sts, {"version: STSv1"}, {"mx.example.com"}};
  Session ok{1796601600 + 10, "example.com", Result::success, "mx.example.com", "192.0.2.1", "198.51.100.1", "", "", ""};
  Session bad = ok;
  bad.result = Result::certificate_expired;
  bad.additional_information = std::string(1000, 'x');
  b.add(ok, p);
  b.add(ok, p);
  b.add(bad, p);
  Session nextday = ok;
  nextday.time += 86400;
  b.add(nextday, p);
  ASSERT_EQ(b.entries().size(), 2u);
  const auto& e = b.entries().begin()->second;
  EXPECT_EQ(b.entries().begin()->first.day, "2026-12-07");
  EXPECT_EQ(e.counts.success, 2u);
  EXPECT_EQ(e.counts.failure, 1u);
  ASSERT_EQ(e.counts.details.size(), 1u);
  EXPECT_EQ(e.counts.details.begin()->first.additional_information.size(), kMaxAdditionalInformation);
  EXPECT_EQ(b.sessions(), 4u);

  Batch capped;
  for (int i = 0; i < 5; ++i) {
    Session f = bad;
    f.receiving_ip = "192.0.2." + std::to_string(i + 1);
    capped.add(f, p, 3);
  }
  const auto& c = capped.entries().begin()->second.counts;
  EXPECT_EQ(c.failure, 5u);
  EXPECT_EQ(c.details.size(), 3u);
  EXPECT_EQ(capped.dropped_details(), 2u);
}

}  // namespace
}  // namespace mtasts::tlsrpt
