// Every row of the reply table (reply.hpp), the match list over an MX set, the DANE
// precedence, the postfix-tlsrpt extras and the size bound.
#include "tlsmap/reply.hpp"

#include <gtest/gtest.h>

#include "tests/fakes/cache_entries.hpp"
#include "tests/fakes/fake_clock.hpp"

namespace mtasts::tlsmap {
namespace {

using test::FakeClock;
using test::failure_entry;
using test::negative_entry;
using test::policy_entry;

const SysTime kNow = FakeClock::kStart;

Domain dom(const char* s) { return *Domain::parse(s).domain; }

LookupResult found(CacheEntry e, LookupSource src = LookupSource::redis) {
  LookupResult r;
  r.entry = std::make_shared<const CacheEntry>(std::move(e));
  r.source = src;
  return r;
}

LookupResult not_cached() { return LookupResult{}; }

LookupResult redis_failed() {
  LookupResult r;
  r.failed = true;
  r.error = "connection refused";
  return r;
}

MxSet mx_set(std::vector<std::string> hosts, std::vector<HostDane> dane = {}) {
  MxSet m;
  m.available = true;
  m.hosts = std::move(hosts);
  m.dane = std::move(dane);
  return m;
}

// The whole path of a reply for a lookup result.
std::string reply_for(const LookupResult& r, const ReplyOptions& o = {}, const MxSet* mx = nullptr,
                      Dialect dialect = Dialect::postfix) {
  const PolicyDecision d = decide(r, kNow, o);
  switch (d.outcome) {
    case PolicyOutcome::notfound: return notfound().text;
    case PolicyOutcome::defer: return temp(d.temp).text;
    case PolicyOutcome::enforce: return enforce_reply(dialect, dom("example.com"), *d.policy, mx).text;
  }
  return "?";
}

TEST(Reply, EnforceListsExactPatterns) {
  const auto r = found(policy_entry(Mode::enforce, "id1", {"mx1.example.com", "mx2.example.net"}, kNow));
  const MxSet mx = mx_set({"mx1.example.com"});
  EXPECT_EQ(reply_for(r, {}, &mx), "OK secure match=mx1.example.com:mx2.example.net servername=hostname");
}

TEST(Reply, WildcardListsOnlyMxHostsOneLabelDown) {
  const auto r = found(policy_entry(Mode::enforce, "id1", {"*.example.com"}, kNow));
  // a.b.example.com is two labels down (RFC 8461 section 4.1): never listed; example.com
  // itself does not match "*.example.com" either.
  const MxSet mx = mx_set({"mx1.example.com", "a.b.example.com", "example.com", "mx2.example.com", "mx.other.org"});
  EXPECT_EQ(reply_for(r, {}, &mx), "OK secure match=mx1.example.com:mx2.example.com servername=hostname");
}

TEST(Reply, WildcardWithoutMxSetFallsBackToSuffix) {
  const auto r = found(policy_entry(Mode::enforce, "id1", {"*.example.com", "mail.example.org"}, kNow));
  MxSet down;
  down.available = false;
  EXPECT_EQ(reply_for(r, {}, &down), "OK secure match=.example.com:mail.example.org servername=hostname");
  EXPECT_EQ(reply_for(r, {}, nullptr), "OK secure match=.example.com:mail.example.org servername=hostname");
  bool fallback = false;
  match_list(r.entry->policy->policy, &down, &fallback);
  EXPECT_TRUE(fallback);
}

TEST(Reply, NothingMatchesMeansNoCertificateCanMatch) {
  const auto r = found(policy_entry(Mode::enforce, "id1", {"*.example.com"}, kNow));
  const MxSet mx = mx_set({"mx.elsewhere.net"});
  EXPECT_EQ(reply_for(r, {}, &mx), std::string("OK secure match=") + kNoMatch + " servername=hostname");
}

TEST(Reply, DuplicatesAreListedOnce) {
  const auto r = found(policy_entry(Mode::enforce, "id1", {"mx1.example.com", "*.example.com", "MX1.example.com"}, kNow));
  const MxSet mx = mx_set({"mx1.example.com", "mx2.example.com"});
  EXPECT_EQ(reply_for(r, {}, &mx), "OK secure match=mx1.example.com:mx2.example.com servername=hostname");
}

TEST(Reply, NotFoundRows) {
  const ReplyOptions defer_all{TlsmapAction::defer, TlsmapAction::defer, false};
  // testing, none, no policy, a failed fetch with nothing cached, an expired policy (with
  // nothing else known it is "unknown", covered below): NOTFOUND whatever on-* say.
  EXPECT_EQ(reply_for(found(policy_entry(Mode::testing, "id", {"mx.example.com"}, kNow)), defer_all), "NOTFOUND ");
  EXPECT_EQ(reply_for(found(policy_entry(Mode::none, "id", {}, kNow)), defer_all), "NOTFOUND ");
  EXPECT_EQ(reply_for(found(negative_entry(kNow)), defer_all), "NOTFOUND ");
  EXPECT_EQ(reply_for(found(failure_entry(kNow)), defer_all), "NOTFOUND ");
}

TEST(Reply, StrictTestingEnforcesTesting) {
  ReplyOptions o;
  o.strict_testing = true;
  const MxSet mx = mx_set({"mx.example.com"});
  EXPECT_EQ(reply_for(found(policy_entry(Mode::testing, "id", {"mx.example.com"}, kNow)), o, &mx),
            "OK secure match=mx.example.com servername=hostname");
  EXPECT_EQ(reply_for(found(policy_entry(Mode::none, "id", {}, kNow)), o, &mx), "NOTFOUND ");
}

TEST(Reply, ExpiredPolicyIsNotEnforced) {
  // Fetched two days ago with max_age one day, never confirmed since.
  const auto r = found(policy_entry(Mode::enforce, "id", {"mx.example.com"}, kNow - Seconds{2 * 86400}, Seconds{86400}));
  EXPECT_EQ(reply_for(r), "NOTFOUND ");
  EXPECT_EQ(reply_for(r, {TlsmapAction::defer, TlsmapAction::accept, false}), "TEMP MTA-STS policy not yet known");
}

TEST(Reply, UnknownFollowsOnUnknown) {
  EXPECT_EQ(reply_for(not_cached()), "NOTFOUND ");
  EXPECT_EQ(reply_for(not_cached(), {TlsmapAction::defer, TlsmapAction::accept, false}),
            "TEMP MTA-STS policy not yet known");
}

TEST(Reply, RedisErrorFollowsOnRedisError) {
  EXPECT_EQ(reply_for(redis_failed()), "NOTFOUND ");
  EXPECT_EQ(reply_for(redis_failed(), {TlsmapAction::accept, TlsmapAction::defer, false}),
            "TEMP MTA-STS policy cache unavailable");
}

TEST(Reply, LocallyHeldEntryAnswersDuringAnOutage) {
  // The lookup fell back to a local entry (source stale): it is enforced like any other.
  const MxSet mx = mx_set({"mx.example.com"});
  EXPECT_EQ(reply_for(found(policy_entry(Mode::enforce, "id", {"mx.example.com"}, kNow), LookupSource::stale),
                      {TlsmapAction::defer, TlsmapAction::defer, false}, &mx),
            "OK secure match=mx.example.com servername=hostname");
}

TEST(Reply, DaneOnlyWhenEveryHostHasUsableTlsa) {
  using H = HostDane;
  const auto r = found(policy_entry(Mode::enforce, "id1", {"*.example.com"}, kNow));
  const std::vector<std::string> hosts{"mx1.example.com", "mx2.example.com"};
  const std::string secure = "OK secure match=mx1.example.com:mx2.example.com servername=hostname";
  const MxSet all = mx_set(hosts, {H::usable, H::usable});
  // Postfix's `dane' gives a host without usable TLSA the `may' level: clear text once
  // STARTTLS is stripped. A partial set is never a DANE answer.
  const MxSet some = mx_set(hosts, {H::usable, H::none});
  const MxSet none = mx_set(hosts, {H::none, H::none});
  const MxSet not_looked = mx_set(hosts);
  for (Dialect d : {Dialect::postfix, Dialect::postfix_tlsrpt}) {
    EXPECT_EQ(reply_for(r, {}, &all, d), "OK dane-only") << to_string(d);
    for (const MxSet* m : {&some, &none, &not_looked}) EXPECT_EQ(reply_for(r, {}, m, d).rfind(secure, 0), 0u) << to_string(d);
  }
  // Sendmail reads a DANE reply as "no STS check" and Debian's has no DANE of its own: the
  // sts map always gets the MTA-STS answer, so that the domain stays protected.
  for (const MxSet* m : {&all, &some, &none}) EXPECT_EQ(reply_for(r, {}, m, Dialect::sts), secure);
}

TEST(Reply, AFailingDaneCheckIsNeverOverriddenByMtaSts) {
  using H = HostDane;
  const auto r = found(policy_entry(Mode::enforce, "id1", {"*.example.com"}, kNow));
  const std::vector<std::string> hosts{"mx1.example.com", "mx2.example.com", "mx3.example.com"};
  // The others all have usable TLSA: dane-only (Postfix defers the failed host on its own
  // TLSA lookup error and delivers to the others over DANE).
  const MxSet rest_dane = mx_set(hosts, {H::usable, H::failed, H::usable});
  EXPECT_EQ(reply_for(r, {}, &rest_dane), "OK dane-only");
  // Otherwise TEMP: `secure' would let the failed host through on its WebPKI certificate.
  const MxSet mixed = mx_set(hosts, {H::usable, H::failed, H::none});
  EXPECT_EQ(reply_for(r, {}, &mixed), "TEMP DANE TLSA lookup failed for MX host mx2.example.com");
  const MxSet only_failed = mx_set(hosts, {H::failed, H::failed, H::failed});
  EXPECT_EQ(reply_for(r, {}, &only_failed), "TEMP DANE TLSA lookup failed for MX host mx1.example.com");
  EXPECT_EQ(reply_for(r, {}, &mixed, Dialect::postfix_tlsrpt).rfind("TEMP ", 0), 0u);
}

TEST(Reply, BusyMxLookupDefers) {
  const auto r = found(policy_entry(Mode::enforce, "id1", {"*.example.com"}, kNow));
  MxSet busy;
  busy.busy = true;
  for (Dialect d : {Dialect::postfix, Dialect::postfix_tlsrpt, Dialect::sts})
    EXPECT_EQ(reply_for(r, {}, &busy, d), "TEMP MX lookup of this domain in progress") << to_string(d);
}

TEST(Reply, DaneAnswerTable) {
  using H = HostDane;
  const auto ans = [](std::vector<H> d) {
    std::vector<std::string> hosts;
    for (std::size_t i = 0; i < d.size(); ++i) hosts.push_back("mx" + std::to_string(i) + ".example.com");
    return dane_answer(mx_set(hosts, std::move(d)));
  };
  EXPECT_EQ(ans({}), DaneAnswer::none);
  EXPECT_EQ(ans({H::usable}), DaneAnswer::dane_only);
  EXPECT_EQ(ans({H::none}), DaneAnswer::none);
  EXPECT_EQ(ans({H::failed}), DaneAnswer::defer);
  EXPECT_EQ(ans({H::usable, H::none}), DaneAnswer::none);
  EXPECT_EQ(ans({H::usable, H::failed}), DaneAnswer::dane_only);
  EXPECT_EQ(ans({H::none, H::failed}), DaneAnswer::defer);
  MxSet down = mx_set({"mx.example.com"}, {H::usable});
  down.available = false;
  EXPECT_EQ(dane_answer(down), DaneAnswer::none);
  EXPECT_EQ(dane_answer(mx_set({"a.example.com", "b.example.com"}, {H::usable})), DaneAnswer::none)
      << "a per-host list that does not fit the hosts is not DANE";
}

TEST(Reply, OneLabelPatternsNeverReachPostfixAsKeywords) {
  // `hostname', `nexthop' and `dot-nexthop' are keywords of Postfix's match list: any MX with
  // a certificate for its own name would pass. A one-label pattern stands for no Internet host.
  const MxSet mx = mx_set({"mx.example.com"});
  for (const char* kw : {"hostname", "nexthop", "dot-nexthop", "HOSTNAME", "localhost"}) {
    const auto r = found(policy_entry(Mode::enforce, "id1", {kw}, kNow));
    EXPECT_EQ(reply_for(r, {}, &mx), std::string("OK secure match=") + kNoMatch + " servername=hostname") << kw;
    const auto with_other = found(policy_entry(Mode::enforce, "id1", {kw, "mx.example.com"}, kNow));
    EXPECT_EQ(reply_for(with_other, {}, &mx), "OK secure match=mx.example.com servername=hostname") << kw;
    for (Dialect d : {Dialect::postfix, Dialect::postfix_tlsrpt, Dialect::sts}) {
      const std::string text = reply_for(r, {}, &mx, d);
      const std::string match = text.substr(0, text.find(' ', std::string("OK secure ").size()));
      EXPECT_EQ(match.find("hostname"), std::string::npos) << text;
      EXPECT_EQ(match.find("nexthop"), std::string::npos) << text;
    }
  }
  // A one-label wildcard gives a `.suffix' or MX hosts, never a bare keyword.
  const auto w = found(policy_entry(Mode::enforce, "id1", {"*.nexthop"}, kNow));
  EXPECT_EQ(reply_for(w, {}, nullptr), "OK secure match=.nexthop servername=hostname");
}

TEST(Reply, TlsrptDialectAddsPolicyAttributes) {
  const auto r = found(policy_entry(Mode::enforce, "id1", {"mx1.example.com", "*.example.com"}, kNow, Seconds{604800}));
  const MxSet mx = mx_set({"mx1.example.com", "mx2.example.com"});
  EXPECT_EQ(reply_for(r, {}, &mx, Dialect::postfix_tlsrpt),
            "OK secure match=mx1.example.com:mx2.example.com servername=hostname"
            " policy_type=sts policy_domain=example.com"
            " mx_host_pattern=mx1.example.com mx_host_pattern=*.example.com"
            " { policy_string = version: STSv1 } { policy_string = mode: enforce }"
            " { policy_string = mx: mx1.example.com } { policy_string = mx: *.example.com }"
            " { policy_string = max_age: 604800 }");
  // The older dialects never see attributes a Postfix 3.7 would reject.
  for (Dialect d : {Dialect::postfix, Dialect::sts}) {
    const std::string text = reply_for(r, {}, &mx, d);
    EXPECT_EQ(text.find("policy_"), std::string::npos) << text;
    EXPECT_EQ(text.find("mx_host_pattern"), std::string::npos) << text;
  }
  EXPECT_EQ(reply_for(r, {}, &mx, Dialect::postfix_tlsrpt).find("policy_ttl"), std::string::npos);
}

TEST(Reply, StaysUnderTheBound) {
  // A policy with very many patterns (possible within the 64 KiB policy limit): the reply
  // drops the TLS-RPT policy strings first and is never over kMaxReply.
  std::vector<std::string> mx;
  for (int i = 0; i < 2000; ++i) mx.push_back("mx" + std::to_string(i) + ".a-rather-long-name.example.com");
  const auto r = found(policy_entry(Mode::enforce, "id1", mx, kNow));
  const MxSet set = mx_set({});
  for (Dialect d : {Dialect::postfix, Dialect::postfix_tlsrpt, Dialect::sts}) {
    const std::string text = reply_for(r, {}, &set, d);
    EXPECT_LE(text.size(), kMaxReply) << to_string(d);
    EXPECT_TRUE(text.rfind("OK secure", 0) == 0 || text.rfind("TEMP", 0) == 0) << text.substr(0, 80);
  }
}

TEST(Reply, NothingUnsafeReachesAReply) {
  // Patterns and hosts come from validated types; a reply never holds a control character,
  // and its only spaces separate attributes.
  const auto r = found(policy_entry(Mode::enforce, "id1", {"*.example.com", "MX.Example.COM."}, kNow));
  const MxSet mx = mx_set({"a.example.com"});
  for (Dialect d : {Dialect::postfix, Dialect::postfix_tlsrpt, Dialect::sts}) {
    const std::string text = reply_for(r, {}, &mx, d);
    for (char c : text) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << to_string(d);
    EXPECT_NE(text.find("match=a.example.com:mx.example.com "), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace mtasts::tlsmap
