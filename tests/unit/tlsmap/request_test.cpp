// Socketmap requests: dialect by NAME, and which KEYs are policy domains (normalised once, by
// Domain) and which are next-hops that get NOTFOUND without any lookup.
#include "tlsmap/request.hpp"

#include <gtest/gtest.h>

namespace mtasts::tlsmap {
namespace {

TEST(Request, DialectsByName) {
  EXPECT_EQ(parse_request("postfix example.com").dialect, Dialect::postfix);
  EXPECT_EQ(parse_request("postfix-tlsrpt example.com").dialect, Dialect::postfix_tlsrpt);
  EXPECT_EQ(parse_request("sts example.com").dialect, Dialect::sts);
  for (const char* bad : {"Postfix example.com", "tlspolicy example.com", " example.com", "postfix-tlsrpt2 a.b"}) {
    const Request r = parse_request(bad);
    EXPECT_FALSE(r.dialect) << bad;
    EXPECT_FALSE(r.malformed) << bad;
  }
  EXPECT_TRUE(parse_request("postfix").malformed);
  EXPECT_TRUE(parse_request("").malformed);
}

struct KeyRow {
  const char* key;
  const char* domain;  // normalised, or nullptr for not a policy domain
  const char* why;
};

TEST(Request, KeyNormalisationTable) {
  const KeyRow rows[] = {
      {"example.com", "example.com", ""},
      {"EXAMPLE.Com", "example.com", ""},
      {"example.com.", "example.com", ""},
      {"\xC3\xA9xample.com", "xn--xample-9ua.com", ""},            // U-label -> A-label
      {"b\xC3\xBC" "cher.example", "xn--bcher-kva.example", ""},
      {"[mail.example.com]", nullptr, "address-literal"},
      {"[mail.example.com]:587", nullptr, "address-literal"},
      {"[192.0.2.1]", nullptr, "address-literal"},
      {"[IPv6:2001:db8::1]", nullptr, "address-literal"},
      {"mail.example.com:587", nullptr, "port-or-ipv6"},
      {"2001:db8::1", nullptr, "port-or-ipv6"},
      {"192.0.2.1", nullptr, "ip-address"},
      {".example.com", nullptr, "parent-probe"},
      {".com", nullptr, "parent-probe"},
      {"", nullptr, "empty"},
      {"localhost", nullptr, "invalid"},
      {"exa mple.com", nullptr, "invalid"},
      {"example..com", nullptr, "invalid"},
      {"-bad.example.com", nullptr, "invalid"},
      {"ex\x01mple.com", nullptr, "invalid"},
      {"under_score.example.com", nullptr, "invalid"},
  };
  for (const KeyRow& row : rows) {
    const Request r = parse_request(std::string("postfix ") + row.key);
    ASSERT_TRUE(r.dialect) << row.key;
    if (row.domain) {
      EXPECT_EQ(r.kind, KeyKind::domain) << row.key << ": " << r.why;
      ASSERT_TRUE(r.domain) << row.key;
      EXPECT_EQ(r.domain->str(), row.domain);
    } else {
      EXPECT_EQ(r.kind, KeyKind::not_domain) << row.key;
      EXPECT_FALSE(r.domain) << row.key;
      EXPECT_EQ(r.why, row.why) << row.key;
    }
  }
}

TEST(Request, OnlyTheFirstSpaceSplits) {
  // "postfix a b" asks for the key "a b", which is not a host name.
  const Request r = parse_request("postfix example.com extra");
  EXPECT_EQ(r.kind, KeyKind::not_domain);
}

}  // namespace
}  // namespace mtasts::tlsmap
