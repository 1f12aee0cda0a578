// Integration tests of discovery with the production resolver (ldns) and HTTPS client
// (libcurl) against the loopback world: a real dnsmasq (with SERVFAIL and silent names) and a
// real nginx with certificates from a test CA. One world serves every case of the suite.
#include <gtest/gtest.h>

#include <cstdlib>

#include "cached/discovery.hpp"
#include "common/util/clock.hpp"
#include "tests/support/world.hpp"

namespace mtasts {
namespace {

using discovery::Status;
using test::Behaviour;
using test::CertKind;
using test::DnsFailure;
using test::DomainSpec;
using test::TxtRecord;
using test::World;

class FetchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world_ = new World();
    World& w = *world_;
    auto spec = [](const std::string& d, const std::string& id) {
      DomainSpec s;
      s.txt = {TxtRecord("v=STSv1; id=" + id + ";")};
      s.policy = World::policy("enforce", {"mail." + d, "*.mx." + d}, 86400);
      return s;
    };
    auto add = [&](const std::string& d, auto change) {
      DomainSpec s = spec(d, "id1");
      change(s);
      w.add_domain(d, s);
    };
    auto same = [](DomainSpec&) {};
    add("crlf.example", same);
    add("lf.example", [](DomainSpec& s) { s.policy = World::policy("testing", {"mail.lf.example"}, 604800, false); });
    add("cname.example", [](DomainSpec& s) { s.txt_cname = "_mta-sts.provider.example"; s.txt = {"v=STSv1; id=delegated;"}; });
    add("multi.example", [](DomainSpec& s) { s.txt = {TxtRecord{"v=STSv1; ", "id=multi", "part;"}}; });
    add("two.example", [](DomainSpec& s) { s.txt = {"v=STSv1; id=one;", "v=STSv1; id=two;"}; });
    add("mixed.example", [](DomainSpec& s) { s.txt = {"v=spf1 -all", "v=STSv1; id=mixed1;"}; });
    add("notxt.example", [](DomainSpec& s) { s.txt = {}; });
    add("servfail.example", [](DomainSpec& s) { s.txt_failure = DnsFailure::servfail; });
    add("timeout.example", [](DomainSpec& s) { s.txt_failure = DnsFailure::timeout; });
    add("redirect.example", [](DomainSpec& s) { s.behaviour = Behaviour::redirect; });
    add("html.example", [](DomainSpec& s) { s.behaviour = Behaviour::wrong_type; });
    add("notype.example", [](DomainSpec& s) { s.behaviour = Behaviour::no_type; });
    add("charset.example", [](DomainSpec& s) { s.behaviour = Behaviour::charset; });
    add("notfound.example", [](DomainSpec& s) { s.behaviour = Behaviour::not_found; });
    add("error.example", [](DomainSpec& s) { s.behaviour = Behaviour::server_error; });
    add("oversized.example", [](DomainSpec& s) { s.behaviour = Behaviour::oversized; });
    add("slow.example", [](DomainSpec& s) { s.behaviour = Behaviour::slow; });
    add("wrongname.example", [](DomainSpec& s) { s.cert = CertKind::wrong_name; });
    add("expired.example", [](DomainSpec& s) { s.cert = CertKind::expired; });
    add("untrusted.example", [](DomainSpec& s) { s.cert = CertKind::untrusted; });
    add("selfsigned.example", [](DomainSpec& s) { s.cert = CertKind::self_signed; });
    add("cnonly.example", [](DomainSpec& s) { s.cert = CertKind::cn_only; });
    add("refetch.example", [](DomainSpec&) {});
    add("nohost.example", [](DomainSpec& s) { s.policy_host = false; });
    add("invalid.example", [](DomainSpec& s) { s.policy = "version: STSv1\nmode: always\n"; });
    add("maxage0.example", [](DomainSpec& s) { s.policy = World::policy("enforce", {"mail.maxage0.example"}, 0); });
    add("none.example", [](DomainSpec& s) { s.policy = World::policy("none", {}, 86400); });
    w.start();

    dns::ResolverOptions ro;
    ro.servers = {dns::parse_server(w.resolver())};
    ro.timeout = std::chrono::milliseconds(400);
    ro.retries = 1;
    resolver_ = dns::make_resolver(ro).release();
    https::HttpsOptions ho;
    ho.ca_file = w.ca_file().string();
    ho.timeout = std::chrono::seconds(2);  // the slow body needs ~16 s: this is what it hits
    ho.connect_timeout = std::chrono::seconds(2);
    client_ = https::make_https_client(ho).release();
  }
  static void TearDownTestSuite() {
    delete client_;
    delete resolver_;
    delete world_;
  }

  discovery::Report discover(const std::string& d) {
    auto r = discovery::discover(*Domain::parse(d).domain, *resolver_, *client_, nullptr, SystemClock().now());
    for (const auto& line : discovery::describe(r)) std::printf("  | %s\n", line.c_str());
    return r;
  }
  void expect_fetch_error(const std::string& d, https::ErrorKind kind) {
    const auto r = discover(d);
    EXPECT_EQ(r.status, Status::fetch_error) << d;
    EXPECT_EQ(r.fetch.kind, kind) << d << ": " << https::to_string(r.fetch.kind) << " " << r.fetch.error;
    EXPECT_FALSE(r.policy);
    EXPECT_EQ(r.failure(), FailureKind::fetch);
  }

  static World* world_;
  static dns::Resolver* resolver_;
  static https::HttpsClient* client_;
};
World* FetchTest::world_ = nullptr;
dns::Resolver* FetchTest::resolver_ = nullptr;
https::HttpsClient* FetchTest::client_ = nullptr;

TEST_F(FetchTest, ValidPolicyWithCrlf) {
  const auto r = discover("crlf.example");
  ASSERT_EQ(r.status, Status::valid) << r.reason();
  EXPECT_EQ(r.id, "id1");
  EXPECT_EQ(r.policy->mode, Mode::enforce);
  EXPECT_EQ(r.policy->max_age, Seconds{86400});
  ASSERT_EQ(r.policy->mx.size(), 2u);
  EXPECT_TRUE(r.policy->mx_matches("mail.crlf.example"));
  EXPECT_TRUE(r.policy->mx_matches("a.mx.crlf.example"));
  EXPECT_EQ(r.fetch.status, 200);
  EXPECT_EQ(r.fetch.body.find("\r\n") != std::string::npos, true);
  EXPECT_EQ(r.addresses, std::vector<std::string>{world_->ip()});
  EXPECT_EQ(r.fetch.peer, world_->ip());
}

TEST_F(FetchTest, ProxyEnvironmentIsIgnored) {
  // A proxy that does not exist: were it used, the fetch would fail.
  ::setenv("https_proxy", "http://127.0.0.1:9", 1);
  ::setenv("HTTPS_PROXY", "http://127.0.0.1:9", 1);
  ::setenv("ALL_PROXY", "http://127.0.0.1:9", 1);
  const auto r = discover("crlf.example");
  ::unsetenv("https_proxy");
  ::unsetenv("HTTPS_PROXY");
  ::unsetenv("ALL_PROXY");
  EXPECT_EQ(r.status, Status::valid) << r.reason();
}

TEST_F(FetchTest, ValidPolicyWithLf) {
  const auto r = discover("lf.example");
  ASSERT_EQ(r.status, Status::valid) << r.reason();
  EXPECT_EQ(r.policy->mode, Mode::testing);
  EXPECT_EQ(r.policy->max_age, Seconds{604800});
  EXPECT_EQ(r.fetch.body.find('\r'), std::string::npos);
}

TEST_F(FetchTest, CnameDelegationOfTxtIsFollowed) {
  const auto r = discover("cname.example");
  ASSERT_EQ(r.status, Status::valid) << r.reason();
  EXPECT_EQ(r.id, "delegated");
  EXPECT_EQ(r.txt_cnames, std::vector<std::string>{"_mta-sts.provider.example"});
}

TEST_F(FetchTest, MultiStringTxtIsConcatenated) {
  const auto r = discover("multi.example");
  ASSERT_EQ(r.status, Status::valid) << r.reason();
  EXPECT_EQ(r.id, "multipart");
}

TEST_F(FetchTest, TwoStsRecordsMeanNoPolicy) {
  const auto r = discover("two.example");
  EXPECT_EQ(r.status, Status::no_policy);
  EXPECT_EQ(r.failure(), FailureKind::txt_invalid);
  EXPECT_FALSE(r.fetched);
  EXPECT_EQ(r.txt_records.size(), 2u);
}

TEST_F(FetchTest, NonStsRecordBesideOneStsRecordIsIgnored) {
  const auto r = discover("mixed.example");
  EXPECT_EQ(r.status, Status::valid) << r.reason();
  EXPECT_EQ(r.id, "mixed1");
}

TEST_F(FetchTest, NoTxtRecordMeansNoPolicy) {
  const auto r = discover("notxt.example");
  EXPECT_EQ(r.status, Status::no_policy);
  EXPECT_FALSE(r.failure());
  EXPECT_TRUE(r.txt_dns == dns::Status::nxdomain || r.txt_dns == dns::Status::nodata) << dns::to_string(r.txt_dns);
  EXPECT_FALSE(r.fetched);
}

TEST_F(FetchTest, NxdomainMeansNoPolicy) {
  const auto r = discover("nowhere.example");
  EXPECT_EQ(r.status, Status::no_policy);
  EXPECT_EQ(r.txt_dns, dns::Status::nxdomain);
}

TEST_F(FetchTest, ServfailIsADnsErrorNotAbsence) {
  const auto r = discover("servfail.example");
  EXPECT_EQ(r.status, Status::dns_error);
  EXPECT_EQ(r.txt_dns, dns::Status::servfail);
  EXPECT_EQ(r.failure(), FailureKind::dns);
}

TEST_F(FetchTest, DnsTimeoutIsADnsError) {
  const auto start = std::chrono::steady_clock::now();
  const auto r = discover("timeout.example");
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, Status::dns_error);
  EXPECT_EQ(r.txt_dns, dns::Status::timeout);
  EXPECT_LT(took, std::chrono::seconds(3));  // 2 attempts x 400 ms, not a hang
}

TEST_F(FetchTest, RedirectIsNotFollowed) {
  expect_fetch_error("redirect.example", https::ErrorKind::redirect);
  // One request, and no second one to the redirect target (nginx logs a little after replying).
  EXPECT_TRUE(test::wait_until([] { return world_->https().requests("mta-sts.redirect.example") == 1u; },
                               std::chrono::seconds(2)));
}

TEST_F(FetchTest, WrongContentTypeIsRefused) { expect_fetch_error("html.example", https::ErrorKind::content_type); }
TEST_F(FetchTest, MissingContentTypeIsRefused) { expect_fetch_error("notype.example", https::ErrorKind::content_type); }

TEST_F(FetchTest, ContentTypeParametersAreIgnored) {
  const auto r = discover("charset.example");
  EXPECT_EQ(r.status, Status::valid) << r.reason();
  EXPECT_NE(r.fetch.content_type.find("charset"), std::string::npos);
}

TEST_F(FetchTest, NotFoundIsAFetchError) {
  expect_fetch_error("notfound.example", https::ErrorKind::http_status);
  EXPECT_EQ(discover("notfound.example").fetch.status, 404);
}

TEST_F(FetchTest, ServerErrorIsAFetchError) {
  expect_fetch_error("error.example", https::ErrorKind::http_status);
  EXPECT_EQ(discover("error.example").fetch.status, 500);
}

TEST_F(FetchTest, OversizedBodyIsRefused) { expect_fetch_error("oversized.example", https::ErrorKind::too_large); }

TEST_F(FetchTest, SlowBodyHitsTheTotalTimeout) {
  const auto start = std::chrono::steady_clock::now();
  expect_fetch_error("slow.example", https::ErrorKind::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(FetchTest, WrongNameCertificateIsRefused) {
  expect_fetch_error("wrongname.example", https::ErrorKind::certificate);
}
TEST_F(FetchTest, ExpiredCertificateIsRefused) { expect_fetch_error("expired.example", https::ErrorKind::certificate); }
TEST_F(FetchTest, UntrustedCertificateIsRefused) {
  expect_fetch_error("untrusted.example", https::ErrorKind::certificate);
}
TEST_F(FetchTest, SelfSignedCertificateIsRefused) {
  expect_fetch_error("selfsigned.example", https::ErrorKind::certificate);
}

// RFC 6125 section 6.4.4 as RFC 8461 requires: the host name only in the subject CN (no
// subjectAltName) is not a match, whatever libcurl's OpenSSL fallback would say.
TEST_F(FetchTest, CertificateWithTheNameOnlyInTheCnIsRefused) {
  expect_fetch_error("cnonly.example", https::ErrorKind::certificate);
}

// Every fetch checks the certificate: the client reuses its handles, but never a TLS session
// (a resumed session skips the certificate, so a replaced or revoked one would go unnoticed).
TEST_F(FetchTest, RefetchesDoNotResumeTheTlsSession) {
  for (int i = 0; i < 3; ++i) {
    const auto r = discover("refetch.example");
    ASSERT_EQ(r.status, Status::valid) << r.fetch.error;
    EXPECT_FALSE(r.fetch.tls_resumed) << "fetch " << i;
  }
}

TEST_F(FetchTest, PolicyHostWithoutAddressIsAFetchError) {
  expect_fetch_error("nohost.example", https::ErrorKind::no_address);
}

TEST_F(FetchTest, InvalidPolicyBody) {
  const auto r = discover("invalid.example");
  EXPECT_EQ(r.status, Status::policy_invalid);
  EXPECT_FALSE(r.errors.empty());
}

TEST_F(FetchTest, MaxAgeZeroIsAValidPolicy) {
  const auto r = discover("maxage0.example");
  ASSERT_EQ(r.status, Status::valid) << r.reason();
  EXPECT_EQ(r.policy->max_age, Seconds{0});
}

TEST_F(FetchTest, NoneModeIsAValidPolicy) {
  const auto r = discover("none.example");
  ASSERT_EQ(r.status, Status::valid) << r.reason();
  EXPECT_EQ(r.policy->mode, Mode::none);
}

}  // namespace
}  // namespace mtasts
