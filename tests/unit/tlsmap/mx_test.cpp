// The MX set and DANE coverage over a fake resolver and a fake clock: preference order,
// implicit and null MX, invalid hosts, the AD bit, TLSA on some or all hosts, which TLSA
// records Postfix can use, validated addresses, failed (bogus) TLSA, the trust in the
// resolver, failures, the cache's life (DNS TTL capped by mx-cache-ttl) and bound, single
// flight per domain and hosts looked at in parallel.
#include "tlsmap/mx.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <thread>

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

// DANE-EE SPKI SHA2-256: the record most domains publish.
constexpr dns::TlsaRecord k311{3, 1, 1, 32};

dns::TlsaAnswer tlsa(bool ad, std::vector<dns::TlsaRecord> recs = {k311}, std::uint32_t ttl = 3600) {
  dns::TlsaAnswer a;
  a.status = recs.empty() ? dns::Status::nodata : dns::Status::ok;
  a.records = std::move(recs);
  a.authenticated = ad;
  a.ttl = ttl;
  return a;
}

dns::TlsaAnswer tlsa_failure(dns::Status s) {
  dns::TlsaAnswer a;
  a.status = s;
  a.error = "fake failure";
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
  EXPECT_EQ(dane_coverage(*m), DaneCoverage::none);
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

// A host with a validated address (A record, AD) and the given TLSA answer.
void dane_host(FakeResolver& dns, const std::string& host, dns::TlsaAnswer t, bool address_ad = true) {
  dns.set_a(host, "192.0.2.1", address_ad);
  dns.set_tlsa("_25._tcp." + host, std::move(t));
}

std::vector<HostDane> dane_of(const MxSetPtr& m) { return m->dane; }

TEST_F(MxTest, DaneOnEveryHostWhenAllValidated) {
  dns.set_mx("example.com", mx_answer({{10, "mx1.example.com"}, {20, "mx2.example.com"}}, true));
  dane_host(dns, "mx1.example.com", tlsa(true));
  dane_host(dns, "mx2.example.com", tlsa(true));
  const MxSetPtr m = source.get(dom("example.com"));
  EXPECT_EQ(dane_coverage(*m), DaneCoverage::all);
  EXPECT_EQ(dane_of(m), (std::vector<HostDane>{HostDane::usable, HostDane::usable}));
}

TEST_F(MxTest, DaneOnSomeHosts) {
  dns.set_mx("example.com", mx_answer({{10, "mx1.example.com"}, {20, "mx2.example.com"}}, true));
  dane_host(dns, "mx1.example.com", tlsa(true));
  dane_host(dns, "mx2.example.com", tlsa(true, {}));
  const MxSetPtr m = source.get(dom("example.com"));
  EXPECT_EQ(dane_coverage(*m), DaneCoverage::some);
  EXPECT_EQ(dane_of(m), (std::vector<HostDane>{HostDane::usable, HostDane::none}));
}

TEST_F(MxTest, NoDaneWithoutValidation) {
  // TLSA present but the resolver did not validate it (no AD), or the MX RRset itself is not
  // validated: Postfix would not use those records, so neither do we.
  dns.set_mx("a.example", mx_answer({{10, "mx.a.example"}}, true));
  dane_host(dns, "mx.a.example", tlsa(false));
  EXPECT_EQ(dane_coverage(*source.get(dom("a.example"))), DaneCoverage::none);
  dns.set_mx("b.example", mx_answer({{10, "mx.b.example"}}, false));
  dane_host(dns, "mx.b.example", tlsa(true));
  EXPECT_EQ(dane_coverage(*source.get(dom("b.example"))), DaneCoverage::none);
  EXPECT_EQ(dns.tlsa_queries("_25._tcp.mx.b.example"), 0) << "no TLSA lookup under an insecure MX RRset";
}

TEST_F(MxTest, InsecureAddressIsNotDane) {
  // The MX RRset and the TLSA RRset are validated, but the host's own address is not (a
  // CNAME to an unsigned provider): Postfix does not look its TLSA up (tls_dane_resolve()).
  dns.set_mx("example.com", mx_answer({{10, "mx.example.com"}}, true));
  dane_host(dns, "mx.example.com", tlsa(true), /*address_ad=*/false);
  const MxSetPtr m = source.get(dom("example.com"));
  EXPECT_EQ(dane_of(m), std::vector<HostDane>{HostDane::none});
  EXPECT_EQ(dns.tlsa_queries("_25._tcp.mx.example.com"), 0) << "like Postfix: no TLSA lookup for an insecure host";
  // An insecure AAAA beside a validated A is as bad: Postfix may connect to that address.
  dns.set_mx("v6.example", mx_answer({{10, "mx.v6.example"}}, true));
  dns.set_address("mx.v6.example", dns::AddressFamily::v4, {dns::Status::ok, {"192.0.2.1"}, {}, {}, true});
  dns.set_address("mx.v6.example", dns::AddressFamily::v6, {dns::Status::ok, {"2001:db8::1"}, {}, {}, false});
  dns.set_tlsa("_25._tcp.mx.v6.example", tlsa(true));
  EXPECT_EQ(dane_of(source.get(dom("v6.example"))), std::vector<HostDane>{HostDane::none});
  // A failed address lookup tells nothing: not DANE either.
  dns.set_mx("fail.example", mx_answer({{10, "mx.fail.example"}}, true));
  dns.set_address("mx.fail.example", dns::AddressFamily::v4, {dns::Status::ok, {"192.0.2.1"}, {}, {}, true});
  dns.set_address("mx.fail.example", dns::AddressFamily::v6, {dns::Status::timeout, {}, {}, "t", false});
  dns.set_tlsa("_25._tcp.mx.fail.example", tlsa(true));
  EXPECT_EQ(dane_of(source.get(dom("fail.example"))), std::vector<HostDane>{HostDane::none});
}

TEST_F(MxTest, ACnameHostIsJudgedByTheTlsaPostfixUses) {
  // mx.example.com is a CNAME to host.provider.example (validated). Postfix asks for TLSA at
  // the end of the chain first and uses what it finds there; only when nothing is there does
  // it use the MX host name's own TLSA.
  const auto cname_host = [&](const std::string& host, const std::string& target) {
    dns.set_address(host, dns::AddressFamily::v4, {dns::Status::ok, {"192.0.2.1"}, {target}, {}, true});
    dns.set_address(host, dns::AddressFamily::v6, {dns::Status::nodata, {}, {target}, {}, true});
  };
  dns.set_mx("a.example", mx_answer({{10, "mx.a.example"}}, true));
  cname_host("mx.a.example", "host.a-provider.example");
  dns.set_tlsa("_25._tcp.mx.a.example", tlsa(true));
  dns.set_tlsa("_25._tcp.host.a-provider.example", tlsa(true, {{1, 1, 1, 32}}));  // found there: only unusable
  EXPECT_EQ(dane_of(source.get(dom("a.example"))), std::vector<HostDane>{HostDane::none});

  dns.set_mx("b.example", mx_answer({{10, "mx.b.example"}}, true));
  cname_host("mx.b.example", "host.b-provider.example");
  dns.set_tlsa("_25._tcp.mx.b.example", tlsa(true));  // nothing at the end of the chain: this one
  EXPECT_EQ(dane_of(source.get(dom("b.example"))), std::vector<HostDane>{HostDane::usable});

  dns.set_mx("c.example", mx_answer({{10, "mx.c.example"}}, true));
  cname_host("mx.c.example", "host.c-provider.example");
  dns.set_tlsa("_25._tcp.mx.c.example", tlsa(true));
  dns.set_tlsa("_25._tcp.host.c-provider.example", tlsa_failure(dns::Status::servfail));
  EXPECT_EQ(dane_of(source.get(dom("c.example"))), std::vector<HostDane>{HostDane::failed});
}

TEST(Tlsa, UsableForSmtpAsPostfixAndOpenSsl) {
  struct Row {
    dns::TlsaRecord r;
    bool usable;
  };
  const Row rows[] = {
      {{3, 1, 1, 32}, true},   {{3, 0, 1, 32}, true},   {{2, 0, 1, 32}, true},   {{2, 1, 2, 64}, true},
      {{3, 1, 0, 91}, true},   {{3, 0, 0, 800}, true},
      {{0, 0, 1, 32}, false},  // PKIX-TA: not for SMTP (RFC 7672 section 3.1.3)
      {{1, 1, 1, 32}, false},  // PKIX-EE
      {{3, 1, 255, 32}, false},  // private-use matching type: Postfix drops it
      {{3, 1, 3, 32}, false},  // unassigned matching type
      {{3, 2, 1, 32}, false},  // unassigned selector
      {{4, 1, 1, 32}, false},  // unassigned usage
      {{3, 1, 1, 31}, false},  {{3, 1, 1, 64}, false},  {{3, 1, 2, 32}, false},  // wrong digest length
      {{3, 1, 0, 0}, false},
  };
  for (const Row& row : rows)
    EXPECT_EQ(usable_for_smtp(row.r), row.usable) << int{row.r.usage} << " " << int{row.r.selector} << " "
                                                  << int{row.r.mtype} << " len " << row.r.data_length;
}

TEST_F(MxTest, OnlyUnusableTlsaIsNotDane) {
  dns.set_mx("example.com", mx_answer({{10, "mx1.example.com"}, {20, "mx2.example.com"}}, true));
  dane_host(dns, "mx1.example.com", tlsa(true, {{1, 1, 1, 32}, {3, 1, 255, 32}}));
  dane_host(dns, "mx2.example.com", tlsa(true, {{1, 1, 1, 32}, {3, 1, 1, 32}}));  // one usable is enough
  EXPECT_EQ(dane_of(source.get(dom("example.com"))), (std::vector<HostDane>{HostDane::none, HostDane::usable}));
}

TEST_F(MxTest, FailedTlsaLookupIsAFailingDaneCheck) {
  // A bogus TLSA RRset is SERVFAIL from a validating resolver: not "no TLSA".
  dns.set_mx("example.com", mx_answer({{10, "mx1.example.com"}, {20, "mx2.example.com"}, {30, "mx3.example.com"}}, true));
  dane_host(dns, "mx1.example.com", tlsa(true));
  dane_host(dns, "mx2.example.com", tlsa_failure(dns::Status::servfail));
  dane_host(dns, "mx3.example.com", tlsa_failure(dns::Status::timeout));
  const MxSetPtr m = source.get(dom("example.com"));
  EXPECT_EQ(dane_of(m), (std::vector<HostDane>{HostDane::usable, HostDane::failed, HostDane::failed}));
  EXPECT_EQ(dane_coverage(*m), DaneCoverage::some);
  // Remembered only briefly, like any failure.
  clock.advance(opts.failure_ttl);
  EXPECT_FALSE(source.cached(dom("example.com")));
  // Under an insecure address a failed TLSA lookup is never made (and would not count).
  dns.set_mx("insecure.example", mx_answer({{10, "mx.insecure.example"}}, true));
  dane_host(dns, "mx.insecure.example", tlsa_failure(dns::Status::servfail), false);
  EXPECT_EQ(dane_of(source.get(dom("insecure.example"))), std::vector<HostDane>{HostDane::none});
}

TEST_F(MxTest, DaneCanBeTurnedOff) {
  MxOptions off;
  off.dane = false;
  DnsMxSource s(dns, clock, off);
  dns.set_mx("example.com", mx_answer({{10, "mx.example.com"}}, true));
  dane_host(dns, "mx.example.com", tlsa(true));
  EXPECT_EQ(dane_coverage(*s.get(dom("example.com"))), DaneCoverage::none);
  EXPECT_EQ(dns.tlsa_queries("_25._tcp.mx.example.com"), 0);
}

TEST_F(MxTest, DaneComesOnWhenTheProbeLaterSucceeds) {
  MxOptions off;
  off.dane = false;
  DnsMxSource s(dns, clock, off);
  dns.set_mx("example.com", mx_answer({{10, "mx.example.com"}}, true, 0));  // TTL 0: never cached
  dane_host(dns, "mx.example.com", tlsa(true));
  EXPECT_EQ(dane_coverage(*s.get(dom("example.com"))), DaneCoverage::none);
  s.set_dane(true);
  EXPECT_EQ(dane_coverage(*s.get(dom("example.com"))), DaneCoverage::all);
  s.set_dane(false);
  EXPECT_EQ(dane_coverage(*s.get(dom("example.com"))), DaneCoverage::none);
}

TEST(DaneResolver, TrustedOnlyOnLoopbackOrListedAndAfterAValidatedProbe) {
  const auto srv = [](const char* s) { return dns::parse_server(s); };
  dns::MxAnswer validated;
  validated.status = dns::Status::nodata;
  validated.authenticated = true;
  dns::MxAnswer plain = validated;
  plain.authenticated = false;
  dns::MxAnswer failed;
  failed.status = dns::Status::timeout;

  EXPECT_TRUE(dane_resolver_check({srv("127.0.0.1")}, {}, ".", validated).ok);
  EXPECT_TRUE(dane_resolver_check({srv("127.0.0.53:5353"), srv("::1")}, {}, ".", validated).ok);
  // Not on loopback: an on-path attacker could forge AD-flagged answers.
  const DaneResolverCheck remote = dane_resolver_check({srv("127.0.0.1"), srv("192.0.2.53")}, {}, ".", validated);
  EXPECT_FALSE(remote.ok);
  EXPECT_NE(remote.why.find("192.0.2.53"), std::string::npos) << remote.why;
  // ...unless the operator says the path is safe.
  EXPECT_TRUE(dane_resolver_check({srv("192.0.2.53")}, {srv("192.0.2.53")}, ".", validated).ok);
  EXPECT_FALSE(dane_resolver_check({srv("192.0.2.53")}, {srv("192.0.2.53:5353")}, ".", validated).ok);
  // A resolver that does not validate, or does not answer.
  const DaneResolverCheck nv = dane_resolver_check({srv("127.0.0.1")}, {}, "probe.example", plain);
  EXPECT_FALSE(nv.ok);
  EXPECT_NE(nv.why.find("probe.example"), std::string::npos) << nv.why;
  EXPECT_FALSE(dane_resolver_check({srv("127.0.0.1")}, {}, ".", failed).ok);
  EXPECT_FALSE(dane_resolver_check({}, {}, ".", validated).ok);
}

TEST(DaneResolver, ProbeAsksOnlyATrustedResolver) {
  FakeResolver dns;
  dns::MxAnswer root;
  root.status = dns::Status::nodata;
  root.authenticated = true;
  dns.set_mx(".", root);
  const std::vector<dns::Server> local{dns::parse_server("127.0.0.1")};
  EXPECT_TRUE(probe_dane_resolver(dns, local, {}, ".").ok);
  EXPECT_EQ(dns.mx_queries("."), 1);
  EXPECT_FALSE(probe_dane_resolver(dns, {dns::parse_server("198.51.100.1")}, {}, ".").ok);
  EXPECT_EQ(dns.mx_queries("."), 1) << "nothing asked of an untrusted resolver";
  root.authenticated = false;
  dns.set_mx(".", root);
  EXPECT_FALSE(probe_dane_resolver(dns, local, {}, ".").ok);
}

TEST(DaneResolver, Loopback) {
  for (const char* s : {"127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"})
    EXPECT_TRUE(dns::is_loopback(dns::parse_server(s))) << s;
  for (const char* s : {"10.0.0.1", "192.0.2.1", "2001:db8::1", "::", "128.0.0.1", "::ffff:10.0.0.1"})
    EXPECT_FALSE(dns::is_loopback(dns::parse_server(s))) << s;
}

// A gate the fake resolver's hook waits on: a DNS server that does not answer until told.
class Gate {
 public:
  void wait() {
    std::unique_lock lk(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lk, [&] { return open_; });
    --waiting_;
  }
  void open() {
    std::lock_guard lk(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Until `n` threads wait at the gate.
  void until_waiting(int n) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return waiting_ >= n; });
  }
  int waiting() {
    std::lock_guard lk(mu_);
    return waiting_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

TEST_F(MxTest, ConcurrentLookupsOfOneDomainShareOneResolution) {
  MxOptions many;
  many.max_waiting = 16;
  DnsMxSource shared(dns, clock, many);
  Gate gate;
  dns.set_hook([&](const std::string& type, const std::string& name) {
    if (type == "MX" && name == "slow.example") gate.wait();
  });
  dns.set_mx("slow.example", mx_answer({{10, "mx.slow.example"}}, true));
  dane_host(dns, "mx.slow.example", tlsa(true));
  std::vector<std::future<MxSetPtr>> asks;
  for (int i = 0; i < 8; ++i)
    asks.push_back(std::async(std::launch::async, [&] { return shared.get(dom("slow.example")); }));
  gate.until_waiting(1);
  // Another domain is not held up by the slow one.
  dns.set_mx("fast.example", mx_answer({{10, "mx.fast.example"}}));
  EXPECT_TRUE(shared.get(dom("fast.example"))->available);
  gate.open();
  for (auto& a : asks) {
    const MxSetPtr m = a.get();
    EXPECT_EQ(dane_coverage(*m), DaneCoverage::all);
  }
  EXPECT_EQ(dns.mx_queries("slow.example"), 1) << "one MX query for eight concurrent lookups";
  EXPECT_EQ(dns.tlsa_queries("_25._tcp.mx.slow.example"), 1);
}

TEST_F(MxTest, ADomainWhoseDnsHangsHoldsABoundedNumberOfThreads) {
  // max_waiting (2) threads wait on the one resolving; the next get()s wait join_wait at most
  // and return a busy set (TEMP), so that the workers left serve the other domains.
  MxOptions o;
  o.join_wait = std::chrono::milliseconds(20);
  DnsMxSource capped(dns, clock, o);
  Gate gate;
  std::atomic<int> mx_asked{0};
  dns.set_hook([&](const std::string& type, const std::string& name) {
    if (type == "MX" && name == "hang.example") {
      ++mx_asked;
      gate.wait();
    }
  });
  dns.set_mx("hang.example", mx_answer({{10, "mx.hang.example"}}));
  auto first = std::async(std::launch::async, [&] { return capped.get(dom("hang.example")); });
  gate.until_waiting(1);
  // max_waiting + 3 more lookups: exactly 3 come back (busy) while the DNS still hangs.
  std::vector<std::future<MxSetPtr>> more;
  for (std::size_t i = 0; i < o.max_waiting + 3; ++i)
    more.push_back(std::async(std::launch::async, [&] { return capped.get(dom("hang.example")); }));
  std::size_t busy = 0;
  for (auto& f : more) {
    // A waiter never becomes ready while the gate is closed; a busy one does after join_wait.
    if (f.wait_for(std::chrono::milliseconds(200)) == std::future_status::ready) {
      EXPECT_TRUE(f.get()->busy);
      ++busy;
    }
  }
  // Any that were not ready yet within 200 ms are waiters or slow starters: give the slow
  // ones their time (a busy answer needs no DNS).
  for (int round = 0; busy < 3 && round < 50; ++round) {
    for (auto& f : more)
      if (f.valid() && f.wait_for(std::chrono::milliseconds(100)) == std::future_status::ready) {
        EXPECT_TRUE(f.get()->busy);
        ++busy;
      }
  }
  EXPECT_EQ(busy, 3u) << "one domain holds at most 1 + max_waiting threads";
  EXPECT_EQ(mx_asked.load(), 1);
  gate.open();
  EXPECT_TRUE(first.get()->available);
  for (auto& f : more) {
    if (f.valid()) {
      EXPECT_TRUE(f.get()->available) << "the waiters share the answer";
    }
  }
  EXPECT_FALSE(capped.get(dom("hang.example"))->busy) << "cached once resolved";
}

TEST_F(MxTest, ABurstBeyondTheWaitersStillSharesAQuickLookup) {
  // More lookups than max_waiting while the resolution is in flight: those beyond wait up to
  // join_wait and, when it ends in time, get the answer (not busy).
  MxOptions o;
  o.max_waiting = 1;
  o.join_wait = std::chrono::seconds(30);
  DnsMxSource burst(dns, clock, o);
  Gate gate;
  dns.set_hook([&](const std::string& type, const std::string&) {
    if (type == "MX") gate.wait();
  });
  dns.set_mx("example.com", mx_answer({{10, "mx.example.com"}}, false, 0));
  std::vector<std::future<MxSetPtr>> asks;
  for (int i = 0; i < 6; ++i) asks.push_back(std::async(std::launch::async, [&] { return burst.get(dom("example.com")); }));
  gate.until_waiting(1);
  gate.open();
  for (auto& a : asks) EXPECT_TRUE(a.get()->available);
}

TEST_F(MxTest, HostsOfADomainAreLookedAtInParallel) {
  // Every TLSA query waits until all four are asked at once: one after another, the first
  // would wait forever (the test then fails on the bound below instead of hanging).
  std::atomic<int> asked{0};
  Gate gate;
  dns.set_hook([&](const std::string& type, const std::string&) {
    if (type != "TLSA") return;
    if (++asked == 4) gate.open();
    gate.wait();
  });
  std::vector<dns::MxRecord> recs;
  for (int i = 1; i <= 4; ++i) {
    const std::string h = "mx" + std::to_string(i) + ".example.com";
    recs.push_back({static_cast<unsigned>(10 * i), h});
    dane_host(dns, h, tlsa(true));
  }
  dns.set_mx("example.com", mx_answer(recs, true));
  auto f = std::async(std::launch::async, [&] { return source.get(dom("example.com")); });
  if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    gate.open();  // let the sequential version finish before failing
    FAIL() << "TLSA queries of one domain are not made in parallel";
  }
  EXPECT_EQ(dane_coverage(*f.get()), DaneCoverage::all);
}

}  // namespace
}  // namespace mtasts::tlsmap
