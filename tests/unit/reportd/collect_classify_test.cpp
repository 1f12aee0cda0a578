// Policy attach: the fleet cache entry at the session's time decides the policy type and the
// policy failures (sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid).
#include <gtest/gtest.h>

#include <map>

#include "reportd/collect/classify.hpp"
#include "reportd/collect/log_line.hpp"
#include "tests/fakes/cache_entries.hpp"

namespace mtasts::reportd {
namespace {

using tlsrpt::PolicyType;
using tlsrpt::Result;

class MapView final : public PolicyView {
 public:
  std::map<std::string, CacheEntry> entries;
  int reads = 0;
  std::optional<CacheEntry> entry(const Domain& d) override {
    ++reads;
    auto it = entries.find(d.str());
    if (it == entries.end()) return std::nullopt;
    return it->second;
  }
};

const SysTime kT{Seconds{civil_to_unix(2026, 12, 8, 0, 23, 58)}};

Outcome session(const std::string& domain, Result r, TlsSeen tls) {
  Outcome o;
  o.session.time = kT.time_since_epoch().count();
  o.session.domain = domain;
  o.session.result = r;
  o.session.receiving_mx_hostname = "mx." + domain;
  o.tls = tls;
  return o;
}

CacheEntry failed(FailureKind kind, const std::string& error, std::optional<CacheEntry> base = std::nullopt) {
  CacheEntry e = base ? *base : test::failure_entry(kT - Seconds{60});
  FailureState f;
  f.kind = kind;
  f.error = error;
  f.txt_id = "20261208";
  f.first_at = f.last_at = kT - Seconds{60};
  f.retry_after = kT + Seconds{240};
  f.count = 1;
  e.failure = f;
  return e;
}

TEST(Classify, EachCacheStateGivesItsPolicyAndResult) {
  MapView view;
  view.entries["enforce.test"] = test::policy_entry(Mode::enforce, "1", {"mx.enforce.test"}, kT - Seconds{3600});
  view.entries["testing.test"] = test::policy_entry(Mode::testing, "1", {"mx.testing.test"}, kT - Seconds{3600});
  view.entries["expired.test"] = test::policy_entry(Mode::enforce, "1", {"mx.expired.test"}, kT - Seconds{7200}, Seconds{3600});
  view.entries["negative.test"] = test::negative_entry(kT - Seconds{60});
  view.entries["fetch.test"] = failed(FailureKind::fetch, "Failed to connect to mta-sts.fetch.test port 443: Connection refused");
  view.entries["webpki.test"] = failed(FailureKind::fetch, "SSL certificate problem: certificate has expired");
  view.entries["invalid.test"] = failed(FailureKind::policy_invalid, "line 2: unknown mode");
  view.entries["dns.test"] = failed(FailureKind::dns, "SERVFAIL");
  view.entries["txt.test"] = failed(FailureKind::txt_invalid, "two STSv1 records");
  // A failure while an older policy is still usable: that policy is applied.
  view.entries["stale.test"] = failed(FailureKind::fetch, "timeout",
                                      test::policy_entry(Mode::enforce, "1", {"mx.stale.test"}, kT - Seconds{3600}));
  Classifier c(view);
  struct Row {
    const char* domain;
    Result in;
    TlsSeen tls;
    PolicyType type;
    Result out;
  };
  const Row rows[] = {
      {"enforce.test", Result::success, TlsSeen::verified, PolicyType::sts, Result::success},
      {"enforce.test", Result::certificate_expired, TlsSeen::untrusted, PolicyType::sts, Result::certificate_expired},
      // testing mode, Postfix delivered at "may": the untrusted certificate is a failure under the policy
      {"testing.test", Result::success, TlsSeen::untrusted, PolicyType::sts, Result::certificate_not_trusted},
      {"testing.test", Result::success, TlsSeen::anonymous, PolicyType::sts, Result::validation_failure},
      {"testing.test", Result::success, TlsSeen::trusted, PolicyType::sts, Result::success},
      {"expired.test", Result::success, TlsSeen::verified, PolicyType::no_policy_found, Result::success},
      {"negative.test", Result::success, TlsSeen::untrusted, PolicyType::no_policy_found, Result::success},
      {"unknown.test", Result::starttls_not_supported, TlsSeen::none, PolicyType::no_policy_found, Result::starttls_not_supported},
      {"fetch.test", Result::success, TlsSeen::verified, PolicyType::sts, Result::sts_policy_fetch_error},
      {"webpki.test", Result::success, TlsSeen::verified, PolicyType::sts, Result::sts_webpki_invalid},
      {"invalid.test", Result::success, TlsSeen::trusted, PolicyType::sts, Result::sts_policy_invalid},
      {"dns.test", Result::success, TlsSeen::trusted, PolicyType::no_policy_found, Result::success},
      {"txt.test", Result::success, TlsSeen::trusted, PolicyType::no_policy_found, Result::success},
      {"stale.test", Result::success, TlsSeen::verified, PolicyType::sts, Result::success},
  };
  for (const auto& r : rows) {
    Outcome o = session(r.domain, r.in, r.tls);
    const tlsrpt::AppliedPolicy p = c.classify(o);
    EXPECT_EQ(p.type, r.type) << r.domain << " " << tlsrpt::to_string(r.in);
    EXPECT_EQ(o.session.result, r.out) << r.domain << " " << tlsrpt::to_string(r.in) << " -> "
                                       << tlsrpt::to_string(o.session.result);
    if (r.type == PolicyType::sts && r.out == Result::success) {
      EXPECT_EQ(p, tlsrpt::applied_policy_of(view.entries.at(r.domain))) << r.domain;
      EXPECT_FALSE(p.strings.empty());
    }
  }
}

TEST(Classify, TheSourcesOwnPolicyIsKept) {
  MapView view;
  view.entries["a.test"] = test::policy_entry(Mode::enforce, "1", {"mx.a.test"}, kT - Seconds{60});
  Classifier c(view);
  Outcome o = session("a.test", Result::tlsa_invalid, TlsSeen::unknown);
  tlsrpt::AppliedPolicy tlsa;
  tlsa.type = PolicyType::tlsa;
  tlsa.strings = {"3 1 1 abcd"};
  o.policy = tlsa;
  EXPECT_EQ(c.classify(o), tlsa);
  EXPECT_EQ(o.session.result, Result::tlsa_invalid);
  EXPECT_EQ(view.reads, 0);
}

TEST(PolicyFailure, OnlyPolicyFailuresAreReported) {
  FailureState f;
  f.kind = FailureKind::fetch;
  f.error = "HTTP status 404 (only 200 is accepted)";
  EXPECT_EQ(policy_failure(f), Result::sts_policy_fetch_error);
  f.error = "SSL: no alternative certificate subject name matches target host name 'mta-sts.a.test'";
  EXPECT_EQ(policy_failure(f), Result::sts_webpki_invalid);
  f.kind = FailureKind::policy_invalid;
  EXPECT_EQ(policy_failure(f), Result::sts_policy_invalid);
  f.kind = FailureKind::dns;
  EXPECT_EQ(policy_failure(f), std::nullopt);
}

}  // namespace
}  // namespace mtasts::reportd
