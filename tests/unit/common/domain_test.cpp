// Table of Domain::parse cases: normalization (case, trailing dot, IDN), host-name syntax,
// and address literals. Each row is named after the rule it checks.
#include "common/sts/domain.hpp"

#include <gtest/gtest.h>

#include <string>
#include <unordered_set>

namespace mtasts {
namespace {

struct Row {
  const char* name;
  std::string input;
  bool ok;
  std::string expect;  // normalized name when ok, else a substring of the error
  bool address_literal = false;
};

std::ostream& operator<<(std::ostream& os, const Row& r) { return os << r.name; }

std::string label(std::size_t n, char c = 'a') { return std::string(n, c); }

// 4 labels of 63 + 3 dots = 255; trim to build exact lengths.
std::string name_of_length(std::size_t n) {
  std::string s;
  while (s.size() < n) {
    if (!s.empty()) s += '.';
    s += label(std::min<std::size_t>(63, n - s.size()), 'b');
  }
  // Ensure the last label is not a lone hyphen or empty; 'b' labels are fine.
  return s;
}

const Row kRows[] = {
    // Normalization
    {"lowercases", "Mail.EXAMPLE.Com", true, "mail.example.com"},
    {"drops_one_trailing_dot", "example.com.", true, "example.com"},
    {"two_trailing_dots_rejected", "example.com..", false, "empty label"},
    {"leading_dot_rejected", ".example.com", false, "empty label"},
    {"inner_empty_label_rejected", "a..example.com", false, "empty label"},
    {"empty_rejected", "", false, "empty"},
    {"lone_dot_rejected", ".", false, "empty"},
    {"single_label_rejected", "localhost", false, "single label"},
    {"single_label_with_dot_rejected", "com.", false, "single label"},
    {"digits_in_labels_allowed", "123.example.com", true, "123.example.com"},
    {"hyphen_inside_label_allowed", "mail-1.example.com", true, "mail-1.example.com"},
    {"double_hyphen_ascii_label_allowed", "r3--sn-abc.googlevideo.com", true, "r3--sn-abc.googlevideo.com"},
    {"leading_hyphen_rejected", "-mail.example.com", false, "hyphen"},
    {"trailing_hyphen_rejected", "mail-.example.com", false, "hyphen"},
    {"underscore_rejected", "_mta-sts.example.com", false, "underscore"},
    {"wildcard_rejected", "*.example.com", false, "not allowed"},
    {"at_sign_rejected", "user@example.com", false, "not allowed"},
    {"colon_rejected", "example.com:25", false, "not allowed"},
    {"slash_rejected", "example.com/x", false, "not allowed"},
    {"space_rejected", "exa mple.com", false, "space or control"},
    {"tab_rejected", "example.com\t", false, "space or control"},
    {"nul_rejected", std::string("exa\0mple.com", 12), false, "control"},
    {"newline_rejected", "example.com\nX-Evil: 1", false, "control"},
    {"del_rejected", "exa\x7fmple.com", false, "control"},
    {"numeric_tld_rejected", "example.123", false, "all-numeric"},
    {"three_part_number_rejected", "1.2.3", false, "all-numeric"},
    // Lengths
    {"label_63_allowed", label(63) + ".example.com", true, label(63) + ".example.com"},
    {"label_64_rejected", label(64) + ".example.com", false, "63"},
    {"name_253_allowed", name_of_length(253), true, name_of_length(253)},
    {"name_253_plus_trailing_dot_allowed", name_of_length(253) + ".", true, name_of_length(253)},
    {"name_254_rejected", name_of_length(254), false, "253"},
    {"huge_input_rejected", std::string(5000, 'a'), false, "too long"},
    // Internationalized names: U-labels become A-labels
    {"ulabel_to_alabel", "B\xc3\xbc" "cher.example", true, "xn--bcher-kva.example"},
    {"ulabel_uppercase_mapped", "B\xc3\x9c" "CHER.Example", true, "xn--bcher-kva.example"},
    {"ulabel_trailing_dot", "m\xc3\xbcller.com.", true, "xn--mller-kva.com"},
    {"ulabel_nontransitional_sharp_s", "fa\xc3\x9f.de", true, "xn--fa-hia.de"},
    {"ulabel_transitional_fallback", "\xf0\x9f\x98\x80.com", true, "xn--e28h.com"},
    {"ideographic_full_stop_is_a_dot", "b\xc3\xbc" "cher\xe3\x80\x82" "example", true, "xn--bcher-kva.example"},
    {"ideographic_full_stop_trailing", "b\xc3\xbc" "cher.example\xe3\x80\x82", true, "xn--bcher-kva.example"},
    {"fullwidth_letters_mapped", "\xef\xbc\xa5\xef\xbc\xb8.com", true, "ex.com"},
    {"ulabel_beside_double_hyphen_ascii_label", "b\xc3\xbc" "cher.r3--sn.example", true, "xn--bcher-kva.r3--sn.example"},
    {"alabel_kept_and_lowercased", "XN--BCHER-KVA.example", true, "xn--bcher-kva.example"},
    {"invalid_utf8_rejected", "\xff\xfe.example.com", false, "internationalized"},
    {"truncated_utf8_rejected", "b\xc3.example.com", false, "internationalized"},
    {"zero_width_space_removed_by_tr46_mapping", "a\xe2\x80\x8b" "b.example.com", true, "ab.example.com"},
    {"ulabel_with_leading_hyphen_rejected", "-b\xc3\xbc" "cher.example", false, ""},
    // Address literals and IP addresses: recognised, never a policy domain
    {"ipv4_literal", "[192.0.2.1]", false, "address literal", true},
    {"ipv6_literal", "[IPv6:2001:db8::1]", false, "address literal", true},
    {"general_literal", "[x]", false, "address literal", true},
    {"bare_ipv4", "192.0.2.1", false, "IP address", true},
    {"bare_ipv4_trailing_dot", "192.0.2.1.", false, "IP address", true},
    {"bare_ipv6", "2001:db8::1", false, "IP address", true},
    {"bare_ipv6_loopback", "::1", false, "IP address", true},
    {"open_bracket_only_not_literal", "[192.0.2.1", false, "not allowed", false},
};

class DomainParseTest : public ::testing::TestWithParam<Row> {};

TEST_P(DomainParseTest, Row) {
  const Row& r = GetParam();
  DomainParse p = Domain::parse(r.input);
  EXPECT_EQ(p.address_literal, r.address_literal);
  if (r.ok) {
    ASSERT_TRUE(p.domain.has_value()) << "error: " << p.error;
    EXPECT_EQ(p.domain->str(), r.expect);
    EXPECT_TRUE(p.error.empty());
    // A Domain is a fixed point of parse().
    DomainParse again = Domain::parse(p.domain->str());
    ASSERT_TRUE(again.domain.has_value()) << again.error;
    EXPECT_EQ(*again.domain, *p.domain);
  } else {
    EXPECT_FALSE(p.domain.has_value()) << "parsed as " << p.domain->str();
    EXPECT_FALSE(p.error.empty());
    EXPECT_NE(p.error.find(r.expect), std::string::npos) << "error was: " << p.error;
  }
}

INSTANTIATE_TEST_SUITE_P(Rules, DomainParseTest, ::testing::ValuesIn(kRows),
                         [](const auto& row) { return std::string(row.param.name); });

struct SubRow {
  const char* name;
  const char* a;
  const char* b;
  bool below;
};
std::ostream& operator<<(std::ostream& os, const SubRow& r) { return os << r.name; }

const SubRow kSubRows[] = {
    {"same_name", "example.com", "example.com", true},
    {"child", "mail.example.com", "example.com", true},
    {"grandchild", "a.b.example.com", "example.com", true},
    {"suffix_without_dot_is_not_below", "badexample.com", "example.com", false},
    {"parent_is_not_below_child", "example.com", "mail.example.com", false},
    {"sibling", "example.org", "example.com", false},
};

class DomainSubdomainTest : public ::testing::TestWithParam<SubRow> {};

TEST_P(DomainSubdomainTest, Row) {
  const SubRow& r = GetParam();
  auto a = Domain::parse(r.a).domain;
  auto b = Domain::parse(r.b).domain;
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->is_subdomain_of(*b), r.below);
}

INSTANTIATE_TEST_SUITE_P(Rules, DomainSubdomainTest, ::testing::ValuesIn(kSubRows),
                         [](const auto& row) { return std::string(row.param.name); });

TEST(DomainType, EqualityAndHashFollowNormalizedForm) {
  auto a = Domain::parse("Example.COM.").domain;
  auto b = Domain::parse("example.com").domain;
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
  std::unordered_set<Domain> set{*a};
  EXPECT_EQ(set.count(*b), 1u);
  auto c = Domain::parse("example.org").domain;
  ASSERT_TRUE(c);
  EXPECT_LT(*a, *c);
}

TEST(DomainType, AddressHelpers) {
  EXPECT_TRUE(is_address_literal("[192.0.2.1]"));
  EXPECT_FALSE(is_address_literal("192.0.2.1"));
  EXPECT_FALSE(is_address_literal("["));
  EXPECT_TRUE(is_ip_address("192.0.2.1"));
  EXPECT_TRUE(is_ip_address("2001:db8::1"));
  EXPECT_FALSE(is_ip_address("example.com"));
  EXPECT_FALSE(is_ip_address("192.0.2"));
  EXPECT_FALSE(is_ip_address(""));
  EXPECT_FALSE(is_ip_address(std::string(100, '1')));
  EXPECT_FALSE(is_ip_address(std::string("192.0.2.1\0x", 11)));
}

}  // namespace
}  // namespace mtasts
