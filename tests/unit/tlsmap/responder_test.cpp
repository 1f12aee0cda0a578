// The request-to-reply path over a fake cache source, a fake resolver and a fake clock: no
// lookup for keys that are not policy domains, the inline (event-loop) path only for local
// hits, misses signalled, Redis outages answered from a locally held usable entry.
#include "tlsmap/responder.hpp"

#include <gtest/gtest.h>

#include "tests/fakes/cache_entries.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/fake_lookup_source.hpp"
#include "tests/fakes/fake_resolver.hpp"

namespace mtasts::tlsmap {
namespace {

using test::FakeClock;
using test::FakeLookupSource;
using test::FakeResolver;
using test::policy_entry;

class ResponderTest : public ::testing::Test {
 protected:
  ResponderTest() {
    dns.set_mx("example.com", mx({"mx1.example.com", "mx2.example.com", "a.b.example.com"}));
  }
  static dns::MxAnswer mx(std::vector<std::string> hosts) {
    dns::MxAnswer a;
    a.status = dns::Status::ok;
    unsigned pref = 10;
    for (auto& h : hosts) a.records.push_back({pref += 10, h});
    a.ttl = 3600;
    return a;
  }
  LookupOptions lookup_options() {
    LookupOptions o;
    o.local_ttl = Seconds{60};
    return o;
  }

  FakeLookupSource source;
  FakeClock clock;
  FakeResolver dns;
  PolicyLookup lookup{source, clock, lookup_options()};
  DnsMxSource mxs{dns, clock, MxOptions{}};
  ReplyOptions opts;
  Responder responder{lookup, &mxs, clock, opts};
};

TEST_F(ResponderTest, NonDomainKeysNeverReachTheCache) {
  for (const char* req : {"postfix [mx.example.com]", "postfix [mx.example.com]:25", "postfix mx.example.com:25",
                          "postfix 192.0.2.1", "postfix .example.com", "postfix not a name", "sts [192.0.2.1]"}) {
    EXPECT_EQ(responder.answer_fast(req), "NOTFOUND ") << req;
    EXPECT_EQ(responder.answer(req), "NOTFOUND ") << req;
  }
  EXPECT_EQ(source.gets(), 0);
  EXPECT_TRUE(source.misses().empty());
}

TEST_F(ResponderTest, UnknownNameAndMalformedRequestArePerm) {
  EXPECT_EQ(responder.answer_fast("tlspolicy example.com")->rfind("PERM ", 0), 0u);
  EXPECT_EQ(responder.answer("nospace").rfind("PERM ", 0), 0u);
  EXPECT_EQ(source.gets(), 0);
}

TEST_F(ResponderTest, EnforceThroughAWorkerThenInline) {
  source.set("example.com", policy_entry(Mode::enforce, "id1", {"*.example.com"}, clock.now()));
  EXPECT_FALSE(responder.answer_fast("postfix example.com")) << "nothing local yet: a worker must answer";
  EXPECT_EQ(responder.answer("postfix example.com"),
            "OK secure match=mx1.example.com:mx2.example.com servername=hostname");
  EXPECT_EQ(source.gets(), 1);
  // Now the policy and the MX set are held locally: answered inline, no Redis read.
  EXPECT_EQ(responder.answer_fast("postfix EXAMPLE.com."),
            "OK secure match=mx1.example.com:mx2.example.com servername=hostname");
  EXPECT_EQ(source.gets(), 1);
}

TEST_F(ResponderTest, NotYetKnownSignalsAMiss) {
  EXPECT_EQ(responder.answer("postfix example.com"), "NOTFOUND ");
  EXPECT_EQ(source.misses(), std::vector<std::string>{"example.com"});
}

TEST_F(ResponderTest, NotYetKnownDeferredWhenConfigured) {
  ReplyOptions o;
  o.on_unknown = TlsmapAction::defer;
  Responder r(lookup, &mxs, clock, o);
  EXPECT_EQ(r.answer("sts example.com").rfind("TEMP ", 0), 0u);
}

TEST_F(ResponderTest, RedisDownUsesTheEntryHeldLocallyUntilThePolicyExpires) {
  ReplyOptions o;
  o.on_redis_error = TlsmapAction::defer;
  Responder r(lookup, &mxs, clock, o);
  source.set("example.com", policy_entry(Mode::enforce, "id1", {"mx1.example.com"}, clock.now(), Seconds{7200}));
  EXPECT_EQ(r.answer("postfix example.com"), "OK secure match=mx1.example.com servername=hostname");
  source.fail(true);
  clock.advance(Seconds{600});  // past local-cache-ttl: a fresh read is due, and fails
  EXPECT_EQ(r.answer("postfix example.com"), "OK secure match=mx1.example.com servername=hostname");
  clock.advance(Seconds{7200});  // the policy's max_age ran out
  EXPECT_EQ(r.answer("postfix example.com"), "TEMP MTA-STS policy cache unavailable");
  // A domain never read before gets on-redis-error at once.
  EXPECT_EQ(r.answer("postfix other.example"), "TEMP MTA-STS policy cache unavailable");
}

TEST_F(ResponderTest, RedisDownAcceptByDefault) {
  source.fail(true);
  EXPECT_EQ(responder.answer("postfix example.com"), "NOTFOUND ");
}

TEST_F(ResponderTest, WildcardFallsBackWhenTheMxSetCannotBeHad) {
  dns::MxAnswer fail;
  fail.status = dns::Status::timeout;
  dns.set_mx("fallback.example", fail);
  source.set("fallback.example", policy_entry(Mode::enforce, "id1", {"*.fallback.example"}, clock.now()));
  EXPECT_EQ(responder.answer("postfix fallback.example"), "OK secure match=.fallback.example servername=hostname");
}

TEST_F(ResponderTest, NoMxLookupForDomainsThatAreNotEnforced) {
  source.set("example.com", policy_entry(Mode::testing, "id1", {"*.example.com"}, clock.now()));
  EXPECT_EQ(responder.answer("postfix example.com"), "NOTFOUND ");
  EXPECT_EQ(dns.mx_queries("example.com"), 0);
}

TEST_F(ResponderTest, WithoutAResolverWildcardsAreSuffixes) {
  Responder r(lookup, nullptr, clock, opts);
  source.set("example.com", policy_entry(Mode::enforce, "id1", {"*.example.com", "mx.example.org"}, clock.now()));
  EXPECT_EQ(r.answer("postfix example.com"), "OK secure match=.example.com:mx.example.org servername=hostname");
  EXPECT_EQ(r.answer_fast("postfix example.com"), "OK secure match=.example.com:mx.example.org servername=hostname");
}

}  // namespace
}  // namespace mtasts::tlsmap
