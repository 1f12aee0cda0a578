// Table of policy files (RFC 8461 section 3.2, RFC-NOTES.md "The policy file"): each row is
// one rule or project decision, with the exact errors and warnings (line and text) expected.
#include "common/sts/policy.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mtasts {
namespace {

struct Diag {
  std::size_t line;
  std::string contains;
};

struct Row {
  const char* name;
  std::string text;
  bool valid;
  Mode mode = Mode::enforce;
  long long max_age = 0;
  std::vector<std::string> mx = {};
  std::vector<Diag> errors = {};
  std::vector<Diag> warnings = {};
};
std::ostream& operator<<(std::ostream& os, const Row& r) { return os << r.name; }

const std::vector<std::string> kMail = {"mail.example.com"};

// Lines joined with LF, with a final LF.
std::string lf(std::initializer_list<const char*> lines) {
  std::string s;
  for (const char* l : lines) s += std::string(l) + "\n";
  return s;
}

const std::string kGood = lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: 86400"});

std::string big_policy(std::size_t total) {
  std::string head = kGood + "x: ";
  std::string s = head + std::string(total - head.size() - 1, 'a') + "\n";
  return s;
}

const Row kRows[] = {
    // Line structure: LF or CRLF, optional final terminator
    {"lf_lines", kGood, true, Mode::enforce, 86400, kMail},
    {"crlf_lines", "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 86400\r\n", true,
     Mode::enforce, 86400, kMail},
    {"no_final_terminator", "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400", true,
     Mode::enforce, 86400, kMail},
    {"crlf_no_final_terminator", "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 86400",
     true, Mode::enforce, 86400, kMail},
    {"mixed_lf_and_crlf", "version: STSv1\r\nmode: enforce\nmx: mail.example.com\r\nmax_age: 86400\n", true,
     Mode::enforce, 86400, kMail},
    {"bare_cr_is_not_a_terminator", "version: STSv1\rmode: enforce\nmx: mail.example.com\nmax_age: 86400\n",
     false, Mode::enforce, 0, {}, {{1, "version must be"}, {0, "\"mode\" is missing"}}},
    {"keys_in_any_order", lf({"max_age: 86400", "mx: mail.example.com", "mode: enforce", "version: STSv1"}),
     true, Mode::enforce, 86400, kMail},
    // key ":" *WSP value *WSP
    {"no_space_after_colon", lf({"version:STSv1", "mode:enforce", "mx:mail.example.com", "max_age:86400"}),
     true, Mode::enforce, 86400, kMail},
    {"tabs_and_spaces_after_colon", lf({"version:\t STSv1", "mode: \tenforce", "mx:  mail.example.com", "max_age:\t86400"}),
     true, Mode::enforce, 86400, kMail},
    {"trailing_whitespace_ignored", lf({"version: STSv1 ", "mode: enforce\t", "mx: mail.example.com  ", "max_age: 86400 \t"}),
     true, Mode::enforce, 86400, kMail},
    {"trailing_whitespace_crlf", "version: STSv1 \r\nmode: enforce\t\r\nmx: mail.example.com \r\nmax_age: 86400 \r\n",
     true, Mode::enforce, 86400, kMail},
    {"space_before_colon_error", lf({"version: STSv1", "mode : enforce", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{2, "invalid key"}, {0, "\"mode\" is missing"}}},
    {"leading_whitespace_error", lf({"version: STSv1", " mode: enforce", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{2, "invalid key"}, {0, "\"mode\" is missing"}}},
    {"line_without_colon_error", lf({"version: STSv1", "mode: enforce", "mx mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{3, "no \":\""}, {0, "mx is required"}}},
    {"value_with_inner_space_error", lf({"version: STSv1", "mode: enforce now", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{2, "mode must be"}}},
    {"colon_in_value_kept", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: 86400", "note: a:b"}),
     true, Mode::enforce, 86400, kMail, {}, {{5, "unknown key"}}},
    // Keys and the values STSv1, enforce, testing, none are case-sensitive
    {"key_case_sensitive", lf({"version: STSv1", "Mode: enforce", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{0, "\"mode\" is missing"}}, {{2, "case-sensitive"}}},
    {"version_value_case_sensitive", lf({"version: stsv1", "mode: enforce", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{1, "version must be"}}},
    {"mode_value_case_sensitive", lf({"version: STSv1", "mode: Enforce", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{2, "mode must be"}}},
    {"version_other_value_error", lf({"version: STSv2", "mode: enforce", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{1, "version must be"}}},
    {"version_empty_error", lf({"version:", "mode: enforce", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{1, "version must be"}}},
    {"mode_unknown_error", lf({"version: STSv1", "mode: reject", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{2, "mode must be"}}},
    // Modes
    {"mode_testing", lf({"version: STSv1", "mode: testing", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::testing, 86400, kMail},
    {"mode_none_without_mx", lf({"version: STSv1", "mode: none", "max_age: 86400"}), true, Mode::none, 86400, {}},
    {"mode_none_with_mx", lf({"version: STSv1", "mode: none", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::none, 86400, kMail},
    {"mode_none_with_bad_mx_only", lf({"version: STSv1", "mode: none", "mx: 192.0.2.1", "max_age: 86400"}),
     true, Mode::none, 86400, {}, {}, {{3, "dropped"}}},
    // Each of version, mode, max_age exactly once; a repeat is ignored (first wins)
    {"version_missing_error", lf({"mode: enforce", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{0, "\"version\" is missing"}}},
    {"mode_missing_error", lf({"version: STSv1", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{0, "\"mode\" is missing"}}},
    {"max_age_missing_error", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com"}),
     false, Mode::enforce, 0, {}, {{0, "\"max_age\" is missing"}}},
    {"empty_file_error", "", false, Mode::enforce, 0, {},
     {{0, "\"version\" is missing"}, {0, "\"mode\" is missing"}, {0, "\"max_age\" is missing"}}},
    {"version_repeated_first_wins", lf({"version: STSv1", "version: STSv2", "mode: enforce", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{2, "repeated key \"version\""}}},
    {"mode_repeated_first_wins", lf({"version: STSv1", "mode: enforce", "mode: none", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "repeated key \"mode\""}}},
    {"max_age_repeated_first_wins", lf({"version: STSv1", "mode: testing", "mx: mail.example.com", "max_age: 600", "max_age: 86400"}),
     true, Mode::testing, 600, kMail, {}, {{5, "repeated key \"max_age\""}}},
    {"mode_repeated_first_invalid_still_counts", lf({"version: STSv1", "mode: bogus", "mode: enforce", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{2, "mode must be"}}, {{3, "repeated key \"mode\""}}},
    // max_age: 1 to 10 digits, 0 valid, clamped above 31557600
    {"max_age_zero_valid", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: 0"}),
     true, Mode::enforce, 0, kMail},
    {"max_age_leading_zeros", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: 0086400"}),
     true, Mode::enforce, 86400, kMail},
    {"max_age_at_limit_not_clamped", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: 31557600"}),
     true, Mode::enforce, 31557600, kMail},
    {"max_age_above_limit_clamped", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: 31557601"}),
     true, Mode::enforce, 31557600, kMail, {}, {{4, "clamped"}}},
    {"max_age_ten_digits_clamped", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: 9999999999"}),
     true, Mode::enforce, 31557600, kMail, {}, {{4, "clamped"}}},
    {"max_age_eleven_digits_error", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: 10000000000"}),
     false, Mode::enforce, 0, {}, {{4, "1 to 10 digits"}}},
    {"max_age_negative_error", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: -1"}),
     false, Mode::enforce, 0, {}, {{4, "1 to 10 digits"}}},
    {"max_age_plus_sign_error", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: +5"}),
     false, Mode::enforce, 0, {}, {{4, "1 to 10 digits"}}},
    {"max_age_fraction_error", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: 1.5"}),
     false, Mode::enforce, 0, {}, {{4, "1 to 10 digits"}}},
    {"max_age_unit_error", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: 86400s"}),
     false, Mode::enforce, 0, {}, {{4, "1 to 10 digits"}}},
    {"max_age_empty_error", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age:"}),
     false, Mode::enforce, 0, {}, {{4, "1 to 10 digits"}}},
    {"max_age_inner_space_error", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: 86 400"}),
     false, Mode::enforce, 0, {}, {{4, "1 to 10 digits"}}},
    // mx: one or more, required unless mode none
    {"mx_missing_enforce_error", lf({"version: STSv1", "mode: enforce", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{0, "mx is required"}}},
    {"mx_missing_testing_error", lf({"version: STSv1", "mode: testing", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{0, "mx is required"}}},
    {"mx_several_in_order", lf({"version: STSv1", "mode: enforce", "mx: b.example.com", "mx: *.example.net", "mx: a.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, {"b.example.com", "*.example.net", "a.example.com"}},
    {"mx_wildcard", lf({"version: STSv1", "mode: enforce", "mx: *.Example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, {"*.example.com"}},
    {"mx_alabel", lf({"version: STSv1", "mode: enforce", "mx: mx.xn--bcher-kva.example", "max_age: 86400"}),
     true, Mode::enforce, 86400, {"mx.xn--bcher-kva.example"}},
    {"mx_trailing_dot_tolerated", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com.", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "trailing dot"}}},
    {"mx_bad_pattern_dropped_policy_valid", lf({"version: STSv1", "mode: enforce", "mx: bad_host.example.com", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "dropped"}}},
    {"mx_ip_address_dropped", lf({"version: STSv1", "mode: enforce", "mx: 192.0.2.25", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "IP address"}}},
    {"mx_ipv6_address_dropped", lf({"version: STSv1", "mode: enforce", "mx: 2001:db8::25", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "IP address"}}},
    {"mx_ulabel_dropped", lf({"version: STSv1", "mode: enforce", "mx: mx.b\xc3\xbc" "cher.example", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "A-labels"}}},
    {"mx_bad_wildcard_dropped", lf({"version: STSv1", "mode: enforce", "mx: mail.*.example.com", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "dropped"}}},
    {"mx_empty_dropped", lf({"version: STSv1", "mode: enforce", "mx:", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "empty"}}},
    {"mx_inner_space_dropped", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com other.example.com", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "dropped"}}},
    {"mx_all_dropped_error", lf({"version: STSv1", "mode: enforce", "mx: 192.0.2.25", "mx: -bad.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{0, "no valid mx"}}, {{3, "dropped"}, {4, "dropped"}}},
    {"mx_key_case_sensitive", lf({"version: STSv1", "mode: enforce", "MX: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{0, "mx is required"}}, {{3, "case-sensitive"}}},
    // Unknown keys are ignored (values may be UTF-8)
    {"unknown_key_ignored", lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "max_age: 86400", "comment: hello world"}),
     true, Mode::enforce, 86400, kMail, {}, {{5, "unknown key"}}},
    {"unknown_key_utf8_value", lf({"version: STSv1", "mode: enforce", "comment: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "unknown key"}}},
    {"unknown_key_invalid_utf8_value", lf({"version: STSv1", "mode: enforce", "comment: \xff\xfe", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "not valid UTF-8"}}},
    {"unknown_key_control_char_said_so", lf({"version: STSv1", "mode: enforce", "comment: a\x01" "b", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "control character (0x01)"}}},
    {"mx_invalid_utf8_said_so", lf({"version: STSv1", "mode: enforce", "mx: \xff.example.com", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "not valid UTF-8"}}},
    {"mx_single_label_accepted", lf({"version: STSv1", "mode: enforce", "mx: *.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, {"*.com"}, {}, {}},
    {"unknown_key_empty_value", lf({"version: STSv1", "mode: enforce", "x-note:", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "unknown key"}}},
    {"unknown_key_name_punctuation", lf({"version: STSv1", "mode: enforce", "a_b-c.d: 1", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "unknown key"}}},
    {"unknown_key_bad_name_error", lf({"version: STSv1", "mode: enforce", "_x: 1", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{3, "invalid key"}}},
    {"unknown_key_33_chars_error", "version: STSv1\nmode: enforce\n" + std::string(33, 'k') + ": 1\nmx: mail.example.com\nmax_age: 86400\n",
     false, Mode::enforce, 0, {}, {{3, "invalid key"}}},
    {"empty_key_error", lf({"version: STSv1", "mode: enforce", ": value", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{3, "invalid key"}}},
    // Blank lines tolerated with a warning
    {"blank_line_tolerated", lf({"version: STSv1", "", "mode: enforce", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{2, "blank line"}}},
    {"whitespace_line_tolerated", lf({"version: STSv1", "mode: enforce", " \t ", "mx: mail.example.com", "max_age: 86400"}),
     true, Mode::enforce, 86400, kMail, {}, {{3, "blank line"}}},
    {"blank_crlf_line_tolerated", "version: STSv1\r\n\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 86400\r\n",
     true, Mode::enforce, 86400, kMail, {}, {{2, "blank line"}}},
    {"extra_final_newline_is_blank_line", kGood + "\n", true, Mode::enforce, 86400, kMail, {}, {{5, "blank line"}}},
    // Control characters and non-ASCII in known values
    {"nul_in_value_error", [] { std::string s = kGood; s.insert(s.find("enforce") + 7, 1, '\0'); return s; }(),
     false, Mode::enforce, 0, {}, {{2, "mode must be"}}},
    {"non_ascii_mode_error", lf({"version: STSv1", "mode: enf\xc3\xb6rce", "mx: mail.example.com", "max_age: 86400"}),
     false, Mode::enforce, 0, {}, {{2, "mode must be"}}},
    // Size limit
    {"size_at_limit_valid", big_policy(kMaxPolicyBytes), true, Mode::enforce, 86400, kMail, {}, {{5, "unknown key"}}},
    {"size_over_limit_error", big_policy(kMaxPolicyBytes + 1), false, Mode::enforce, 0, {}, {{0, "65536"}}},
    // Several problems reported in one pass, each on its line
    {"all_problems_reported", lf({"version: STSv2", "mode: strict", "max_age: soon", "oops", "", "mx: 10.0.0.1"}),
     false, Mode::enforce, 0, {},
     {{1, "version must be"}, {2, "mode must be"}, {3, "1 to 10 digits"}, {4, "no \":\""}},
     {{5, "blank line"}, {6, "dropped"}}},
};

class PolicyFileTest : public ::testing::TestWithParam<Row> {};

void expect_diags(const char* what, const std::vector<Diagnostic>& got, const std::vector<Diag>& want) {
  std::string all;
  for (const auto& d : got) all += "\n  line " + std::to_string(d.line) + ": " + d.message;
  ASSERT_EQ(got.size(), want.size()) << what << ":" << all;
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].line, want[i].line) << what << " #" << i << ":" << all;
    EXPECT_NE(got[i].message.find(want[i].contains), std::string::npos)
        << what << " #" << i << " lacks \"" << want[i].contains << "\":" << all;
  }
}

TEST_P(PolicyFileTest, Row) {
  const Row& r = GetParam();
  PolicyParseResult res = parse_policy(r.text);
  expect_diags("errors", res.errors, r.errors);
  expect_diags("warnings", res.warnings, r.warnings);
  ASSERT_EQ(res.policy.has_value(), r.valid);
  if (!r.valid) return;
  EXPECT_EQ(res.policy->mode, r.mode);
  EXPECT_EQ(res.policy->max_age.count(), r.max_age);
  std::vector<std::string> mx;
  for (const auto& p : res.policy->mx) mx.push_back(p.str());
  EXPECT_EQ(mx, r.mx);
}

INSTANTIATE_TEST_SUITE_P(Rules, PolicyFileTest, ::testing::ValuesIn(kRows),
                         [](const auto& row) { return std::string(row.param.name); });

TEST(PolicyFile, ModeNames) {
  for (Mode m : {Mode::enforce, Mode::testing, Mode::none}) {
    auto back = mode_from_string(to_string(m));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, m);
  }
  EXPECT_FALSE(mode_from_string("ENFORCE").has_value());
  EXPECT_FALSE(mode_from_string("").has_value());
}

TEST(PolicyFile, MxMatchesAnyPattern) {
  auto res = parse_policy(lf({"version: STSv1", "mode: enforce", "mx: mail.example.com", "mx: *.backup.example.net", "max_age: 86400"}));
  ASSERT_TRUE(res.policy.has_value());
  EXPECT_TRUE(res.policy->mx_matches("MAIL.example.com."));
  EXPECT_TRUE(res.policy->mx_matches("mx2.backup.example.net"));
  EXPECT_FALSE(res.policy->mx_matches("backup.example.net"));
  EXPECT_FALSE(res.policy->mx_matches("evil.example.org"));
  Policy none{Mode::none, std::chrono::seconds(0), {}};
  EXPECT_FALSE(none.mx_matches("mail.example.com"));
}

TEST(PolicyFile, Summary) {
  auto res = parse_policy(lf({"version: STSv1", "mode: testing", "mx: a.example.com", "mx: *.example.net", "max_age: 600"}));
  ASSERT_TRUE(res.policy.has_value());
  EXPECT_EQ(summarize(*res.policy), "mode=testing; max_age=600; mx=a.example.com,*.example.net");
}

TEST(PolicyFile, DiagnosticsQuoteHostileValuesSafely) {
  auto res = parse_policy(lf({"version: STSv1", "mode: enforce\x1b[31m\"x\"", "mx: mail.example.com", "max_age: 86400"}));
  ASSERT_EQ(res.errors.size(), 1u);
  const std::string& m = res.errors[0].message;
  EXPECT_EQ(m.find('\x1b'), std::string::npos) << m;
  EXPECT_NE(m.find("\\x1b"), std::string::npos) << m;
}

}  // namespace
}  // namespace mtasts
