// Tables for MX pattern syntax (RFC 8461 section 3.2) and matching (section 4.1,
// RFC-NOTES.md "MX matching").
#include "common/sts/mx_pattern.hpp"

#include <gtest/gtest.h>

#include <string>

namespace mtasts {
namespace {

struct ParseRow {
  const char* name;
  std::string text;
  bool ok;
  std::string expect;  // canonical pattern when ok, else a substring of the error
  bool wildcard = false;
  bool trailing_dot = false;
};
std::ostream& operator<<(std::ostream& os, const ParseRow& r) { return os << r.name; }

const ParseRow kParseRows[] = {
    {"host", "mail.example.com", true, "mail.example.com"},
    {"host_uppercase_lowered", "MAIL.Example.COM", true, "mail.example.com"},
    {"wildcard", "*.example.com", true, "*.example.com", true},
    {"wildcard_uppercase_lowered", "*.EXAMPLE.com", true, "*.example.com", true},
    {"trailing_dot_tolerated", "mail.example.com.", true, "mail.example.com", false, true},
    {"wildcard_trailing_dot_tolerated", "*.example.com.", true, "*.example.com", true, true},
    {"alabel_allowed", "mx.xn--bcher-kva.example", true, "mx.xn--bcher-kva.example"},
    {"two_trailing_dots_rejected", "mail.example.com..", false, "empty label"},
    {"empty_rejected", "", false, "empty"},
    {"lone_dot_rejected", ".", false, "no host name"},
    {"star_dot_only_rejected", "*.", false, "no host name"},
    {"star_only_rejected", "*", false, "'*'"},
    {"star_without_dot_rejected", "*example.com", false, "'*'"},
    {"double_wildcard_rejected", "*.*.example.com", false, "'*'"},
    {"wildcard_not_leftmost_rejected", "mail.*.example.com", false, "'*'"},
    {"partial_label_wildcard_rejected", "mx*.example.com", false, "'*'"},
    {"ipv4_rejected", "192.0.2.1", false, "IP address"},
    {"ipv4_trailing_dot_rejected", "192.0.2.1.", false, "IP address"},
    {"ipv6_rejected", "2001:db8::25", false, "IP address"},
    {"address_literal_rejected", "[192.0.2.1]", false, "IP address"},
    {"wildcard_ip_rejected", "*.192.0.2.1", false, "IP address"},
    {"ulabel_rejected", "mx.b\xc3\xbc" "cher.example", false, "A-labels"},
    {"underscore_rejected", "mail_1.example.com", false, "underscore"},
    {"leading_hyphen_rejected", "-mail.example.com", false, "hyphen"},
    // RFC 8461 section 3.2: mx = ["*."] Domain; a single label is a Domain.
    {"single_label_accepted", "localhost", true, "localhost"},
    {"single_label_lowered", "COM", true, "com"},
    {"wildcard_over_tld_accepted", "*.com", true, "*.com", true},
    {"wildcard_over_single_label_accepted", "*.Example.", true, "*.example", true, true},
    {"single_label_all_numeric_rejected", "123", false, "all-numeric"},
    {"single_label_hyphen_rejected", "-com", false, "hyphen"},
    {"single_label_underscore_rejected", "*._tcp", false, "underscore"},
    // Diagnostics say what is wrong: U-labels and bytes that are not UTF-8 at all differ.
    {"invalid_utf8_said_so", "mx.\xff.example", false, "not valid UTF-8"},
    {"ulabel_names_the_fix", "b\xc3\xbc" "cher.example", false, "xn--"},
    {"label_64_rejected", std::string(64, 'a') + ".example.com", false, "63"},
    {"space_rejected", "mail .example.com", false, "space"},
    {"leading_dot_rejected", ".example.com", false, "empty label"},
};

class MxParseTest : public ::testing::TestWithParam<ParseRow> {};

TEST_P(MxParseTest, Row) {
  const ParseRow& r = GetParam();
  std::string error = "untouched";
  bool dot = !r.trailing_dot;  // parse() must overwrite it
  auto p = MxPattern::parse(r.text, &error, &dot);
  if (r.ok) {
    ASSERT_TRUE(p.has_value()) << error;
    EXPECT_EQ(p->str(), r.expect);
    EXPECT_EQ(p->wildcard(), r.wildcard);
    EXPECT_EQ(dot, r.trailing_dot);
    // The canonical text parses back to the same pattern.
    auto again = MxPattern::parse(p->str(), &error);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(*again, *p);
  } else {
    EXPECT_FALSE(p.has_value()) << "parsed as " << p->str();
    EXPECT_NE(error.find(r.expect), std::string::npos) << "error was: " << error;
  }
}

INSTANTIATE_TEST_SUITE_P(Rules, MxParseTest, ::testing::ValuesIn(kParseRows),
                         [](const auto& row) { return std::string(row.param.name); });

TEST(MxPatternParse, NullOutParametersAreAllowed) {
  EXPECT_TRUE(MxPattern::parse("mail.example.com.", nullptr, nullptr).has_value());
  EXPECT_FALSE(MxPattern::parse("", nullptr, nullptr).has_value());
}

struct MatchRow {
  const char* name;
  const char* pattern;
  const char* host;
  bool matches;
};
std::ostream& operator<<(std::ostream& os, const MatchRow& r) { return os << r.name; }

const MatchRow kMatchRows[] = {
    {"exact", "mail.example.com", "mail.example.com", true},
    {"exact_host_case_insensitive", "mail.example.com", "MAIL.Example.COM", true},
    {"exact_pattern_case_insensitive", "MAIL.EXAMPLE.COM", "mail.example.com", true},
    {"exact_host_trailing_dot_ignored", "mail.example.com", "mail.example.com.", true},
    {"exact_pattern_trailing_dot_ignored", "mail.example.com.", "mail.example.com", true},
    {"exact_other_host", "mail.example.com", "mail2.example.com", false},
    {"exact_is_not_suffix_match", "example.com", "mail.example.com", false},
    {"exact_longer_host", "mail.example.com", "xmail.example.com", false},
    {"exact_shorter_host", "mail.example.com", "ail.example.com", false},
    {"exact_empty_host", "mail.example.com", "", false},
    {"wildcard_one_label", "*.example.com", "mx1.example.com", true},
    {"wildcard_case_insensitive", "*.example.com", "MX1.EXAMPLE.COM", true},
    {"wildcard_host_trailing_dot_ignored", "*.example.com", "mx1.example.com.", true},
    {"wildcard_pattern_trailing_dot_ignored", "*.example.com.", "mx1.example.com", true},
    {"wildcard_not_the_base_itself", "*.example.com", "example.com", false},
    {"wildcard_not_two_labels", "*.example.com", "a.b.example.com", false},
    {"wildcard_not_empty_label", "*.example.com", ".example.com", false},
    {"wildcard_not_label_glued_to_base", "*.example.com", "mx1example.com", false},
    {"wildcard_not_other_base", "*.example.com", "mx1.notexample.com", false},
    {"wildcard_not_base_as_prefix", "*.example.com", "mx1.example.com.evil.net", false},
    {"wildcard_single_char_label", "*.example.com", "a.example.com", true},
    {"wildcard_deeper_base", "*.mx.example.com", "a.mx.example.com", true},
    {"wildcard_deeper_base_sibling", "*.mx.example.com", "a.example.com", false},
    {"single_label_exact", "com", "COM.", true},
    {"wildcard_over_tld", "*.com", "example.com", true},
    {"wildcard_over_tld_not_two_labels", "*.com", "mx.example.com", false},
    // RFC 6125 section 6.4.2: a host in U-label form is compared as its A-label.
    {"ulabel_host_exact", "mx.xn--bcher-kva.example", "mx.b\xc3\xbc" "cher.example", true},
    {"ulabel_host_wildcard", "*.xn--bcher-kva.example", "MX.B\xc3\x9c" "cher.example.", true},
    {"ulabel_host_other", "*.xn--bcher-kva.example", "mx.b\xc3\xa4" "cher.example", false},
    {"invalid_utf8_host", "*.example.com", "\xff.example.com", false},
};

class MxMatchTest : public ::testing::TestWithParam<MatchRow> {};

TEST_P(MxMatchTest, Row) {
  const MatchRow& r = GetParam();
  std::string error;
  auto p = MxPattern::parse(r.pattern, &error);
  ASSERT_TRUE(p.has_value()) << error;
  EXPECT_EQ(p->matches(r.host), r.matches);
}

INSTANTIATE_TEST_SUITE_P(Rules, MxMatchTest, ::testing::ValuesIn(kMatchRows),
                         [](const auto& row) { return std::string(row.param.name); });

}  // namespace
}  // namespace mtasts
