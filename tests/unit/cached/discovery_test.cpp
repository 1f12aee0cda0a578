// Unit tests of one discovery (cached/discovery.hpp) over a fake resolver and HTTPS client:
// every way the TXT, address, fetch and parse steps can end, and the TXT id shortcut.
#include "cached/discovery.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/fake_https.hpp"
#include "tests/fakes/fake_resolver.hpp"

namespace mtasts {
namespace {

using discovery::Status;
using discovery::is_global_address;
using test::FakeClock;

const std::string kPolicy =
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n";

Domain dom(const std::string& s) { return *Domain::parse(s).domain; }

class DiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dns.set_txt("_mta-sts.example.com", {"v=STSv1; id=20260424T120000;"});
    dns.set_a("mta-sts.example.com", "192.0.2.10");
    web.serve("mta-sts.example.com", kPolicy);
  }
  discovery::Report run(const StoredPolicy* cached = nullptr, discovery::Options o = {}) {
    return discovery::discover(dom("example.com"), dns, web, cached, clock.now(), o);
  }
  StoredPolicy cached(const std::string& id, SysTime fetched, Seconds max_age) {
    StoredPolicy p;
    p.policy = *parse_policy(kPolicy).policy;
    p.policy.max_age = max_age;
    p.raw = kPolicy;
    p.id = id;
    p.fetched_at = fetched;
    p.expires_at = fetched + max_age;
    return p;
  }
  test::FakeResolver dns;
  test::FakeHttps web;
  FakeClock clock;
};

TEST_F(DiscoveryTest, ValidPolicyIsFetchedFromTheAddressesWeResolved) {
  const auto r = run();
  EXPECT_EQ(r.status, Status::valid);
  EXPECT_EQ(r.id, "20260424T120000");
  ASSERT_TRUE(r.policy);
  EXPECT_EQ(r.policy->mode, Mode::enforce);
  EXPECT_EQ(r.policy->max_age, Seconds{86400});
  EXPECT_EQ(r.policy->mx.size(), 2u);
  EXPECT_EQ(web.last_addresses("mta-sts.example.com"), std::vector<std::string>{"192.0.2.10"});
  EXPECT_TRUE(r.fetched);
  EXPECT_EQ(r.fetch.body, kPolicy);
  EXPECT_FALSE(r.failure());
  EXPECT_TRUE(r.errors.empty());
}

TEST_F(DiscoveryTest, MultiStringTxtRecordIsConcatenated) {
  dns::TxtAnswer a;
  a.status = dns::Status::ok;
  a.records = {{"v=STSv1; ", "id=split1;"}};
  dns.set_txt_answer("_mta-sts.example.com", a);
  const auto r = run();
  EXPECT_EQ(r.status, Status::valid);
  EXPECT_EQ(r.id, "split1");
  EXPECT_EQ(r.txt_records, std::vector<std::string>{"v=STSv1; id=split1;"});
}

TEST_F(DiscoveryTest, CnameChainIsReported) {
  dns::TxtAnswer a;
  a.status = dns::Status::ok;
  a.records = {{"v=STSv1; id=delegated;"}};
  a.cname_chain = {"_mta-sts.provider.example"};
  dns.set_txt_answer("_mta-sts.example.com", a);
  const auto r = run();
  EXPECT_EQ(r.status, Status::valid);
  EXPECT_EQ(r.txt_cnames, a.cname_chain);
}

TEST_F(DiscoveryTest, AbsenceOfTxtIsNoPolicyAndNothingIsFetched) {
  for (dns::Status s : {dns::Status::nxdomain, dns::Status::nodata}) {
    dns::TxtAnswer a;
    a.status = s;
    dns.set_txt_answer("_mta-sts.example.com", a);
    const auto r = run();
    EXPECT_EQ(r.status, Status::no_policy) << dns::to_string(s);
    EXPECT_FALSE(r.failure());
    EXPECT_FALSE(r.fetched);
  }
  EXPECT_EQ(web.fetches("mta-sts.example.com"), 0);
  EXPECT_EQ(dns.address_queries("mta-sts.example.com"), 0);
}

TEST_F(DiscoveryTest, TxtWithoutStsRecordIsNoPolicy) {
  dns.set_txt("_mta-sts.example.com", {"v=spf1 -all", "something else"});
  const auto r = run();
  EXPECT_EQ(r.status, Status::no_policy);
  EXPECT_FALSE(r.failure());
  EXPECT_EQ(web.fetches("mta-sts.example.com"), 0);
}

TEST_F(DiscoveryTest, TwoStsRecordsAreNoPolicyRecordedAsTxtInvalid) {
  dns.set_txt("_mta-sts.example.com", {"v=STSv1; id=one;", "v=STSv1; id=two;"});
  const auto r = run();
  EXPECT_EQ(r.status, Status::no_policy);
  EXPECT_EQ(r.failure(), FailureKind::txt_invalid);
  EXPECT_FALSE(r.errors.empty());
  EXPECT_EQ(web.fetches("mta-sts.example.com"), 0);
}

TEST_F(DiscoveryTest, TxtLookupFailureIsDnsErrorNotAbsence) {
  for (dns::Status s : {dns::Status::servfail, dns::Status::timeout, dns::Status::error}) {
    dns.set_txt_failure("_mta-sts.example.com", s);
    const auto r = run();
    EXPECT_EQ(r.status, Status::dns_error) << dns::to_string(s);
    EXPECT_EQ(r.failure(), FailureKind::dns);
    EXPECT_NE(r.reason().find(dns::to_string(s)), std::string::npos) << r.reason();
  }
  EXPECT_EQ(web.fetches("mta-sts.example.com"), 0);
}

TEST_F(DiscoveryTest, SameIdWithFreshBodyIsUnchangedWithoutFetch) {
  const StoredPolicy c = cached("20260424T120000", clock.now() - Seconds{3600}, Seconds{86400});
  const auto r = run(&c);
  EXPECT_EQ(r.status, Status::unchanged);
  ASSERT_TRUE(r.policy);
  EXPECT_EQ(*r.policy, c.policy);
  EXPECT_FALSE(r.fetched);
  EXPECT_EQ(web.fetches("mta-sts.example.com"), 0);
  EXPECT_EQ(dns.address_queries("mta-sts.example.com"), 0);
}

TEST_F(DiscoveryTest, SameIdButBodyOlderThanRefreshIntervalIsFetched) {
  // Usable for a week, but fetched 25 hours ago: the body is re-fetched at least daily.
  const StoredPolicy c = cached("20260424T120000", clock.now() - Seconds{25 * 3600}, Seconds{7 * 86400});
  const auto r = run(&c);
  EXPECT_EQ(r.status, Status::valid);
  EXPECT_EQ(web.fetches("mta-sts.example.com"), 1);
}

TEST_F(DiscoveryTest, SameIdButExpiredPolicyIsFetched) {
  const StoredPolicy c = cached("20260424T120000", clock.now() - Seconds{7200}, Seconds{3600});
  const auto r = run(&c);
  EXPECT_EQ(r.status, Status::valid);
  EXPECT_EQ(web.fetches("mta-sts.example.com"), 1);
}

TEST_F(DiscoveryTest, DifferentIdIsFetched) {
  const StoredPolicy c = cached("older", clock.now() - Seconds{60}, Seconds{86400});
  const auto r = run(&c);
  EXPECT_EQ(r.status, Status::valid);
  EXPECT_EQ(r.id, "20260424T120000");
  EXPECT_EQ(web.fetches("mta-sts.example.com"), 1);
}

TEST_F(DiscoveryTest, PolicyHostWithoutAddressIsFetchError) {
  dns.erase("mta-sts.example.com");
  const auto r = run();
  EXPECT_EQ(r.status, Status::fetch_error);
  EXPECT_EQ(r.fetch.kind, https::ErrorKind::no_address);
  EXPECT_EQ(r.failure(), FailureKind::fetch);
  EXPECT_EQ(web.fetches("mta-sts.example.com"), 0);
}

TEST_F(DiscoveryTest, AddressLookupFailureIsDnsError) {
  dns.set_address("mta-sts.example.com", dns::AddressFamily::v4, {dns::Status::servfail, {}, {}, "x"});
  dns.set_address("mta-sts.example.com", dns::AddressFamily::v6, {dns::Status::timeout, {}, {}, "y"});
  const auto r = run();
  EXPECT_EQ(r.status, Status::dns_error);
  EXPECT_EQ(web.fetches("mta-sts.example.com"), 0);
}

TEST_F(DiscoveryTest, OneAddressFamilyFailingStillFetchesFromTheOther) {
  dns.set_address("mta-sts.example.com", dns::AddressFamily::v4, {dns::Status::servfail, {}, {}, "x"});
  dns.set_address("mta-sts.example.com", dns::AddressFamily::v6, {dns::Status::ok, {"2001:db8::10"}, {}, {}});
  const auto r = run();
  EXPECT_EQ(r.status, Status::valid);
  EXPECT_EQ(web.last_addresses("mta-sts.example.com"), std::vector<std::string>{"2001:db8::10"});
  EXPECT_FALSE(r.warnings.empty());
}

TEST_F(DiscoveryTest, EveryFetchFailureIsFetchError) {
  using K = https::ErrorKind;
  for (K k : {K::connect, K::tls, K::certificate, K::timeout, K::redirect, K::http_status, K::content_type,
              K::too_large, K::other}) {
    web.fail("mta-sts.example.com", k);
    const auto r = run();
    EXPECT_EQ(r.status, Status::fetch_error) << https::to_string(k);
    EXPECT_EQ(r.fetch.kind, k);
    EXPECT_EQ(r.failure(), FailureKind::fetch);
    EXPECT_FALSE(r.policy);
  }
}

TEST_F(DiscoveryTest, InvalidBodyIsPolicyInvalidWithLineNumbers) {
  web.serve("mta-sts.example.com", "version: STSv1\nmode: sometimes\nmax_age: 10\nmx: a.example\n");
  const auto r = run();
  EXPECT_EQ(r.status, Status::policy_invalid);
  EXPECT_EQ(r.failure(), FailureKind::policy_invalid);
  ASSERT_FALSE(r.errors.empty());
  EXPECT_NE(r.errors.front().find("line"), std::string::npos) << r.errors.front();
  EXPECT_FALSE(r.policy);
}

TEST_F(DiscoveryTest, LfPolicyAndNoneModeAreValid) {
  web.serve("mta-sts.example.com", "version: STSv1\nmode: none\nmax_age: 0\n");
  const auto r = run();
  EXPECT_EQ(r.status, Status::valid);
  ASSERT_TRUE(r.policy);
  EXPECT_EQ(r.policy->mode, Mode::none);
  EXPECT_EQ(r.policy->max_age, Seconds{0});
}

TEST_F(DiscoveryTest, DescribeShowsEveryStep) {
  const auto r = run();
  std::string all;
  for (const auto& l : discovery::describe(r)) all += l + "\n";
  EXPECT_NE(all.find("_mta-sts.example.com"), std::string::npos) << all;
  EXPECT_NE(all.find("v=STSv1; id=20260424T120000;"), std::string::npos) << all;
  EXPECT_NE(all.find("192.0.2.10"), std::string::npos) << all;
  EXPECT_NE(all.find("HTTP 200"), std::string::npos) << all;
  EXPECT_NE(all.find("mode=enforce"), std::string::npos) << all;
}

TEST(HttpsHelpers, TextPlainIsCaseInsensitiveAndIgnoresParameters) {
  EXPECT_TRUE(https::is_text_plain("text/plain"));
  EXPECT_TRUE(https::is_text_plain("Text/Plain; charset=utf-8"));
  EXPECT_TRUE(https::is_text_plain(" text/plain ;format=flowed"));
  EXPECT_FALSE(https::is_text_plain(""));
  EXPECT_FALSE(https::is_text_plain("text/html"));
  EXPECT_FALSE(https::is_text_plain("text/plainx"));
  EXPECT_FALSE(https::is_text_plain("application/octet-stream"));
  EXPECT_EQ(https::policy_url("mta-sts.example.com"), "https://mta-sts.example.com/.well-known/mta-sts.txt");
}

TEST(DnsServers, ParseResolverAddresses) {
  EXPECT_EQ(dns::parse_server("127.0.0.1"), (dns::Server{"127.0.0.1", 53}));
  EXPECT_EQ(dns::parse_server("127.0.0.1:5353"), (dns::Server{"127.0.0.1", 5353}));
  EXPECT_EQ(dns::parse_server("[::1]:5353"), (dns::Server{"::1", 5353}));
  EXPECT_EQ(dns::parse_server("[::1]"), (dns::Server{"::1", 53}));
  EXPECT_EQ(dns::parse_server("2001:db8::1"), (dns::Server{"2001:db8::1", 53}));
  for (const char* bad : {"", "localhost", "1.2.3.4:0", "1.2.3.4:70000", "1.2.3.4:x", "[::1", "[1.2.3.4]:53",
                          "[::1]x"}) {
    EXPECT_THROW(dns::parse_server(bad), std::invalid_argument) << bad;
  }
}

TEST(DnsServers, ReadResolvConf) {
  char path[] = "/tmp/mtasts-resolv-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string text =
      "# comment\nsearch example.com\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n"
      "nameserver not-an-address\noptions timeout:1\n";
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  const auto servers = dns::servers_from_resolv_conf(path);
  EXPECT_EQ(servers, (std::vector<dns::Server>{{"192.0.2.53", 53}, {"fe80::1", 53}}));
  ::unlink(path);
  EXPECT_THROW(dns::servers_from_resolv_conf("/nonexistent/resolv.conf"), std::runtime_error);
}

// A hostile domain points its policy host at the fetcher's own network: with
// global-addresses-only (on in the fetcher's configuration) nothing is connected to.
TEST_F(DiscoveryTest, NonGlobalPolicyHostAddressesAreRefused) {
  discovery::Options o;
  o.global_addresses_only = true;
  for (const char* ip : {"127.0.0.1", "10.1.2.3", "169.254.169.254", "192.168.0.1", "100.64.0.1"}) {
    dns.set_a("mta-sts.example.com", ip);
    const int before = web.fetches("mta-sts.example.com");
    const auto r = run(nullptr, o);
    EXPECT_EQ(r.status, Status::fetch_error) << ip;
    EXPECT_EQ(r.fetch.kind, https::ErrorKind::no_address) << ip;
    EXPECT_FALSE(r.fetched) << ip;
    EXPECT_EQ(web.fetches("mta-sts.example.com"), before) << ip << ": connected anyway";
    ASSERT_FALSE(r.errors.empty());
    EXPECT_NE(r.errors.back().find("non-global"), std::string::npos) << r.errors.back();
  }
  // Off (tests on loopback, `mta-sts-ctl query`): fetched as before.
  EXPECT_EQ(run().status, Status::valid);
}

TEST(GlobalAddress, Table) {
  for (const char* ip : {"192.0.2.10x", "", "example.com", "0.0.0.0", "0.1.2.3", "10.0.0.1", "100.64.0.1",
                         "100.127.255.255", "127.0.0.1", "127.255.255.254", "169.254.169.254", "172.16.0.1",
                         "172.31.255.255", "192.0.0.8", "192.0.2.1", "192.168.1.1", "198.18.0.1", "198.19.255.1",
                         "198.51.100.7", "203.0.113.9", "224.0.0.1", "239.1.1.1", "240.0.0.1", "255.255.255.255",
                         "::", "::1", "::127.0.0.1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "fc00::1", "fd12:3456::1",
                         "fe80::1", "febf::1", "fec0::1", "ff02::1", "2001:db8::1", "100::1"})
    EXPECT_FALSE(is_global_address(ip)) << ip;
  for (const char* ip : {"8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.15.255.255", "172.32.0.1",
                         "192.0.1.1", "192.169.0.1", "198.17.0.1", "198.20.0.1", "223.255.255.255", "::ffff:8.8.4.4",
                         "2a00:1450:4001::1", "2001:4860:4860::8888", "2606:4700::1111"})
    EXPECT_TRUE(is_global_address(ip)) << ip;
}

}  // namespace
}  // namespace mtasts
