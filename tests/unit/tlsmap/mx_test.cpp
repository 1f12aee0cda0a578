// The MX set and DANE coverage over a fake resolver and a fake clock: preference order,
// implicit and null MX, invalid hosts, the AD bit, TLSA on some or all hosts, failures, and
// the cache's life (DNS TTL capped by mx-cache-ttl) and bound.
#include "tlsmap/mx.hpp"

#include <gtest/gtest.h>

#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/fake_resolver.hpp"

namespace mtasts::tlsmap {
namespace {

using test::FakeClock;
using test::FakeResolver;

Domain dom(const char* s) { return *Domain::parse(s).domain; }

dns::MxAnswer mx_answer(std::vector<dns::MxRecord> recs, bool ad = false, std::uint32_t ttl = 3600) {
  dns::MxAnswer a;
  a.status = recs.empty() ? dns::Status::nodata : dns::Status::ok;
  a.records = std::move(recs);
  a.authenticated = ad;
  a.ttl = ttl;
  return a;
}

dns::TlsaAnswer tlsa(bool ad, std::size_t n = 1, std::uint32_t ttl = 3600) {
  dns::TlsaAnswer a;
  a.status = n ? dns::Status::ok : dns::Status::nodata;
  a.records = n;
  a.authenticated = ad;
  a.ttl = ttl;
  return a;
}

class MxTest : public ::testing::Test {
 protected:
  FakeResolver dns;
  FakeClock clock;
  MxOptions opts;
  DnsMxSource source{dns, clock, opts};
};

TEST_F(MxTest, HostsInPreferenceOrderNormalised) {
  dns.set_mx("example.com", mx_answer({{20, "MX2.example.com"}, {10, "mx1.example.com"}, {30, "mx1.example.com"}}));
  const MxSetPtr m = source.get(dom("example.com"));
  ASSERT_TRUE(m->available);
  EXPECT_EQ(m->hosts, (std::vector<std::string>{"mx1.example.com", "mx2.example.com"}));
  EXPECT_EQ(m->dane, DaneCoverage::none);
}

TEST_F(MxTest, NoMxMeansTheDomainItself) {
  dns.set_mx("example.com", mx_answer({}));
  EXPECT_EQ(source.get(dom("example.com"))->hosts, std::vector<std::string>{"example.com"});
  // NXDOMAIN too (the fake answers NXDOMAIN for unknown names).
  EXPECT_EQ(source.get(dom("nowhere.example"))->hosts, std::vector<std::string>{"nowhere.example"});
}

TEST_F(MxTest, NullMxAndInvalidHostsGiveNoHost) {
  dns.set_mx("example.com", mx_answer({{0, ""}, {10, "bad_host.example.com"}}));
  const MxSetPtr m = source.get(dom("example.com"));
  EXPECT_TRUE(m->available);
  EXPECT_TRUE(m->hosts.empty());
}

TEST_F(MxTest, FailureIsUnavailableAndRememberedBriefly) {
  dns::MxAnswer a;
  a.status = dns::Status::servfail;
  a.error = "SERVFAIL";
  dns.set_mx("example.com", a);
  EXPECT_FALSE(source.get(dom("example.com"))->available);
  EXPECT_EQ(dns.mx_queries("example.com"), 1);
  source.get(dom("example.com"));
  EXPECT_EQ(dns.mx_queries("example.com"), 1) << "not asked again at once";
  clock.advance(opts.failure_ttl);
  dns.set_mx("example.com", mx_answer({{10, "mx.example.com"}}));
  EXPECT_TRUE(source.get(dom("example.com"))->available);
  EXPECT_EQ(dns.mx_queries("example.com"), 2);
}

TEST_F(MxTest, CachedForTheSmallerOfTtlAndMaximum) {
  dns.set_mx("short.example", mx_answer({{10, "mx.short.example"}}, false, 30));
  dns.set_mx("long.example", mx_answer({{10, "mx.long.example"}}, false, 86400));
  source.get(dom("short.example"));
  source.get(dom("long.example"));
  EXPECT_TRUE(source.cached(dom("short.example")));
  clock.advance(Seconds{30});
  EXPECT_FALSE(source.cached(dom("short.example"))) << "the DNS TTL ended";
  EXPECT_TRUE(source.cached(dom("long.example")));
  clock.advance(opts.max_ttl - Seconds{30});
  EXPECT_FALSE(source.cached(dom("long.example"))) << "mx-cache-ttl caps a long TTL";
}

TEST_F(MxTest, ZeroTtlIsNotCached) {
  dns.set_mx("example.com", mx_answer({{10, "mx.example.com"}}, false, 0));
  source.get(dom("example.com"));
  EXPECT_FALSE(source.cached(dom("example.com")));
}

TEST_F(MxTest, CacheIsBounded) {
  MxOptions small;
  small.max_entries = 3;
  DnsMxSource s(dns, clock, small);
  for (int i = 0; i < 10; ++i) s.get(dom(("d" + std::to_string(i) + ".example").c_str()));
  EXPECT_LE(s.size(), 3u);
}

TEST_F(MxTest, DaneOnEveryHostWhenAllValidated) {
  dns.set_mx("example.com", mx_answer({{10, "mx1.example.com"}, {20, "mx2.example.com"}}, true));
  dns.set_tlsa("_25._tcp.mx1.example.com", tlsa(true));
  dns.set_tlsa("_25._tcp.mx2.example.com", tlsa(true));
  EXPECT_EQ(source.get(dom("example.com"))->dane, DaneCoverage::all);
}

TEST_F(MxTest, DaneOnSomeHosts) {
  dns.set_mx("example.com", mx_answer({{10, "mx1.example.com"}, {20, "mx2.example.com"}}, true));
  dns.set_tlsa("_25._tcp.mx1.example.com", tlsa(true));
  dns.set_tlsa("_25._tcp.mx2.example.com", tlsa(true, 0));
  EXPECT_EQ(source.get(dom("example.com"))->dane, DaneCoverage::some);
}

TEST_F(MxTest, NoDaneWithoutValidation) {
  // TLSA present but the resolver did not validate it (no AD), or the MX RRset itself is not
  // validated: Postfix would not use those records, so neither do we.
  dns.set_mx("a.example", mx_answer({{10, "mx.a.example"}}, true));
  dns.set_tlsa("_25._tcp.mx.a.example", tlsa(false));
  EXPECT_EQ(source.get(dom("a.example"))->dane, DaneCoverage::none);
  dns.set_mx("b.example", mx_answer({{10, "mx.b.example"}}, false));
  dns.set_tlsa("_25._tcp.mx.b.example", tlsa(true));
  EXPECT_EQ(source.get(dom("b.example"))->dane, DaneCoverage::none);
  EXPECT_EQ(dns.tlsa_queries("_25._tcp.mx.b.example"), 0) << "no TLSA lookup under an insecure MX RRset";
}

TEST_F(MxTest, DaneCanBeTurnedOff) {
  MxOptions off;
  off.dane = false;
  DnsMxSource s(dns, clock, off);
  dns.set_mx("example.com", mx_answer({{10, "mx.example.com"}}, true));
  dns.set_tlsa("_25._tcp.mx.example.com", tlsa(true));
  EXPECT_EQ(s.get(dom("example.com"))->dane, DaneCoverage::none);
  EXPECT_EQ(dns.tlsa_queries("_25._tcp.mx.example.com"), 0);
}

}  // namespace
}  // namespace mtasts::tlsmap
