// Decisions per recipient domain, the header text of DESIGN.md, and the message-level rules
// (forged fields removed, one field per tagged domain, TLS-Required: No, TLS-RPT reports).
#include "milter/decision.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/fake_lookup_source.hpp"

namespace mtasts::milter {
namespace {

using test::FakeClock;

Domain dom(const char* s) { return *Domain::parse(s).domain; }

LookupResult found(CacheEntry e, LookupSource src = LookupSource::redis) {
  LookupResult r;
  r.entry = std::make_shared<const CacheEntry>(std::move(e));
  r.source = src;
  return r;
}

LookupResult absent() {
  LookupResult r;
  r.source = LookupSource::redis;
  return r;
}

LookupResult failed() {
  LookupResult r;
  r.failed = true;
  r.error = "timeout";
  return r;
}

const SysTime kNow = FakeClock::kStart;
const DecisionOptions kAccept{OnFailure::accept, OnFailure::accept};
const DecisionOptions kTempfail{OnFailure::tempfail, OnFailure::tempfail};

TEST(Decide, EnforcePolicyIsTaggedWithIdAndMx) {
  auto e = test::policy_entry(Mode::enforce, "20260424T120000Z", {"mail.example.com", "*.Example.com."}, kNow);
  const Decision d = decide(dom("Example.COM"), found(e), kNow, kAccept);
  EXPECT_EQ(d.domain, "example.com");
  EXPECT_EQ(d.status, Status::enforce);
  EXPECT_EQ(d.action, Action::tag);
  EXPECT_EQ(d.policy_id, "20260424T120000Z");
  EXPECT_EQ(d.mx, (std::vector<std::string>{"mail.example.com", "*.example.com"}));
  EXPECT_EQ(d.reason, "policy");
  EXPECT_EQ(d.source, "redis");
}

TEST(Decide, TestingPolicyIsTagged) {
  auto e = test::policy_entry(Mode::testing, "t1", {"mx.testing.example"}, kNow);
  const Decision d = decide(dom("testing.example"), found(e, LookupSource::local), kNow, kAccept);
  EXPECT_EQ(d.status, Status::testing);
  EXPECT_EQ(d.action, Action::tag);
  EXPECT_EQ(d.source, "local");
}

TEST(Decide, ModeNoneIsNotTagged) {
  auto e = test::policy_entry(Mode::none, "n1", {}, kNow);
  const Decision d = decide(dom("none.example"), found(e), kNow, kTempfail);
  EXPECT_EQ(d.status, Status::none);
  EXPECT_EQ(d.action, Action::pass);
}

TEST(Decide, NegativeEntryIsNoPolicy) {
  const Decision d = decide(dom("plain.example"), found(test::negative_entry(kNow)), kNow, kTempfail);
  EXPECT_EQ(d.status, Status::no_policy);
  EXPECT_EQ(d.action, Action::pass);
  EXPECT_EQ(d.reason, "no-policy");
}

TEST(Decide, FailureWithoutUsablePolicyIsDeliveredAsNoPolicy) {
  const Decision d = decide(dom("broken.example"), found(test::failure_entry(kNow)), kNow, kTempfail);
  EXPECT_EQ(d.status, Status::no_policy);
  EXPECT_EQ(d.action, Action::pass);
  EXPECT_EQ(d.reason, "discovery-failing");
}

TEST(Decide, FailureKeepsAUsablePolicy) {
  auto e = test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, kNow);
  e.failure = test::failure_entry(kNow).failure;
  const Decision d = decide(dom("example.com"), found(e), kNow, kAccept);
  EXPECT_EQ(d.status, Status::enforce);
  EXPECT_EQ(d.action, Action::tag);
  EXPECT_EQ(d.reason, "policy-refresh-failing");
}

TEST(Decide, ExpiredPolicyIsUnknownAndFollowsOnUnknown) {
  auto e = test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, kNow, Seconds{600});
  const SysTime later = kNow + Seconds{601};
  Decision d = decide(dom("example.com"), found(e), later, kAccept);
  EXPECT_EQ(d.status, Status::unknown);
  EXPECT_EQ(d.action, Action::pass);
  EXPECT_EQ(d.reason, "policy-expired");
  d = decide(dom("example.com"), found(e), later, kTempfail);
  EXPECT_EQ(d.action, Action::tempfail);
  // Still usable one second before expiry.
  EXPECT_EQ(decide(dom("example.com"), found(e), kNow + Seconds{599}, kAccept).action, Action::tag);
}

TEST(Decide, ExpiredShortLivedPolicyIsNoPolicy) {
  // max_age 60: expired before any recheck, checked again after an hour; meanwhile as if none.
  auto e = test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, kNow, Seconds{60});
  const Decision d = decide(dom("example.com"), found(e), kNow + Seconds{61}, kTempfail);
  EXPECT_EQ(d.status, Status::no_policy);
  EXPECT_EQ(d.action, Action::pass);
  EXPECT_EQ(d.reason, "max-age-short");
}

TEST(Decide, NotCachedFollowsOnUnknown) {
  EXPECT_EQ(decide(dom("new.example"), absent(), kNow, kAccept).action, Action::pass);
  const Decision d = decide(dom("new.example"), absent(), kNow, kTempfail);
  EXPECT_EQ(d.status, Status::unknown);
  EXPECT_EQ(d.action, Action::tempfail);
  EXPECT_EQ(d.reason, "not-cached");
}

TEST(Decide, RedisErrorFollowsOnRedisError) {
  Decision d = decide(dom("example.com"), failed(), kNow, DecisionOptions{OnFailure::tempfail, OnFailure::accept});
  EXPECT_EQ(d.status, Status::error);
  EXPECT_EQ(d.action, Action::pass);
  d = decide(dom("example.com"), failed(), kNow, DecisionOptions{OnFailure::accept, OnFailure::tempfail});
  EXPECT_EQ(d.action, Action::tempfail);
  EXPECT_EQ(d.reason, "redis-error");
}

TEST(Decide, WaitedLookupSaysSo) {
  LookupResult r = found(test::negative_entry(kNow));
  r.waited = true;
  EXPECT_EQ(decide(dom("example.com"), r, kNow, kAccept).source, "redis+wait");
}

TEST(HeaderValue, ExactlyAsDesign) {
  auto e = test::policy_entry(Mode::enforce, "20260424T120000Z", {"mail.example.com", "*.example.com"}, kNow);
  const Decision d = decide(dom("example.com"), found(e), kNow, kAccept);
  EXPECT_EQ(header_value(d, "X-MTA-STS"),
            "example.com; mode=enforce; id=20260424T120000Z; mx=mail.example.com,*.example.com");
  auto t = test::policy_entry(Mode::testing, "abc", {"mx.t.example"}, kNow);
  EXPECT_EQ(header_value(decide(dom("t.example"), found(t), kNow, kAccept), "X-MTA-STS"),
            "t.example; mode=testing; id=abc; mx=mx.t.example");
}

TEST(HeaderValue, FoldsOnlyBeyondTheLineLimit) {
  std::vector<std::string> mx;
  // 50 patterns of 36 octets: beyond one line, within kMaxHeaderMxBytes.
  for (int i = 0; i < 50; ++i) mx.push_back("mx" + std::to_string(i) + ".a-rather-long-name.example.com");
  auto e = test::policy_entry(Mode::enforce, "id1", mx, kNow);
  const std::string v = header_value(decide(dom("example.com"), found(e), kNow, kAccept), "X-MTA-STS");
  ASSERT_NE(v.find("\n\t"), std::string::npos);
  EXPECT_EQ(v.find("mx-truncated"), std::string::npos);
  std::size_t start = 0;
  for (;;) {
    const auto nl = v.find('\n', start);
    const std::size_t len = (nl == std::string::npos ? v.size() : nl) - start;
    EXPECT_LE(len + (start == 0 ? 11 : 0), 998u);
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  std::string unfolded;
  for (char c : v)
    if (c != '\n' && c != '\t') unfolded += c;
  EXPECT_NE(unfolded.find("mx=mx0.a-rather-long-name.example.com,mx1."), std::string::npos);
  EXPECT_NE(unfolded.find(",mx49.a-rather-long-name.example.com"), std::string::npos);
}

// A hostile policy with 64 KiB of mx lines must not become a 64 KiB header field: the field
// stays within the bound and says how many patterns it left out.
TEST(HeaderValue, BoundedWithATruncationMarker) {
  std::vector<std::string> mx;
  for (int i = 0; i < 1800; ++i) mx.push_back("mx" + std::to_string(i) + ".a-rather-long-name.example.com");
  auto e = test::policy_entry(Mode::enforce, "id1", mx, kNow);
  const std::string v = header_value(decide(dom("example.com"), found(e), kNow, kAccept), "X-MTA-STS");
  EXPECT_LE(v.size(), kMaxHeaderMxBytes + 200) << v.size();
  const auto mark = v.find("; mx-truncated=");
  ASSERT_NE(mark, std::string::npos);
  std::string rest = v.substr(mark + 15);
  const int left_out = std::stoi(rest);
  std::string unfolded;
  for (char c : v)
    if (c != '\n' && c != '\t') unfolded += c;
  const auto listed = static_cast<int>(std::count(unfolded.begin(), unfolded.end(), ',')) + 1;
  EXPECT_EQ(listed + left_out, 1800);
  EXPECT_NE(unfolded.find("mx=mx0.a-rather-long-name.example.com,mx1."), std::string::npos);
  for (std::size_t start = 0;;) {  // still within the line limit
    const auto nl = v.find('\n', start);
    EXPECT_LE((nl == std::string::npos ? v.size() : nl) - start, 998u - 11);
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
}

struct TextRow {
  const char* text;
  bool expected;
};

class TlsRptTable : public ::testing::TestWithParam<TextRow> {};
TEST_P(TlsRptTable, Detects) { EXPECT_EQ(is_tlsrpt_report(GetParam().text), GetParam().expected) << GetParam().text; }
INSTANTIATE_TEST_SUITE_P(
    Rows, TlsRptTable,
    ::testing::Values(TextRow{"multipart/report; report-type=tlsrpt", true},
                      TextRow{"multipart/report; report-type=\"tlsrpt\"", true},
                      TextRow{"Multipart/Report; Report-Type=TLSRPT", true},
                      TextRow{"multipart/report;\r\n\treport-type=\"tlsrpt\";\r\n\tboundary=\"b1\"", true},
                      TextRow{"multipart/report;\n report-type=tlsrpt", true},
                      TextRow{"multipart/report; boundary=\"x;report-type=no\"; report-type=tlsrpt", true},
                      TextRow{"multipart/report (tls report); report-type=tlsrpt (rfc 8460)", true},
                      TextRow{"multipart/report ; report-type = tlsrpt", true},
                      TextRow{"multipart/report; report-type=delivery-status", false},
                      TextRow{"multipart/report", false},
                      TextRow{"multipart/mixed; report-type=tlsrpt", false},
                      TextRow{"text/plain; report-type=tlsrpt", false},
                      TextRow{"multipart/report; boundary=\"report-type=tlsrpt\"", false},
                      TextRow{"multipart/report; report-type=tlsrptx", false},
                      TextRow{"", false}));

class TlsRequiredTable : public ::testing::TestWithParam<TextRow> {};
TEST_P(TlsRequiredTable, Detects) {
  EXPECT_EQ(is_tls_required_no(GetParam().text), GetParam().expected) << GetParam().text;
}
INSTANTIATE_TEST_SUITE_P(Rows, TlsRequiredTable,
                         ::testing::Values(TextRow{"No", true}, TextRow{"no", true}, TextRow{" NO ", true},
                                           TextRow{"\r\n\tNo", true}, TextRow{"No (sender opted out)", true},
                                           TextRow{"Yes", false}, TextRow{"", false}, TextRow{"Nope", false},
                                           TextRow{"No, thanks", false}));

// ---- Message -------------------------------------------------------------------------------

Decision tagged(const char* domain, Mode mode = Mode::enforce) {
  auto e = test::policy_entry(mode, "id-" + std::string(domain), {"mx." + std::string(domain)}, kNow);
  return decide(dom(domain), found(e), kNow, kAccept);
}

// Whatever a decision carries (decoded entries are validated already), a CR, LF or control
// character never reaches a header field: that domain is not tagged, and the log says why.
TEST(MilterMessage, RefusesAFieldWithAControlCharacter) {
  Message m(MessageOptions{});
  Decision evil = tagged("a.example");
  evil.policy_id = "abc\r\nX-Injected: yes";
  m.accept(evil);
  Decision evil_mx = tagged("b.example");
  evil_mx.mx.push_back("mx.b.example\x01");
  m.accept(evil_mx);
  m.accept(tagged("c.example"));
  const HeaderPlan p = m.plan();
  ASSERT_EQ(p.add.size(), 1u);
  EXPECT_EQ(p.add[0].value.rfind("c.example;", 0), 0u);
  for (const auto& f : p.add) EXPECT_EQ(f.value.find_first_of("\r\x01"), std::string::npos);
  EXPECT_EQ(p.refused, (std::vector<std::string>{"a.example", "b.example"}));
  const auto log = m.log_fields(p);
  EXPECT_EQ(log.tagged, "c.example");
  EXPECT_EQ(log.suppressed, "unsafe-value:a.example unsafe-value:b.example");
}

TEST(MilterMessage, RemovesEveryIncomingFieldOfOurNameHighestFirst) {
  Message m(MessageOptions{"X-MTA-STS", true});
  m.header("X-MTA-STS", "forged.example; mode=enforce; id=x; mx=evil.example");
  m.header("Subject", "hi");
  m.header("x-mta-sts", "another");
  m.header("X-Mta-Sts", "third");
  m.header("X-MTA-STS-Other", "not ours");
  EXPECT_EQ(m.plan().delete_indices, (std::vector<int>{3, 2, 1}));
}

TEST(MilterMessage, OneFieldPerTaggedDomainInRecipientOrder) {
  Message m(MessageOptions{"X-MTA-STS", true});
  m.accept(tagged("b.example"));
  m.accept(decide(dom("none.example"), found(test::policy_entry(Mode::none, "n", {}, kNow)), kNow, kAccept));
  m.accept(tagged("a.example", Mode::testing));
  m.accept(decide(dom("plain.example"), found(test::negative_entry(kNow)), kNow, kAccept));
  EXPECT_NE(m.find(dom("b.example")), nullptr);
  EXPECT_EQ(m.find(dom("c.example")), nullptr);
  const HeaderPlan p = m.plan();
  ASSERT_EQ(p.add.size(), 2u);
  EXPECT_EQ(p.add[0].name, "X-MTA-STS");
  EXPECT_EQ(p.add[0].value, "b.example; mode=enforce; id=id-b.example; mx=mx.b.example");
  EXPECT_EQ(p.add[1].value, "a.example; mode=testing; id=id-a.example; mx=mx.a.example");
  EXPECT_TRUE(p.delete_indices.empty());
  EXPECT_TRUE(p.suppressed.empty());
  const auto lf = m.log_fields(p);
  EXPECT_EQ(lf.tagged, "b.example a.example");
  EXPECT_EQ(lf.decisions,
            "b.example:enforce:policy:redis none.example:none:mode-none:redis a.example:testing:policy:redis "
            "plain.example:no-policy:no-policy:redis");
  EXPECT_EQ(lf.removed, "0");
}

TEST(MilterMessage, ConfiguredHeaderName) {
  Message m(MessageOptions{"X-STS-Policy", true});
  m.header("X-MTA-STS", "not ours now");
  m.header("x-sts-policy", "forged");
  m.accept(tagged("a.example"));
  const HeaderPlan p = m.plan();
  EXPECT_EQ(p.delete_indices, (std::vector<int>{1}));
  ASSERT_EQ(p.add.size(), 1u);
  EXPECT_EQ(p.add[0].name, "X-STS-Policy");
}

TEST(MilterMessage, TlsRequiredNoSuppressesTagsButStillRemovesForgeries) {
  Message m(MessageOptions{"X-MTA-STS", true});
  m.header("X-MTA-STS", "forged");
  m.header("TLS-Required", "No");
  m.accept(tagged("a.example"));
  const HeaderPlan p = m.plan();
  EXPECT_TRUE(p.add.empty());
  EXPECT_EQ(p.suppressed, "tls-required-no");
  EXPECT_EQ(p.delete_indices, (std::vector<int>{1}));
  EXPECT_EQ(m.log_fields(p).tagged, "");
}

TEST(MilterMessage, TlsRequiredNoIgnoredWhenNotHonoured) {
  Message m(MessageOptions{"X-MTA-STS", false});
  m.header("TLS-Required", "No");
  m.accept(tagged("a.example"));
  EXPECT_EQ(m.plan().add.size(), 1u);
}

TEST(MilterMessage, TlsRptReportIsNeverTagged) {
  for (bool honor : {true, false}) {
    Message m(MessageOptions{"X-MTA-STS", honor});
    m.header("Content-Type", "multipart/report;\n\treport-type=\"tlsrpt\"; boundary=\"----=_b\"");
    m.accept(tagged("a.example"));
    const HeaderPlan p = m.plan();
    EXPECT_TRUE(p.add.empty());
    EXPECT_EQ(p.suppressed, "tlsrpt-report");
  }
}

TEST(MilterMessage, OnlyTheFirstContentTypeCounts) {
  Message m(MessageOptions{"X-MTA-STS", true});
  m.header("Content-Type", "text/plain");
  m.header("Content-Type", "multipart/report; report-type=tlsrpt");
  m.accept(tagged("a.example"));
  EXPECT_EQ(m.plan().add.size(), 1u);
}

TEST(MilterMessage, DeferredAndSkippedAreLogged) {
  Message m(MessageOptions{});
  m.deferred(decide(dom("new.example"), absent(), kNow, kTempfail));
  m.skipped("address literal");
  const auto lf = m.log_fields(m.plan());
  EXPECT_EQ(lf.deferred, "new.example:unknown:not-cached");
  EXPECT_EQ(lf.skipped, "address-literal");
}

}  // namespace
}  // namespace mtasts::milter
