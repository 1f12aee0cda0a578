// Envelope recipient -> policy domain: one table row per case the MTA may hand us.
#include "milter/recipient.hpp"

#include <gtest/gtest.h>

namespace mtasts::milter {
namespace {

struct Row {
  const char* input;
  const char* domain;  // nullptr: no domain
  bool literal = false;
  const char* reason = "";  // substring of the reason when no domain
};

const Row kRows[] = {
    {"<user@example.com>", "example.com"},
    {"user@example.com", "example.com"},
    {"  <user@example.com>\t", "example.com"},
    {"< user@example.com >", "example.com"},
    {"<User@EXAMPLE.Com>", "example.com"},
    {"<user@example.com.>", "example.com"},
    {"<user@mail.sub.example.com>", "mail.sub.example.com"},  // exactly as addressed, no parent
    // Quoted local parts may hide '@' and escaped quotes; the domain is after the local part.
    {"<\"a@b\"@example.org>", "example.org"},
    {"<\"a\\\"@b\"@example.org>", "example.org"},
    {"<\"x@evil.example\"@good.example>", "good.example"},
    {"<\"\"@example.org>", "example.org"},
    // Source routes name relays; the mailbox's domain is the policy domain.
    {"<@relay.example,@relay2.example:user@dest.example>", "dest.example"},
    {"<@relay.example:user@Dest.Example>", "dest.example"},
    // SMTPUTF8: U-labels become A-labels.
    {"<user@b\xc3\xbc" "cher.example>", "xn--bcher-kva.example"},
    {"<\xc3\xbcser@B\xc3\x9c" "CHER.example>", "xn--bcher-kva.example"},
    // Address literals and bare IPs never have a policy.
    {"<user@[192.0.2.1]>", nullptr, true, "address literal"},
    {"<user@[IPv6:2001:db8::1]>", nullptr, true, "address literal"},
    {"<user@192.0.2.1>", nullptr, true, "address literal"},
    // Malformed.
    {"<>", nullptr, false, "null"},
    {"", nullptr, false, "null"},
    {"<postmaster>", nullptr, false, "no domain"},
    {"<user@>", nullptr, false, "empty domain"},
    {"<user@example.com", nullptr, false, "unbalanced"},
    {"user@example.com>", nullptr, false, "unbalanced"},
    {"<\"unterminated@example.com>", nullptr, false, "unterminated"},
    {"<\"quoted\"example.com>", nullptr, false, "no domain"},
    {"<a@b@example.com>", nullptr, false, "invalid domain"},
    {"<user@exa mple.com>", nullptr, false, "invalid domain"},
    {"<user@-bad.example>", nullptr, false, "invalid domain"},
    {"<user@[192.0.2.1>", nullptr, true, "malformed address literal"},
    {"<@relay.example>", nullptr, false, "source route"},
};

class RecipientTable : public ::testing::TestWithParam<Row> {};

TEST_P(RecipientTable, Domain) {
  const Row& row = GetParam();
  const RecipientDomain r = recipient_domain(row.input);
  if (row.domain) {
    ASSERT_TRUE(r.domain.has_value()) << row.input << ": " << r.reason;
    EXPECT_EQ(r.domain->str(), row.domain) << row.input;
    EXPECT_FALSE(r.address_literal);
  } else {
    EXPECT_FALSE(r.domain.has_value()) << row.input << " gave " << r.domain->str();
    EXPECT_EQ(r.address_literal, row.literal) << row.input;
    EXPECT_NE(r.reason.find(row.reason), std::string::npos) << row.input << ": " << r.reason;
  }
}

INSTANTIATE_TEST_SUITE_P(Rows, RecipientTable, ::testing::ValuesIn(kRows));

}  // namespace
}  // namespace mtasts::milter
