// Unit tests of mta-sts-ctl's offline subcommands and output formatting: exit codes, the
// fixed JSON shapes (parsed back with a small checker), line numbers in lint messages, and
// warm-list parsing.
#include "ctl/commands.hpp"

#include <gtest/gtest.h>

#include "common/util/json.hpp"
#include "tests/unit/ctl/mini_json.hpp"

namespace mtasts::ctl {
namespace {

using test::JsonValue;
using test::parse_json;

constexpr const char* kGood =
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n";

TEST(Lint, ValidPolicyExitsZeroAndSummarizes) {
  Output o = lint(kGood, "policy.txt", false);
  EXPECT_EQ(o.code, 0);
  EXPECT_NE(o.out.find("policy.txt: valid: mode=enforce max_age=604800 mx=mail.example.com,*.example.net"),
            std::string::npos)
      << o.out;
}

TEST(Lint, InvalidPolicyExitsOneWithLineNumbers) {
  Output o = lint("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 86400\n", "p.txt", false);
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.out.find("p.txt:2: error: "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("p.txt: invalid (1 error"), std::string::npos) << o.out;
}

TEST(Lint, WarningsKeepThePolicyValid) {
  Output o = lint("version: STSv1\nmode: testing\n\nmx: mail.example.com.\nmax_age: 99999999999\n", "-", false);
  // max_age of 11 digits is an error, not a clamp: fix the input to 10 digits.
  EXPECT_EQ(o.code, 1);
  o = lint("version: STSv1\nmode: testing\n\nmx: mail.example.com.\nmax_age: 9999999999\n", "-", false);
  EXPECT_EQ(o.code, 0) << o.out;
  EXPECT_NE(o.out.find("<stdin>:3: warning: "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("<stdin>:4: warning: "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("<stdin>:5: warning: "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("max_age=31557600"), std::string::npos) << o.out;
}

TEST(Lint, DiagnosticsAreInLineOrder) {
  Output o = lint("mode: bogus\nversion: STSv2\nmx: a.example\nmax_age: 1\nfoo: bar\n", "f", false);
  EXPECT_EQ(o.code, 1);
  auto l1 = o.out.find("f:1:"), l2 = o.out.find("f:2:"), l5 = o.out.find("f:5:");
  ASSERT_NE(l1, std::string::npos);
  ASSERT_NE(l2, std::string::npos);
  ASSERT_NE(l5, std::string::npos);
  EXPECT_LT(l1, l2);
  EXPECT_LT(l2, l5);
}

TEST(Lint, JsonValidShape) {
  Output o = lint("version: STSv1\nmode: enforce\nmx: MAIL.example.com.\nmax_age: 40000000\n", "x", true);
  EXPECT_EQ(o.code, 0);
  JsonValue v = parse_json(o.out);
  ASSERT_TRUE(v.is_object()) << o.out;
  EXPECT_EQ(v["valid"].boolean, true);
  EXPECT_TRUE(v["errors"].is_array());
  EXPECT_EQ(v["errors"].array.size(), 0u);
  EXPECT_EQ(v["warnings"].array.size(), 2u);  // trailing dot, clamp
  EXPECT_EQ(v["mode"].string, "enforce");
  EXPECT_EQ(v["max_age"].number, 31557600);
  ASSERT_EQ(v["mx"].array.size(), 1u);
  EXPECT_EQ(v["mx"].array[0].string, "mail.example.com");
}

TEST(Lint, JsonInvalidShapeHasNoPolicyFields) {
  Output o = lint("version: STSv1\nmode: enforce\nmax_age: 1\n", "x", true);
  EXPECT_EQ(o.code, 1);
  JsonValue v = parse_json(o.out);
  ASSERT_TRUE(v.is_object()) << o.out;
  EXPECT_EQ(v["valid"].boolean, false);
  ASSERT_EQ(v["errors"].array.size(), 1u);
  EXPECT_TRUE(v["warnings"].is_array());
  EXPECT_FALSE(v.has("mode"));
  EXPECT_FALSE(v.has("max_age"));
  EXPECT_FALSE(v.has("mx"));
}

TEST(Lint, OversizedFileIsInvalid) {
  Output o = lint(std::string(65537, 'x'), "big", true, /*truncated=*/true);
  EXPECT_EQ(o.code, 1);
  JsonValue v = parse_json(o.out);
  ASSERT_EQ(v["errors"].array.size(), 1u);
  EXPECT_NE(v["errors"].array[0].string.find("65536"), std::string::npos);
}

TEST(Lint, HostileFileNameIsEscaped) {
  Output o = lint(kGood, "a\x1b[2Jb", false);
  EXPECT_EQ(o.out.find('\x1b'), std::string::npos);
}

TEST(CheckTxt, Table) {
  struct Row {
    std::vector<std::string> records;
    int code;
    std::string id;
  };
  const Row rows[] = {
      {{"v=STSv1; id=20260424T120000Z;"}, 0, "20260424T120000Z"},
      {{"v=STSv1; id=abc"}, 0, "abc"},
      {{"v=spf1 -all", "v=STSv1; id=abc;"}, 0, "abc"},
      {{"v=spf1 -all"}, 1, ""},
      {{"v=STSv1; id=a;", "v=STSv1; id=b;"}, 1, ""},
      {{"v=STSv1; id=has-dash;"}, 1, ""},
      {{"v=STSv1;"}, 1, ""},
      {{"v=STSv12; id=abc;"}, 1, ""},
  };
  for (const Row& r : rows) {
    Output o = check_txt(r.records, true);
    EXPECT_EQ(o.code, r.code) << r.records[0];
    JsonValue v = parse_json(o.out);
    ASSERT_TRUE(v.is_object()) << o.out;
    EXPECT_EQ(v["valid"].boolean, r.code == 0);
    EXPECT_TRUE(v["errors"].is_array());
    EXPECT_TRUE(v["warnings"].is_array());
    if (r.code == 0) {
      EXPECT_EQ(v["id"].string, r.id);
    } else {
      EXPECT_FALSE(v.has("id"));
    }
  }
}

TEST(CheckTxt, HumanOutput) {
  EXPECT_EQ(check_txt({"v=STSv1; id=abc;"}, false).out, "policy id abc\n");
  Output o = check_txt({"v=STSv1; id=a;", "v=STSv1; id=b;"}, false);
  EXPECT_NE(o.out.find("error: "), std::string::npos);
  EXPECT_NE(o.out.find("no policy"), std::string::npos);
}

TEST(Match, Table) {
  struct Row {
    const char* pattern;
    const char* host;
    int code;
  };
  const Row rows[] = {
      {"mail.example.com", "mail.example.com", 0},
      {"mail.example.com", "MAIL.Example.COM.", 0},
      {"*.example.com", "mx1.example.com", 0},
      {"*.example.com", "example.com", 1},
      {"*.example.com", "a.b.example.com", 1},
      {"mail.example.com", "mail.example.net", 1},
      {"*.*.example.com", "a.b.example.com", 2},
      {"mail..example.com", "x", 2},
      {"192.0.2.1", "192.0.2.1", 2},
      {"", "x.example", 2},
  };
  for (const Row& r : rows) {
    Output o = match(r.pattern, r.host);
    EXPECT_EQ(o.code, r.code) << r.pattern << " " << r.host << ": " << o.out << o.err;
    if (r.code == 2) {
      EXPECT_FALSE(o.err.empty());
    }
  }
}

TEST(DomainList, CommentsBlankLinesDuplicatesAndBadLines) {
  DomainList l = parse_domain_list(
      "# top destinations\n"
      "Example.COM.\n"
      "\n"
      "  example.net   # trailing comment\r\n"
      "example.com\n"
      "not a domain\n"
      "[192.0.2.1]\n"
      "b\xc3\xbc"
      "cher.example\n"
      "last.example");
  ASSERT_EQ(l.domains.size(), 4u);
  EXPECT_EQ(l.domains[0].str(), "example.com");
  EXPECT_EQ(l.domains[1].str(), "example.net");
  EXPECT_EQ(l.domains[2].str(), "xn--bcher-kva.example");
  EXPECT_EQ(l.domains[3].str(), "last.example");
  ASSERT_EQ(l.bad.size(), 2u);
  EXPECT_EQ(l.bad[0].line, 6u);
  EXPECT_EQ(l.bad[1].line, 7u);
  EXPECT_NE(l.bad[1].error.find("address literal"), std::string::npos);
}

TEST(Safe, TerminalAndUtf8) {
  EXPECT_EQ(terminal_safe("plain text"), "plain text");
  EXPECT_EQ(terminal_safe("a\x1b[2Jb\\\n"), "a\\x1b[2Jb\\x5c\\x0a");
  EXPECT_EQ(terminal_safe("abcdef", 3), "abc...");
  EXPECT_EQ(terminal_safe("caf\xc3\xa9"), "caf\\xc3\\xa9");

  const std::string r = "\xef\xbf\xbd";
  EXPECT_EQ(utf8_safe("ascii"), "ascii");
  EXPECT_EQ(utf8_safe("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(utf8_safe("a\xff" "b"), "a" + r + "b");
  EXPECT_EQ(utf8_safe("\xc3"), r);                  // truncated
  EXPECT_EQ(utf8_safe("\xc0\xaf"), r + r);          // overlong
  EXPECT_EQ(utf8_safe("\xed\xa0\x80"), r + r + r);  // surrogate
  EXPECT_EQ(utf8_safe("\xf4\x90\x80\x80"), r + r + r + r);  // past U+10FFFF
  // What comes out is always valid JSON once quoted.
  test::JsonValue v = parse_json("[" + json::quote(utf8_safe("\x01\xfe\"")) + "]");
  EXPECT_TRUE(v.is_array());
}

TEST(Format, TimesAndDurations) {
  EXPECT_EQ(format_time(SysTime{Seconds{1777032000}}), "2026-04-24T12:00:00Z");
  EXPECT_EQ(format_time(SysTime{Seconds{0}}), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_duration(Seconds{0}), "0s");
  EXPECT_EQ(format_duration(Seconds{59}), "59s");
  EXPECT_EQ(format_duration(Seconds{61}), "1m1s");
  EXPECT_EQ(format_duration(Seconds{3600}), "1h");
  EXPECT_EQ(format_duration(Seconds{90000}), "1d1h");
  EXPECT_EQ(format_duration(Seconds{-7200}), "-2h");
}

CacheEntry sample_entry(SysTime now) {
  CacheEntry e;
  StoredPolicy sp;
  auto parsed = parse_policy(kGood);
  sp.policy = *parsed.policy;
  sp.raw = std::string(kGood) + "note: \x1b]0;evil\x07\n";
  sp.id = "abc123";
  sp.fetched_at = now - Seconds{3600};
  sp.expires_at = now + Seconds{604800 - 3600};
  e.policy = sp;
  e.checked_at = now - Seconds{3600};
  e.next_refresh = now + Seconds{82800};
  return e;
}

TEST(RenderEntry, HumanShowsPolicyAndEscapesRawText) {
  const SysTime now{Seconds{1777032000}};
  auto d = *Domain::parse("example.com").domain;
  std::string s = render_entry(d, sample_entry(now), now, false);
  EXPECT_NE(s.find("verdict       enforce"), std::string::npos) << s;
  EXPECT_NE(s.find("id=abc123"), std::string::npos) << s;
  EXPECT_NE(s.find("mail.example.com *.example.net"), std::string::npos) << s;
  EXPECT_NE(s.find("(1h ago)"), std::string::npos) << s;
  EXPECT_NE(s.find("  version: STSv1"), std::string::npos) << s;
  EXPECT_EQ(s.find('\x1b'), std::string::npos);
  EXPECT_EQ(s.find('\x07'), std::string::npos);
}

TEST(RenderEntry, JsonShape) {
  const SysTime now{Seconds{1777032000}};
  auto d = *Domain::parse("example.com").domain;
  CacheEntry e = sample_entry(now);
  FailureState f;
  f.kind = FailureKind::fetch;
  f.error = "HTTP 404";
  f.count = 2;
  f.retry_after = now + Seconds{600};
  e.failure = f;
  JsonValue v = parse_json(render_entry(d, e, now, true));
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v["domain"].string, "example.com");
  EXPECT_EQ(v["verdict"].string, "enforce");
  EXPECT_EQ(v["policy"]["mode"].string, "enforce");
  EXPECT_EQ(v["policy"]["id"].string, "abc123");
  EXPECT_EQ(v["policy"]["mx"].array.size(), 2u);
  EXPECT_EQ(v["policy"]["usable"].boolean, true);
  EXPECT_EQ(v["failure"]["kind"].string, "fetch");
  EXPECT_EQ(v["failure"]["count"].number, 2);
  EXPECT_TRUE(v["no_policy_until"].is_null());
  EXPECT_EQ(v["checked_at"].string, "2026-04-24T11:00:00Z");
}

TEST(RenderEntry, NegativeEntry) {
  const SysTime now{Seconds{1777032000}};
  auto d = *Domain::parse("nopolicy.example").domain;
  CacheEntry e;
  e.no_policy_until = now + Seconds{3600};
  e.checked_at = now;
  e.next_refresh = now + Seconds{3600};
  JsonValue v = parse_json(render_entry(d, e, now, true));
  EXPECT_EQ(v["verdict"].string, "no-policy");
  EXPECT_TRUE(v["policy"].is_null());
  EXPECT_EQ(v["no_policy_until"].string, "2026-04-24T13:00:00Z");
  std::string s = render_entry(d, e, now, false);
  EXPECT_NE(s.find("no policy     until 2026-04-24T13:00:00Z (in 1h)"), std::string::npos) << s;
}

TEST(RenderList, HumanAndJson) {
  std::vector<ListRow> rows{{"a.example", "enforce", "id1", "enforce", SysTime{Seconds{1777032000}}},
                            {"b.example", "no-policy", "", "", SysTime{}}};
  std::string h = render_list(rows, false);
  EXPECT_NE(h.find("a.example"), std::string::npos);
  EXPECT_NE(h.find("id=id1 expires=2026-04-24T12:00:00Z"), std::string::npos) << h;
  JsonValue v = parse_json(render_list(rows, true));
  EXPECT_EQ(v["count"].number, 2);
  ASSERT_EQ(v["domains"].array.size(), 2u);
  EXPECT_EQ(v["domains"].array[0]["mode"].string, "enforce");
  EXPECT_FALSE(v["domains"].array[1].has("mode"));
}

}  // namespace
}  // namespace mtasts::ctl
