// Integration tests of the fetcher's cache rules end to end: the production services (built
// from a Config: ldns resolver, curl client, Redis pool) against the loopback world and a real
// Redis. Time is injected (the rules depend on it; the test moves the clock instead of
// sleeping); everything else is real.
#include <gtest/gtest.h>

#include "cached/worker.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/support/world.hpp"

namespace mtasts {
namespace {

using test::Behaviour;
using test::DomainSpec;
using test::World;

Domain dom(const std::string& s) { return *Domain::parse(s).domain; }

class CacheRulesTest : public ::testing::Test {
 protected:
  CacheRulesTest() : world(test::WorldOptions{.redis = true}) {}

  void SetUp() override {
    add("example.com", "id1", "enforce", 86400);
    add("zero.example", "z1", "enforce", 0);
    world.start();
    Config cfg;
    cfg.redis.redis.address = world.redis().address();
    cfg.cached.resolvers = {world.resolver()};
    cfg.cached.ca_file = world.ca_file().string();
    cfg.cached.global_addresses_only = false;  // the world lives on loopback
    cfg.cached.dns_timeout = std::chrono::milliseconds(400);
    cfg.cached.dns_retries = 1;
    cfg.cached.fetch_timeout = std::chrono::seconds(5);
    cfg.cached.refresh_jitter = 0;
    cfg.cached.fetcher_id = "rules";
    services = worker::make_services(cfg, nullptr);
    store = services->store;
  }

  void add(const std::string& d, const std::string& id, const std::string& mode, long max_age) {
    DomainSpec s;
    s.txt = {"v=STSv1; id=" + id + ";"};
    s.policy = World::policy(mode, mode == "none" ? std::vector<std::string>{} : std::vector<std::string>{"mail." + d},
                             max_age);
    world.add_domain(d, s);
  }
  CacheEntry entry(const std::string& d) {
    auto e = store->get(dom(d));
    EXPECT_TRUE(e) << d;
    return e.value_or(CacheEntry{});
  }
  // One pass of the worker at the fake time.
  void pass() {
    worker::Worker w(services, clock);
    EXPECT_TRUE(w.run_once().redis_ok);
  }
  void first_fetch(const std::string& d) {
    store->signal_miss(dom(d), clock.now());
    pass();
  }

  // nginx writes its access log line just after replying: wait for the count we expect to be
  // reached (or time out), then report what is there, so that an extra request still shows.
  std::size_t requests(const std::string& host, std::size_t expected) {
    test::wait_until([&] { return world.https().requests(host) >= expected; }, std::chrono::seconds(2));
    return world.https().requests(host);
  }

  World world;
  test::FakeClock clock;
  std::shared_ptr<const worker::Services> services;
  std::shared_ptr<PolicyStore> store;
};

TEST_F(CacheRulesTest, IdChangeIsPickedUpAtTheNextRefresh) {
  first_fetch("example.com");
  const auto first = entry("example.com");
  ASSERT_EQ(verdict(first, clock.now()), Verdict::enforce);

  world.set_policy("example.com", World::policy("testing", {"mail.example.com", "backup.example.com"}, 86400));
  world.set_txt("example.com", {"v=STSv1; id=id2;"});
  clock.set(first.next_refresh);
  pass();
  const auto second = entry("example.com");
  EXPECT_EQ(second.policy->id, "id2");
  EXPECT_EQ(verdict(second, clock.now()), Verdict::testing);
  EXPECT_EQ(second.policy->policy.mx.size(), 2u);
  EXPECT_EQ(requests("mta-sts.example.com", 2), 2u);
}

TEST_F(CacheRulesTest, UnchangedIdIsNotFetchedAgainUntilTheBodyIsADayOld) {
  first_fetch("example.com");
  const auto first = entry("example.com");
  clock.set(first.next_refresh);  // 23 h later (expiry margin): DNS only
  pass();
  EXPECT_EQ(requests("mta-sts.example.com", 1), 1u);
  const auto second = entry("example.com");
  EXPECT_GT(second.policy->expires_at, first.policy->expires_at);
  clock.set(first.policy->fetched_at + Seconds{86400});  // a day after the fetch: re-fetched
  pass();
  EXPECT_EQ(requests("mta-sts.example.com", 2), 2u);
}

TEST_F(CacheRulesTest, NoneReplacesEnforceAtOnce) {
  first_fetch("example.com");
  const auto first = entry("example.com");
  world.set_policy("example.com", World::policy("none", {}, 86400));
  world.set_txt("example.com", {"v=STSv1; id=optout;"});
  clock.set(first.next_refresh);
  pass();
  const auto e = entry("example.com");
  EXPECT_EQ(verdict(e, clock.now()), Verdict::none);
  EXPECT_EQ(e.policy->id, "optout");
}

TEST_F(CacheRulesTest, FailureKeepsTheValidCachedPolicy) {
  first_fetch("example.com");
  const auto first = entry("example.com");
  // A new id is published but the policy server breaks.
  world.set_txt("example.com", {"v=STSv1; id=id2;"});
  world.set_behaviour("example.com", Behaviour::server_error);
  clock.set(first.next_refresh);
  pass();
  auto e = entry("example.com");
  EXPECT_EQ(e.policy, first.policy);
  ASSERT_TRUE(e.failure);
  EXPECT_EQ(e.failure->kind, FailureKind::fetch);
  EXPECT_EQ(e.failure->txt_id, "id2");
  EXPECT_EQ(verdict(e, clock.now()), Verdict::enforce);

  // Then DNS fails too: still kept, and retried no sooner than the backoff.
  world.set_txt_failure("example.com", test::DnsFailure::servfail);
  clock.set(e.failure->retry_after - Seconds{1});
  pass();
  EXPECT_EQ(entry("example.com").failure->count, 1u);  // not retried within the backoff
  clock.set(e.next_refresh);
  pass();
  e = entry("example.com");
  EXPECT_EQ(e.policy, first.policy);
  EXPECT_EQ(e.failure->kind, FailureKind::dns);
  EXPECT_EQ(e.failure->count, 2u);
  EXPECT_EQ(verdict(e, clock.now()), Verdict::enforce);
  EXPECT_EQ(requests("mta-sts.example.com", 2), 2u);
}

TEST_F(CacheRulesTest, MaxAgeZeroIsStoredForNothing) {
  first_fetch("zero.example");
  const auto e = entry("zero.example");
  ASSERT_TRUE(e.policy);
  EXPECT_EQ(e.policy->policy.max_age, Seconds{0});
  EXPECT_EQ(e.policy->expires_at, e.policy->fetched_at);
  EXPECT_FALSE(policy_usable(e, clock.now()));
  EXPECT_GE(e.next_refresh, clock.now() + Seconds{60});  // no fetch loop
  pass();
  EXPECT_EQ(requests("mta-sts.zero.example", 1), 1u);
}

TEST_F(CacheRulesTest, VanishedTxtKeepsThePolicyUntilExpiryThenNegative) {
  first_fetch("example.com");
  const auto first = entry("example.com");
  world.set_txt("example.com", {});
  clock.set(first.next_refresh);
  pass();
  auto e = entry("example.com");
  EXPECT_EQ(verdict(e, clock.now()), Verdict::enforce);
  EXPECT_EQ(e.policy->expires_at, first.policy->expires_at);
  clock.set(std::max(e.next_refresh, first.policy->expires_at));
  pass();
  e = entry("example.com");
  EXPECT_EQ(verdict(e, clock.now()), Verdict::no_policy);
  EXPECT_FALSE(e.policy);
}

TEST_F(CacheRulesTest, AnnouncesChangesOnTheChannel) {
  // A subscriber sees the domain when its verdict changes.
  RedisOptions ro;
  ro.address = world.redis().address();
  auto sub = Connection::open(ro);
  sub.send({"SUBSCRIBE", store->changed_channel()});
  ASSERT_TRUE(sub.read(std::chrono::milliseconds(1000)));  // subscribe confirmation
  first_fetch("example.com");
  auto msg = sub.read(std::chrono::milliseconds(2000));
  ASSERT_TRUE(msg);
  ASSERT_EQ(msg->size(), 3u);
  const Announcement a = parse_announcement(msg->at(2).str());
  EXPECT_EQ(a.domain, "example.com");
  EXPECT_TRUE(a.checked_at) << "what was written is announced (issue 19)";
}

}  // namespace
}  // namespace mtasts
