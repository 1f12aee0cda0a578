// Table of `_mta-sts` TXT RRsets (RFC 8461 section 3.1, RFC-NOTES.md "Discovery"): one row
// per rule, valid and malformed.
#include "common/sts/txt_record.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mtasts {
namespace {

using Strings = std::vector<std::string>;
using RRset = std::vector<Strings>;

struct Row {
  const char* name;
  RRset records;
  TxtStatus status;
  std::string id_or_error;  // the id for `policy`; a substring of the first error for `invalid`
  std::size_t warnings = 0;
};

std::ostream& operator<<(std::ostream& os, const Row& r) { return os << r.name; }

// One record made of one string.
RRset one(std::string s) { return {{std::move(s)}}; }

const std::string k32(32, 'A');
const std::string k33(33, 'A');

const Row kRows[] = {
    // The basic record and its delimiter
    {"minimal", one("v=STSv1; id=20160831085700Z;"), TxtStatus::policy, "20160831085700Z"},
    {"no_trailing_delimiter", one("v=STSv1; id=20160831085700Z"), TxtStatus::policy, "20160831085700Z"},
    {"no_space_after_semicolon", one("v=STSv1;id=abc"), TxtStatus::policy, "abc"},
    {"space_before_semicolon", one("v=STSv1 ; id=abc"), TxtStatus::policy, "abc"},
    {"tabs_are_wsp", one("v=STSv1\t;\tid=abc\t;\t"), TxtStatus::policy, "abc"},
    {"trailing_delimiter_with_spaces", one("v=STSv1; id=abc ;  "), TxtStatus::policy, "abc"},
    {"trailing_space_without_delimiter_invalid", one("v=STSv1; id=abc "), TxtStatus::invalid, "\";\""},
    {"double_semicolon_invalid", one("v=STSv1;; id=abc"), TxtStatus::invalid, "field name"},
    {"cr_lf_is_not_wsp", one("v=STSv1;\r\nid=abc"), TxtStatus::invalid, "field name"},
    // Several strings in one record are concatenated with nothing in between
    {"multi_string_concatenated", {{"v=STSv1; id=", "abc123"}}, TxtStatus::policy, "abc123"},
    {"multi_string_split_inside_id", {{"v=STSv1; id=ab", "c", "12"}}, TxtStatus::policy, "abc12"},
    {"multi_string_split_inside_version", {{"v=ST", "Sv1; id=x"}}, TxtStatus::policy, "x"},
    {"multi_string_no_added_space", {{"v=STSv1;", "id=abc"}}, TxtStatus::policy, "abc"},
    {"multi_string_empty_strings", {{"", "v=STSv1; id=abc", ""}}, TxtStatus::policy, "abc"},
    // Which records count: those beginning with v=STSv1 *WSP ";"
    {"empty_rrset_no_policy", {}, TxtStatus::no_policy, ""},
    {"empty_record_ignored", {{}}, TxtStatus::no_policy, "", 1},
    {"empty_string_record_ignored", one(""), TxtStatus::no_policy, "", 1},
    {"other_record_ignored", {{"v=spf1 -all"}, {"v=STSv1; id=abc"}}, TxtStatus::policy, "abc", 1},
    {"only_other_records_no_policy", {{"v=spf1 -all"}, {"google-site-verification=x"}}, TxtStatus::no_policy, "", 2},
    {"non_ascii_in_ignored_record_harmless", {{"caf\xc3\xa9"}, {"v=STSv1; id=abc"}}, TxtStatus::policy, "abc", 1},
    {"version_without_semicolon_not_sts", one("v=STSv1"), TxtStatus::no_policy, "", 1},
    {"version_without_semicolon_then_space", one("v=STSv1 id=abc"), TxtStatus::no_policy, "", 1},
    {"version_uppercase_v_not_sts", one("V=STSv1; id=abc"), TxtStatus::no_policy, "", 1},
    {"version_lowercase_not_sts", one("v=stsv1; id=abc"), TxtStatus::no_policy, "", 1},
    {"version_longer_not_sts", one("v=STSv10; id=abc"), TxtStatus::no_policy, "", 1},
    {"version_with_space_around_equals_not_sts", one("v = STSv1; id=abc"), TxtStatus::no_policy, "", 1},
    {"leading_space_not_sts", one(" v=STSv1; id=abc"), TxtStatus::no_policy, "", 1},
    {"version_not_first_not_sts", one("id=abc; v=STSv1;"), TxtStatus::no_policy, "", 1},
    // Exactly one STS record
    {"two_sts_records_invalid", {{"v=STSv1; id=a"}, {"v=STSv1; id=b"}}, TxtStatus::invalid, "exactly one"},
    {"two_identical_sts_records_invalid", {{"v=STSv1; id=a"}, {"v=STSv1; id=a"}}, TxtStatus::invalid, "exactly one"},
    {"valid_and_broken_sts_records_invalid", {{"v=STSv1; id=a"}, {"v=STSv1; id=-"}}, TxtStatus::invalid, "exactly one"},
    // id: required, 1..32 ALPHA / DIGIT, case-sensitive name
    {"id_missing_invalid", one("v=STSv1;"), TxtStatus::invalid, "id is missing"},
    {"id_missing_with_extension_invalid", one("v=STSv1; foo=bar"), TxtStatus::invalid, "id is missing"},
    {"id_empty_invalid", one("v=STSv1; id="), TxtStatus::invalid, "empty value"},
    {"id_32_chars", one("v=STSv1; id=" + k32), TxtStatus::policy, k32},
    {"id_33_chars_invalid", one("v=STSv1; id=" + k33), TxtStatus::invalid, "1 to 32"},
    {"id_one_char", one("v=STSv1; id=0"), TxtStatus::policy, "0"},
    {"id_mixed_case_kept", one("v=STSv1; id=AbC9"), TxtStatus::policy, "AbC9"},
    {"id_hyphen_invalid", one("v=STSv1; id=2016-08-31"), TxtStatus::invalid, "1 to 32"},
    {"id_underscore_invalid", one("v=STSv1; id=a_b"), TxtStatus::invalid, "1 to 32"},
    {"id_dot_invalid", one("v=STSv1; id=a.b"), TxtStatus::invalid, "1 to 32"},
    {"id_with_space_invalid", one("v=STSv1; id=a b"), TxtStatus::invalid, "\";\""},
    {"id_name_case_sensitive", one("v=STSv1; ID=abc"), TxtStatus::invalid, "id is missing"},
    {"id_before_extension", one("v=STSv1; id=abc; ext=1"), TxtStatus::policy, "abc"},
    {"id_after_extension", one("v=STSv1; ext=1; id=abc"), TxtStatus::policy, "abc"},
    {"id_repeated_first_wins", one("v=STSv1; id=first; id=second"), TxtStatus::policy, "first", 1},
    {"id_repeated_three_times", one("v=STSv1; id=a; id=b; id=c"), TxtStatus::policy, "a", 2},
    {"id_first_malformed_invalid", one("v=STSv1; id=bad-; id=good"), TxtStatus::invalid, "1 to 32"},
    // Extensions: name=value, well-formed, otherwise ignored
    {"extension_ignored", one("v=STSv1; id=abc; foo=bar"), TxtStatus::policy, "abc"},
    {"extension_name_punctuation", one("v=STSv1; id=abc; a_b-c.d=x"), TxtStatus::policy, "abc"},
    {"extension_name_digit_first", one("v=STSv1; id=abc; 9x=1"), TxtStatus::policy, "abc"},
    {"extension_name_32_chars", one("v=STSv1; id=abc; " + k32 + "=1"), TxtStatus::policy, "abc"},
    {"extension_name_33_chars_invalid", one("v=STSv1; id=abc; " + k33 + "=1"), TxtStatus::invalid, "longer than 32"},
    {"extension_name_underscore_first_invalid", one("v=STSv1; id=abc; _x=1"), TxtStatus::invalid, "letter or digit"},
    {"extension_name_hyphen_first_invalid", one("v=STSv1; id=abc; -x=1"), TxtStatus::invalid, "letter or digit"},
    {"extension_name_bad_char_invalid", one("v=STSv1; id=abc; a/b=1"), TxtStatus::invalid, "\"=\""},
    {"extension_without_equals_invalid", one("v=STSv1; id=abc; foo"), TxtStatus::invalid, "\"=\""},
    {"extension_empty_value_invalid", one("v=STSv1; id=abc; foo="), TxtStatus::invalid, "empty value"},
    {"extension_value_space_invalid", one("v=STSv1; id=abc; foo=a b"), TxtStatus::invalid, "\";\""},
    {"extension_value_equals_invalid", one("v=STSv1; id=abc; foo=a=b"), TxtStatus::invalid, "\";\""},
    {"extension_value_all_printables", one("v=STSv1; id=abc; x=!\"#$%&'()*+,-./:<>?@[\\]^_`{|}~09AZaz"),
     TxtStatus::policy, "abc"},
    {"extension_named_v_ignored", one("v=STSv1; v=STSv2; id=abc"), TxtStatus::policy, "abc"},
    // Non-ASCII and control characters
    {"non_ascii_value_invalid", one("v=STSv1; id=abc; x=caf\xc3\xa9"), TxtStatus::invalid, "non-ASCII"},
    {"non_ascii_id_invalid", one("v=STSv1; id=\xc3\xa9"), TxtStatus::invalid, "non-ASCII"},
    {"control_char_invalid", one("v=STSv1; id=abc\x01"), TxtStatus::invalid, "\";\""},
    {"nul_invalid", one(std::string("v=STSv1; id=abc\0x", 17)), TxtStatus::invalid, "\";\""},
    {"del_invalid", one("v=STSv1; id=abc; x=\x7f"), TxtStatus::invalid, "empty value"},
};

class TxtRecordTest : public ::testing::TestWithParam<Row> {};

TEST_P(TxtRecordTest, Row) {
  const Row& r = GetParam();
  TxtResult t = parse_sts_txt(r.records);
  EXPECT_EQ(to_string(t.status), std::string(to_string(r.status)))
      << "errors: " << ::testing::PrintToString(t.errors);
  EXPECT_EQ(t.warnings.size(), r.warnings) << ::testing::PrintToString(t.warnings);
  switch (r.status) {
    case TxtStatus::policy:
      EXPECT_EQ(t.id, r.id_or_error);
      EXPECT_TRUE(t.errors.empty());
      break;
    case TxtStatus::invalid:
      EXPECT_TRUE(t.id.empty());
      ASSERT_FALSE(t.errors.empty());
      EXPECT_NE(t.errors.front().find(r.id_or_error), std::string::npos) << t.errors.front();
      break;
    case TxtStatus::no_policy:
      EXPECT_TRUE(t.id.empty());
      EXPECT_TRUE(t.errors.empty());
      break;
  }
}

INSTANTIATE_TEST_SUITE_P(Rules, TxtRecordTest, ::testing::ValuesIn(kRows),
                         [](const auto& row) { return std::string(row.param.name); });

TEST(TxtRecord, JoinedRecordsGiveTheSameResult) {
  for (const Row& r : kRows) {
    Strings joined;
    for (const auto& rec : r.records) {
      std::string s;
      for (const auto& part : rec) s += part;
      joined.push_back(s);
    }
    TxtResult a = parse_sts_txt(r.records);
    TxtResult b = parse_sts_txt_records(joined);
    EXPECT_EQ(a.status, b.status) << r.name;
    EXPECT_EQ(a.id, b.id) << r.name;
    EXPECT_EQ(a.errors, b.errors) << r.name;
    EXPECT_EQ(a.warnings, b.warnings) << r.name;
  }
}

TEST(TxtRecord, StatusNames) {
  EXPECT_STREQ(to_string(TxtStatus::policy), "policy");
  EXPECT_STREQ(to_string(TxtStatus::no_policy), "no-policy");
  EXPECT_STREQ(to_string(TxtStatus::invalid), "invalid");
}

}  // namespace
}  // namespace mtasts
