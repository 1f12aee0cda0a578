// The `_smtp._tls` TXT record parser (common/tlsrpt/record.hpp): RFC 8460 section 3 as a
// table of cases, and the hostile records of issue 20.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/tlsrpt/record.hpp"

namespace mtasts::tlsrpt {
namespace {

struct Good {
  const char* txt;
  std::vector<std::string> targets;  // expected usable targets, in order
};

TEST(TlsrptRecord, ValidRecords) {
  const Good cases[] = {
      {"v=TLSRPTv1; rua=mailto:reports@example.com", {"reports@example.com"}},
      {"v=TLSRPTv1;rua=mailto:reports@example.com", {"reports@example.com"}},
      {"v=TLSRPTv1 ; rua=mailto:reports@example.com ;", {"reports@example.com"}},
      {"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", {"https://reporting.example.com/v1/tlsrpt"}},
      {"v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.net/x",
       {"a@example.com", "https://r.example.net/x"}},
      {"v=TLSRPTv1; rua=mailto:a@example.com , mailto:b@example.org", {"a@example.com", "b@example.org"}},
      // the domain is normalised; the scheme is case-insensitive
      {"v=TLSRPTv1; rua=MAILTO:Tls.Rpt+x@EXAMPLE.COM.", {"Tls.Rpt+x@example.com"}},
      // %-encoding decoded before validation
      {"v=TLSRPTv1; rua=mailto:tls%2Brpt@example.com", {"tls+rpt@example.com"}},
      // extensions are ignored
      {"v=TLSRPTv1; ext=foo; rua=mailto:a@example.com; x_y.z=1", {"a@example.com"}},
      // a second rua field: the first counts
      {"v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", {"a@example.com"}},
      // one unusable URI among usable ones: skipped
      {"v=TLSRPTv1; rua=ftp://x.example/,mailto:a@example.com", {"a@example.com"}},
      // the same address twice: sent once
      {"v=TLSRPTv1; rua=mailto:a@example.com,mailto:a@EXAMPLE.com", {"a@example.com"}},
  };
  for (const auto& c : cases) {
    RecordParse p = parse_record(c.txt);
    ASSERT_TRUE(p.record) << c.txt << ": " << p.error;
    std::vector<std::string> got;
    for (const auto& r : p.record->rua) got.push_back(r.target);
    EXPECT_EQ(got, c.targets) << c.txt;
  }
  RecordParse p = parse_record("v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.net/x");
  ASSERT_TRUE(p.record);
  EXPECT_EQ(p.record->rua[0].scheme, ReportUri::Scheme::mailto);
  EXPECT_EQ(p.record->rua[0].uri, "mailto:a@example.com");
  EXPECT_EQ(p.record->rua[1].scheme, ReportUri::Scheme::https);
}

TEST(TlsrptRecord, InvalidRecords) {
  const char* cases[] = {
      "",
      "v=TLSRPTv1",                        // no rua
      "v=TLSRPTv1;",                       // no rua
      "v=TLSRPTv2; rua=mailto:a@example.com",
      "V=TLSRPTv1; rua=mailto:a@example.com",
      "v=TLSRPTv1 rua=mailto:a@example.com",
      "v=TLSRPTv1; rua=",                   // empty URI
      "v=TLSRPTv1; rua=mailto:a@example.com,",
      "v=TLSRPTv1; rua=reports@example.com",  // no scheme: nothing usable
      "v=TLSRPTv1; rua=http://r.example.com/",  // http: not allowed
      "v=TLSRPTv1; RUA=mailto:a@example.com",   // an extension, so rua is missing
      "v=TLSRPTv1; rua=mailto:a@example.com; =x",
      "v=TLSRPTv1; rua=mailto:a@example.com; ext=",
      "v=TLSRPTv1; rua=mailto:a@example.com junk",
      "v=TLSRPTv1; rua=mailto:a@example.com; caf\xc3\xa9=1",
  };
  for (const char* c : cases) {
    RecordParse p = parse_record(c);
    EXPECT_FALSE(p.record) << c;
    EXPECT_FALSE(p.error.empty()) << c;
  }
}

// Issue 20's hostile records: never a header, a second recipient or an option.
TEST(TlsrptRecord, MailtoInjectionIsRejected) {
  const char* uris[] = {
      "mailto:a@example.com%0D%0ABcc:victim@example.org",
      "mailto:a%0A@example.com",
      "mailto:a%0D@example.com",
      "mailto:a%00@example.com",
      "mailto:a@example.com%00",
      "mailto:a@example.com%2Cvictim@example.org",  // a second address
      "mailto:a@example.com%3E",
      "mailto:%3Ca@example.com",
      "mailto:a%20b@example.com",
      "mailto:%22a%20b%22@example.com",             // quoted local part
      "mailto:a@example.com?subject=hi",
      "mailto:a@example.com?bcc=victim@example.org",
      "mailto:a@example.com%3Fbcc=x",               // domain with "?"
      "mailto:-oQ/tmp/x@example.com",               // an option for sendmail
      "mailto:a@%5B192.0.2.1%5D",                   // address literal
      "mailto:a@localhost",                         // not a host name (one label)
      "mailto:a..b@example.com",
      "mailto:.a@example.com",
      "mailto:@example.com",
      "mailto:a@",
      "mailto:a",
      "mailto:a%2",
      "mailto:a%zz@example.com",
      "mailto:a(comment)@example.com",
      "mailto:a%3Bb@example.com",
      "mailto:a%5C@example.com",
      "mailto:a%3A@example.com",
      "mailto:a%C3%A9@example.com",                 // non-ASCII
      "mailto:a@ex%0Aample.com",
      "https://user@r.example.com/",
      "https://",
      "https:///x",
      "https://r.example.com/#frag",
  };
  for (const char* uri : uris) {
    RecordParse p = parse_record(std::string("v=TLSRPTv1; rua=") + uri);
    EXPECT_FALSE(p.record) << uri;
    EXPECT_EQ(p.warnings.size(), 1u) << uri;
    // and beside a good one, the good one alone is used
    RecordParse q = parse_record(std::string("v=TLSRPTv1; rua=") + uri + ",mailto:ok@example.com");
    ASSERT_TRUE(q.record) << uri << ": " << q.error;
    ASSERT_EQ(q.record->rua.size(), 1u) << uri;
    EXPECT_EQ(q.record->rua[0].target, "ok@example.com") << uri;
  }
  // Raw control characters anywhere: the record as a whole is refused.
  for (const char* txt : {"v=TLSRPTv1; rua=mailto:a@example.com\r\nBcc: x@example.org",
                          "v=TLSRPTv1; rua=mailto:a@example.com\n", "v=TLSRPTv1; rua=mailto:a@ex\x7f.com"}) {
    RecordParse p = parse_record(txt);
    EXPECT_FALSE(p.record) << txt;
    EXPECT_NE(p.error.find("control"), std::string::npos) << p.error;
  }
  std::string with_nul = "v=TLSRPTv1; rua=mailto:a@example.com";
  with_nul.push_back('\0');
  with_nul += "x";
  RecordParse nul = parse_record(with_nul);
  EXPECT_FALSE(nul.record);
}

TEST(TlsrptRecord, EveryAcceptedTargetIsHeaderSafe) {
  // Whatever was accepted can be written into a header and an argv as is.
  RecordParse p = parse_record(
      "v=TLSRPTv1; rua=mailto:a.b+c@example.com,mailto:x%21y@example.org,https://r.example.com/p?q=1%2C2");
  ASSERT_TRUE(p.record) << p.error;
  for (const auto& r : p.record->rua) {
    for (char c : r.target) {
      EXPECT_GT(static_cast<unsigned char>(c), 0x20) << r.target;
      EXPECT_LT(static_cast<unsigned char>(c), 0x7f) << r.target;
      if (r.scheme == ReportUri::Scheme::mailto) {
        EXPECT_EQ(std::string("<>,;:\"\\()[]").find(c), std::string::npos) << r.target;
      }
    }
  }
  EXPECT_EQ(p.record->rua[1].target, "x!y@example.org");
}

TEST(TlsrptRecord, ThousandRuasAreCapped) {
  std::string txt = "v=TLSRPTv1; rua=";
  for (int i = 0; i < 1000; ++i) {
    if (i) txt += ",";
    txt += "mailto:r" + std::to_string(i) + "@example.com";
  }
  RecordParse p = parse_record(txt);
  ASSERT_TRUE(p.record) << p.error;
  EXPECT_EQ(p.record->rua.size(), 10u);
  EXPECT_EQ(p.record->rua[0].target, "r0@example.com");
  EXPECT_EQ(p.record->rua[9].target, "r9@example.com");
  ASSERT_FALSE(p.warnings.empty());
  EXPECT_NE(p.warnings.back().find("990 more rua URIs skipped"), std::string::npos) << p.warnings.back();
  EXPECT_EQ(p.skipped, 990u);

  // 1,000 bad URIs: a bounded number of warnings.
  std::string bad = "v=TLSRPTv1; rua=";
  for (int i = 0; i < 1000; ++i) bad += "x" + std::to_string(i) + ",";
  bad += "mailto:a@example.com";
  RecordParse q = parse_record(bad);
  ASSERT_TRUE(q.record);
  EXPECT_LE(q.warnings.size(), 13u);
  EXPECT_EQ(q.skipped, 1000u);
}

TEST(TlsrptRecord, HugeRecordIsRefused) {
  std::string txt = "v=TLSRPTv1; rua=mailto:a@example.com; x=" + std::string(64 * 1024, 'a');
  RecordParse p = parse_record(txt);
  EXPECT_FALSE(p.record);
  EXPECT_NE(p.error.find("longer than"), std::string::npos);
  std::string uri = "v=TLSRPTv1; rua=https://r.example.com/" + std::string(2000, 'a') + ",mailto:a@example.com";
  RecordParse q = parse_record(uri);
  ASSERT_TRUE(q.record);
  EXPECT_EQ(q.record->rua.size(), 1u);
}

TEST(TlsrptRecord, SelectExactlyOne) {
  RecordParse one = select_record({"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.com"});
  ASSERT_TRUE(one.record) << one.error;
  RecordParse two = select_record({"v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1; rua=mailto:b@example.com"});
  EXPECT_FALSE(two.record);
  EXPECT_NE(two.error.find("2 TXT records"), std::string::npos) << two.error;
  // A broken second TLSRPT record still counts: no report.
  RecordParse broken = select_record({"v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1;garbage"});
  EXPECT_FALSE(broken.record);
  EXPECT_TRUE(two.found);
  RecordParse none = select_record({"v=spf1 -all"});
  EXPECT_FALSE(none.record);
  EXPECT_FALSE(none.found);
  EXPECT_TRUE(one.found);
  EXPECT_FALSE(select_record({}).record);
  // "v=TLSRPTv10; ..." does not begin with "v=TLSRPTv1;"
  RecordParse other = select_record({"v=TLSRPTv10; rua=mailto:a@example.com", "v=TLSRPTv1; rua=mailto:b@example.com"});
  ASSERT_TRUE(other.record);
  EXPECT_EQ(other.record->rua[0].target, "b@example.com");
  RecordParse one_invalid = select_record({"v=TLSRPTv1; rua=mailto:a"});
  EXPECT_FALSE(one_invalid.record);
}

}  // namespace
}  // namespace mtasts::tlsrpt
