// The spool codec of Batch and the text forms of details and policies (common/tlsrpt/codec.hpp):
// round trips, canonical escaping, and a table of texts that must be refused.
#include <gtest/gtest.h>

#include <string>

#include "common/tlsrpt/batch.hpp"
#include "common/tlsrpt/codec.hpp"

namespace mtasts::tlsrpt {
namespace {

constexpr std::int64_t kDay = 1796601600;  // 2026-12-07T00:00:00Z

AppliedPolicy sts_policy() {
  AppliedPolicy p;
  p.type = PolicyType::sts;
  p.strings = {"version: STSv1", "mode: enforce", "mx: mx1.example.com", "mx: *.mail.example.com", "max_age: 86400"};
  p.mx_hosts = {"mx1.example.com", "*.mail.example.com"};
  return p;
}

Session failure(std::int64_t t, Result r, std::string mx, std::string info) {
  Session s;
  s.time = t;
  s.domain = "example.com";
  s.result = r;
  s.receiving_mx_hostname = std::move(mx);
  s.receiving_ip = "192.0.2.10";
  s.sending_mta_ip = "2001:db8::25";
  s.additional_information = std::move(info);
  return s;
}

Batch sample() {
  Batch b;
  Session ok;
  ok.time = kDay + 10;
  ok.domain = "example.com";
  for (int i = 0; i < 5; ++i) b.add(ok, sts_policy());
  b.add(failure(kDay + 20, Result::certificate_expired, "mx1.example.com", "certificate has expired"), sts_policy());
  b.add(failure(kDay + 21, Result::certificate_expired, "mx1.example.com", "certificate has expired"), sts_policy());
  // Text with spaces, '%', '-' alone, control bytes, Latin-1 and UTF-8.
  b.add(failure(kDay + 22, Result::starttls_not_supported, "mx2.mail.example.com", "100% \t\"odd\" \xE9t\xC3\xA9\n"),
        sts_policy());
  auto f = failure(kDay + 23, Result::validation_failure, "", "-");
  f.receiving_ip.clear();
  f.failure_reason_code = "X509_V_ERR 20";
  f.receiving_mx_helo = "[192.0.2.10]";
  b.add(f, AppliedPolicy{});
  Session other = ok;
  other.domain = "xn--bcher-kva.example";
  other.time = kDay + 86400;  // the next day
  b.add(other, AppliedPolicy{});
  return b;
}

TEST(TlsrptCodec, FieldEscapingIsCanonical) {
  EXPECT_EQ(escape_field(""), "-");
  EXPECT_EQ(escape_field("-"), "%2D");
  EXPECT_EQ(escape_field("a-b"), "a-b");
  EXPECT_EQ(escape_field("100% a\n"), "100%25%20a%0A");
  EXPECT_EQ(unescape_field("100%25%20a%0A"), "100% a\n");
  EXPECT_EQ(unescape_field("-"), "");
  EXPECT_EQ(unescape_field("%2D"), "-");
  for (const char* bad : {"", "%", "%2", "%0a", "%41", "a b", "a\tb", "%zz", "x%2D"}) {
    EXPECT_FALSE(unescape_field(bad)) << bad;
  }
}

TEST(TlsrptCodec, CountsAreStrictDecimals) {
  EXPECT_EQ(parse_count("0"), 0u);
  EXPECT_EQ(parse_count("9007199254740992"), kMaxCount);
  for (const char* bad : {"", "-1", "+1", "01", "1.0", " 1", "1 ", "9007199254740993", "99999999999999999999", "0x10"}) {
    EXPECT_FALSE(parse_count(bad)) << bad;
  }
}

TEST(TlsrptCodec, BatchRoundTrips) {
  const Batch b = sample();
  ASSERT_EQ(b.sessions(), 10u);
  std::string error;
  const auto back = Batch::decode(b.encode(), &error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(*back, b);
  EXPECT_EQ(back->encode(), b.encode());
  const auto empty = Batch::decode(Batch().encode(), &error);
  ASSERT_TRUE(empty) << error;
  EXPECT_TRUE(empty->empty());
}

TEST(TlsrptCodec, DroppedDetailsRoundTrip) {
  Batch b;
  for (int i = 0; i < 5; ++i) {
    b.add(failure(kDay, Result::certificate_host_mismatch, "mx" + std::to_string(i) + ".example.com", ""),
          sts_policy(), 2);
  }
  ASSERT_EQ(b.dropped_details(), 3u);
  std::string error;
  const auto back = Batch::decode(b.encode(), &error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(*back, b);
  EXPECT_EQ(back->dropped_details(), 3u);
}

// A session that breaks the collectors' contract (an upper-case MX name, a HELO with a space)
// does not cost the whole spooled batch: its detail is left out, its failure kept as dropped.
TEST(TlsrptCodec, AnInvalidDetailIsCountedAsDroppedNotRefused) {
  Batch b = sample();
  auto bad = failure(kDay + 30, Result::certificate_expired, "MX1.Example.COM.", "");
  bad.receiving_mx_helo = "mx1 ESMTP";
  b.add(bad, sts_policy());
  std::string error;
  const auto back = Batch::decode(b.encode(), &error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->sessions(), b.sessions());
  EXPECT_EQ(back->dropped_details(), 1u);
  const auto& counts = back->entries();
  std::uint64_t failures = 0, detailed = 0;
  for (const auto& [k, e] : counts) {
    failures += e.counts.failure;
    for (const auto& [d, n] : e.counts.details) detailed += n;
  }
  EXPECT_EQ(failures, 5u);
  EXPECT_EQ(detailed, 4u);
}

// Replaces the first `from` in `s` by `to` (the test fails when it is not there).
std::string edit(std::string s, const std::string& from, const std::string& to) {
  const auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

TEST(TlsrptCodec, RefusesWhatIsNotABatch) {
  const std::string good = sample().encode();
  const std::string no_end = good.substr(0, good.size() - 4);
  struct Case {
    const char* what;
    std::string text;
  } cases[] = {
      {"empty", ""},
      {"other magic", edit(good, "mta-sts-tlsrpt-batch", "mta-sts-batch")},
      {"version 2", edit(good, "mta-sts-tlsrpt-batch 1", "mta-sts-tlsrpt-batch 2")},
      {"torn (no end)", no_end},
      {"torn mid-line", good.substr(0, good.size() / 2)},
      {"no final newline", good.substr(0, good.size() - 1)},
      {"text after end", good + "e x\n"},
      {"sessions mismatch", edit(good, " 10 ", " 11 ")},
      {"success altered", edit(good, " 5 3 2\n", " 6 3 2\n")},
      {"unknown result type", edit(good, "certificate-expired", "certificate-exploded")},
      {"success as a detail", edit(good, "d 2 certificate-expired", "d 2 success")},
      {"detail count 0", edit(good, "d 2 certificate-expired", "d 0 certificate-expired")},
      {"details above failures", edit(good, "d 2 certificate-expired", "d 3 certificate-expired")},
      {"bad IP", edit(good, " 192.0.2.10 ", " 192.0.2.300 ")},
      {"bad HELO", edit(good, "[192.0.2.10]", "[192.0.2.10]\x7f")},
      {"upper-case MX", edit(good, "mx1.example.com -", "MX1.example.com -")},
      {"raw tab", edit(good, "%09", "\t")},
      {"non-canonical escape", edit(good, "%25", "%2a")},
      {"invalid day", edit(good, "2026-12-07", "2026-02-30")},
      {"invalid domain", edit(good, "e 2026-12-07 example.com", "e 2026-12-07 exa_mple.com")},
      {"policy key mismatch", edit(good, "mode:%20enforce", "mode:%20testing")},
      {"unknown policy type", edit(good, "p sts", "p dane")},
      {"policy count mismatch", edit(good, "p sts 5 2", "p sts 5 3")},
      {"huge entry count", edit(good, "mta-sts-tlsrpt-batch 1 3", "mta-sts-tlsrpt-batch 1 99999999")},
      {"negative count", edit(good, " 10 ", " -10 ")},
      {"leading zero", edit(good, " 10 ", " 010 ")},
  };
  for (const auto& c : cases) {
    std::string error;
    EXPECT_FALSE(Batch::decode(c.text, &error)) << c.what;
    EXPECT_FALSE(error.empty()) << c.what;
  }
  std::string error;
  EXPECT_TRUE(Batch::decode(good, &error)) << error;
}

TEST(TlsrptCodec, RefusesAnOversizedBatchBeforeReadingIt) {
  std::string huge(kMaxBatchBytes + 1, 'x');
  std::string error;
  EXPECT_FALSE(Batch::decode(huge, &error));
  EXPECT_NE(error.find("larger"), std::string::npos) << error;
}

TEST(TlsrptCodec, DetailsAndPoliciesValidateLikeNetworkInput) {
  FailureDetail d;
  d.result = Result::certificate_expired;
  d.receiving_mx_hostname = "mx.example.com";
  d.receiving_ip = "192.0.2.1";
  std::string why;
  EXPECT_TRUE(valid_detail(d, &why)) << why;
  auto back = decode_detail(encode_detail(d), &why);
  ASSERT_TRUE(back) << why;
  EXPECT_EQ(*back, d);
  for (const char* text : {"success - - - - - -", "certificate-expired - - - -", "certificate-expired - mx..x - - - -",
                           "certificate-expired 1.2.3 - - - - -", "certificate-expired - - a\x01 - - -"}) {
    EXPECT_FALSE(decode_detail(text, &why)) << text;
  }
  const std::string long_info(kMaxAdditionalInformation + 1, 'a');
  EXPECT_FALSE(decode_detail("certificate-expired - - - - " + long_info + " -", &why));

  const auto p = decode_policy(encode_policy(sts_policy()), &why);
  ASSERT_TRUE(p) << why;
  EXPECT_EQ(*p, sts_policy());
  EXPECT_EQ(decode_policy("no-policy-found 0 0", &why), AppliedPolicy{});
  for (const char* text : {"", "sts", "sts 1 0", "sts 0 1 -", "sts 0 1 MX.example.com", "no-policy-found 1 0 x",
                           "sts 0 1 *.*.example.com", "sts 01 0 x"}) {
    EXPECT_FALSE(decode_policy(text, &why)) << text;
  }
}

TEST(TlsrptCodec, NormalHostNames) {
  for (const char* ok : {"example.com", "mx1.example.com", "xn--bcher-kva.example", "a", "a-b.c"}) {
    EXPECT_TRUE(is_normal_host(ok)) << ok;
  }
  for (const char* bad : {"", ".", "example.com.", ".example.com", "Example.com", "a..b", "-a.b", "a-.b", "a_b.c",
                          "a b.c", "192.0.2.1x\xC3\xA9"}) {
    EXPECT_FALSE(is_normal_host(bad)) << bad;
  }
  EXPECT_FALSE(is_normal_host(std::string(64, 'a') + ".com"));
}

}  // namespace
}  // namespace mtasts::tlsrpt
