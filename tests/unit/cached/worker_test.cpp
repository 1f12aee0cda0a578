// Unit tests of the fetcher's worker (cached/worker.hpp): fake DNS and HTTPS, a fake clock,
// and a real redis-server on a private unix socket (the store is the thing under test with
// the worker: claims, misses, schedule, shared backoff). Time-dependent behaviour moves the
// fake clock; the only real waiting is for worker threads to finish.
#include "cached/metrics.hpp"
#include "cached/worker.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/fake_https.hpp"
#include "tests/fakes/fake_resolver.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"

namespace mtasts {
namespace {

using namespace std::chrono_literals;
using test::FakeClock;

const std::string kEnforce = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n";

Domain dom(const std::string& s) { return *Domain::parse(s).domain; }

// An enforce policy for mail.example.com fetched at `fetched` under `id`, usable for a day.
CacheEntry test_entry_enforce(SysTime fetched, const std::string& id) {
  CacheEntry e;
  StoredPolicy sp;
  sp.policy.mode = Mode::enforce;
  sp.policy.max_age = Seconds{86400};
  std::string err;
  sp.policy.mx.push_back(*MxPattern::parse("mail.example.com", &err));
  sp.raw = kEnforce;
  sp.id = id;
  sp.fetched_at = fetched;
  sp.expires_at = fetched + Seconds{86400};
  e.policy = sp;
  e.checked_at = fetched;
  e.next_refresh = fetched + Seconds{86400 - 3600};
  return e;
}

class WorkerTest : public ::testing::Test {
 protected:
  WorkerTest() {
    RedisOptions ro;
    ro.address = redis.address();
    ro.command_timeout = 500ms;
    pool = std::make_shared<Pool>(ro);
    store = std::make_shared<PolicyStore>(*pool, StoreOptions{});
  }

  void publish(const std::string& domain, const std::string& id, const std::string& body = kEnforce) {
    dns->set_txt("_mta-sts." + domain, {"v=STSv1; id=" + id + ";"});
    dns->set_a("mta-sts." + domain, "192.0.2.1");
    web->serve("mta-sts." + domain, body);
  }

  std::shared_ptr<const worker::Services> services(unsigned concurrency = 4, std::string warm = "") {
    auto s = std::make_shared<worker::Services>();
    s->pool = pool;
    s->store = store;
    s->resolver = dns;
    s->https = web;
    s->options.concurrency = concurrency;
    s->options.poll_interval = 20ms;
    s->options.lock_ttl = 30s;
    s->options.rules.jitter_percent = 0;
    s->options.warm_list = std::move(warm);
    s->options.fetcher_id = "test";
    return s;
  }

  std::optional<CacheEntry> entry(const std::string& d) { return store->get(dom(d)); }

  test::RedisServer redis;
  std::shared_ptr<Pool> pool;
  std::shared_ptr<PolicyStore> store;
  std::shared_ptr<test::FakeResolver> dns = std::make_shared<test::FakeResolver>();
  std::shared_ptr<test::FakeHttps> web = std::make_shared<test::FakeHttps>();
  FakeClock clock;
};

TEST_F(WorkerTest, SignalledMissIsDiscoveredWrittenAndScheduled) {
  publish("example.com", "id1");
  store->signal_miss(dom("example.com"), clock.now());
  worker::Worker w(services(), clock);
  const auto r = w.run_once();
  EXPECT_EQ(r.taken, 1u);
  auto e = entry("example.com");
  ASSERT_TRUE(e);
  EXPECT_EQ(verdict(*e, clock.now()), Verdict::enforce);
  EXPECT_EQ(e->policy->id, "id1");
  EXPECT_EQ(e->policy->raw, kEnforce);
  EXPECT_EQ(store->misses_size(), 0u);
  EXPECT_TRUE(store->due(clock.now(), 10).empty());
  EXPECT_EQ(store->due(e->next_refresh, 10), std::vector<std::string>{"example.com"});
  EXPECT_EQ(w.counters()["status_valid"], 1);
}

TEST_F(WorkerTest, DomainWithoutPolicyGetsNegativeEntry) {
  store->signal_miss(dom("nothing.example"), clock.now());
  worker::Worker w(services(), clock);
  w.run_once();
  auto e = entry("nothing.example");
  ASSERT_TRUE(e);
  EXPECT_EQ(verdict(*e, clock.now()), Verdict::no_policy);
  EXPECT_EQ(web->fetches("mta-sts.nothing.example"), 0);
}

TEST_F(WorkerTest, UnchangedIdRefreshDoesNotFetchAndExtendsLife) {
  publish("example.com", "id1");
  store->signal_miss(dom("example.com"), clock.now());
  worker::Worker w(services(), clock);
  w.run_once();
  const auto first = *entry("example.com");
  clock.set(first.next_refresh - Seconds{3600 * 12});  // not yet due: nothing happens
  w.run_once();
  EXPECT_EQ(dns->txt_queries("_mta-sts.example.com"), 1);
  clock.set(first.next_refresh);
  w.run_once();
  EXPECT_EQ(dns->txt_queries("_mta-sts.example.com"), 2);
  const auto second = *entry("example.com");
  // Due before the body's daily re-fetch (expiry margin): the id is confirmed, no fetch.
  EXPECT_EQ(web->fetches("mta-sts.example.com"), 1);
  EXPECT_EQ(second.policy->fetched_at, first.policy->fetched_at);
  EXPECT_GT(second.policy->expires_at, first.policy->expires_at);
}

TEST_F(WorkerTest, CachedPolicySurvivesDnsAndFetchFailures) {
  publish("example.com", "id1");
  store->signal_miss(dom("example.com"), clock.now());
  worker::Worker w(services(), clock);
  w.run_once();
  const auto good = *entry("example.com");

  dns->set_txt_failure("_mta-sts.example.com", dns::Status::servfail);
  clock.set(good.next_refresh);
  w.run_once();
  auto e = *entry("example.com");
  EXPECT_EQ(e.policy, good.policy);
  ASSERT_TRUE(e.failure);
  EXPECT_EQ(e.failure->kind, FailureKind::dns);
  EXPECT_EQ(verdict(e, clock.now()), Verdict::enforce);

  // A new id whose fetch fails: still the old policy.
  publish("example.com", "id2");
  web->fail("mta-sts.example.com", https::ErrorKind::certificate);
  clock.set(e.next_refresh);
  w.run_once();
  e = *entry("example.com");
  EXPECT_EQ(e.policy, good.policy);
  EXPECT_EQ(e.failure->kind, FailureKind::fetch);
  EXPECT_EQ(e.failure->count, 2u);
  EXPECT_EQ(verdict(e, clock.now()), Verdict::enforce);
}

TEST_F(WorkerTest, FailureBackoffIsSharedBetweenFetchers) {
  publish("example.com", "id1");
  web->fail("mta-sts.example.com", https::ErrorKind::http_status, 500);
  worker::Worker a(services(), clock);
  worker::Worker b(services(), clock);
  store->signal_miss(dom("example.com"), clock.now());
  a.run_once();
  EXPECT_EQ(web->fetches("mta-sts.example.com"), 1);
  auto e = *entry("example.com");
  ASSERT_TRUE(e.failure);
  EXPECT_EQ(verdict(e, clock.now()), Verdict::no_policy);

  // Another fetcher gets a new miss within 5 minutes: it does not fetch, and clears the miss.
  clock.advance(Seconds{299});
  store->signal_miss(dom("example.com"), clock.now());
  b.run_once();
  EXPECT_EQ(web->fetches("mta-sts.example.com"), 1);
  EXPECT_EQ(store->misses_size(), 0u);

  clock.set(e.failure->retry_after);
  store->signal_miss(dom("example.com"), clock.now());
  b.run_once();
  EXPECT_EQ(web->fetches("mta-sts.example.com"), 2);
}

// RFC 8461 section 5.1: the 5-minute retry rule is per (domain, id). A domain deep in
// backoff that publishes a fixed policy under a new id gets it fetched at the next visit
// (every 5 minutes, TXT only), not after the whole backoff.
TEST_F(WorkerTest, NewIdDuringALongBackoffIsFetchedAtOnce) {
  publish("example.com", "id1");
  web->fail("mta-sts.example.com", https::ErrorKind::http_status, 500);
  worker::Worker w(services(), clock);
  for (int i = 0; i < 6; ++i) {  // six failures in a row: the backoff is an hour
    store->signal_miss(dom("example.com"), clock.now());
    w.run_once();
    clock.set(entry("example.com")->failure->retry_after);
  }
  auto e = *entry("example.com");
  ASSERT_TRUE(e.failure);
  ASSERT_GE(e.failure->retry_after - e.failure->last_at, Seconds{3600});
  const int fetches = web->fetches("mta-sts.example.com");
  clock.set(e.failure->last_at);

  // Visited 5 minutes after the failure; same id: TXT only, no fetch, still in backoff.
  ASSERT_LE(e.next_refresh, e.failure->last_at + kMinFailureBackoff);
  clock.set(e.next_refresh);
  const int txt_before = dns->txt_queries("_mta-sts.example.com");
  w.run_once();
  EXPECT_EQ(web->fetches("mta-sts.example.com"), fetches);
  EXPECT_EQ(dns->txt_queries("_mta-sts.example.com"), txt_before + 1);
  e = *entry("example.com");
  ASSERT_TRUE(e.failure);
  ASSERT_LE(e.next_refresh, clock.now() + kMinFailureBackoff);

  // The owner fixes the policy under a new id: fetched at the next visit.
  web->serve("mta-sts.example.com", kEnforce);
  publish("example.com", "id2");
  clock.set(e.next_refresh);
  w.run_once();
  EXPECT_EQ(web->fetches("mta-sts.example.com"), fetches + 1);
  e = *entry("example.com");
  EXPECT_FALSE(e.failure);
  ASSERT_TRUE(e.policy);
  EXPECT_EQ(e.policy->id, "id2");
  EXPECT_EQ(verdict(e, clock.now()), Verdict::enforce);
}

TEST_F(WorkerTest, DomainClaimedByAnotherFetcherIsLeftAlone) {
  publish("example.com", "id1");
  store->signal_miss(dom("example.com"), clock.now());
  ASSERT_TRUE(store->claim(dom("example.com"), "someone-else", 60s));
  worker::Worker w(services(), clock);
  const auto r = w.run_once();
  EXPECT_EQ(r.busy, 1u);
  EXPECT_EQ(r.taken, 0u);
  EXPECT_EQ(web->fetches("mta-sts.example.com"), 0);
  EXPECT_EQ(store->misses_size(), 1u);  // still there for whoever holds it
  store->release(dom("example.com"), "someone-else");
  EXPECT_EQ(w.run_once().taken, 1u);
  EXPECT_TRUE(entry("example.com"));
}

TEST_F(WorkerTest, WorkOfAKilledFetcherIsPickedUpWhenItsLockExpires) {
  publish("example.com", "id1");
  store->signal_miss(dom("example.com"), clock.now());
  // A fetcher claimed the domain and died: its lock lives on for lock-ttl (Redis time).
  ASSERT_TRUE(store->claim(dom("example.com"), "dead-fetcher", 300ms));
  worker::Worker w(services(), clock);
  EXPECT_EQ(w.run_once().busy, 1u);
  ASSERT_TRUE(test::wait_until([&] { return redis.cli({"EXISTS", "mta-sts:v1:lock:example.com"}) == "0"; }, 5s));
  EXPECT_EQ(w.run_once().taken, 1u);
  EXPECT_TRUE(entry("example.com"));
}

TEST_F(WorkerTest, ScheduleMovedForwardDuringBackoffDoesNotSpin) {
  publish("example.com", "id1");
  web->fail("mta-sts.example.com", https::ErrorKind::timeout);
  store->signal_miss(dom("example.com"), clock.now());
  worker::Worker w(services(), clock);
  w.run_once();
  const auto e = *entry("example.com");
  ASSERT_TRUE(e.failure);
  clock.advance(Seconds{120});
  store->schedule(dom("example.com"), clock.now());  // e.g. `mta-sts-ctl cache warm`
  w.run_once();
  EXPECT_EQ(web->fetches("mta-sts.example.com"), 1);  // still in backoff
  EXPECT_TRUE(store->due(clock.now(), 10).empty());   // and back at its retry time
  EXPECT_EQ(store->due(e.failure->retry_after, 10), std::vector<std::string>{"example.com"});
}

TEST_F(WorkerTest, SlowDomainDoesNotHoldUpOthers) {
  publish("slow.example", "s1");
  publish("fast.example", "f1");
  web->hold("mta-sts.slow.example");
  worker::Worker w(services(2), clock);
  std::thread loop([&] { w.run(); });
  store->signal_miss(dom("slow.example"), clock.now());
  ASSERT_TRUE(test::wait_until([&] { return web->waiting() == 1; }, 5s));
  store->signal_miss(dom("fast.example"), clock.now());
  EXPECT_TRUE(test::wait_until([&] { return entry("fast.example").has_value(); }, 5s));
  EXPECT_FALSE(entry("slow.example"));
  web->release("mta-sts.slow.example");
  EXPECT_TRUE(test::wait_until([&] { return entry("slow.example").has_value(); }, 5s));
  w.stop();
  loop.join();
  EXPECT_TRUE(w.wait_idle(5s));
}

TEST_F(WorkerTest, ADiscoveryThatOutlivesItsClaimWritesNothing) {
  publish("late.example", "a1");
  web->hold("mta-sts.late.example");
  worker::Worker w(services(), clock);
  std::thread loop([&] { w.run(); });
  store->signal_miss(dom("late.example"), clock.now());
  ASSERT_TRUE(test::wait_until([&] { return web->waiting() == 1; }, 5s));
  // Meanwhile this fetcher's claim expires, fetcher B takes the domain and writes what it
  // found (a newer policy).
  redis.cli({"SET", "mta-sts:v1:lock:late.example", "fetcher-b"});
  CacheEntry newer = test_entry_enforce(clock.now(), "b2");
  newer.next_refresh = clock.now() + Seconds{43200};
  ASSERT_EQ(store->put_claimed(dom("late.example"), newer, clock.now(), true, "fetcher-b"),
            PolicyStore::PutResult::written);

  web->release("mta-sts.late.example");
  EXPECT_TRUE(test::wait_until([&] { return w.counters()["writes_fenced"] == 1; }, 5s));
  w.stop();
  loop.join();
  EXPECT_TRUE(w.wait_idle(5s));
  EXPECT_EQ(entry("late.example")->policy->id, "b2") << "B's entry is not overwritten";
  EXPECT_EQ(redis.cli({"GET", "mta-sts:v1:lock:late.example"}), "fetcher-b") << "nor its claim released";
}

TEST_F(WorkerTest, WarmListSchedulesUnknownDomainsOnly) {
  test::TempDir dir("mtasts-warm");
  test::write_file(dir / "warm", "# top destinations\na.example\n\n  b.example  \nnot a domain!\n");
  publish("a.example", "a1");
  publish("b.example", "b1");
  worker::Worker w(services(4, (dir / "warm").string()), clock);
  w.run_once();
  EXPECT_TRUE(entry("a.example"));
  EXPECT_TRUE(entry("b.example"));
  w.run_once();  // both known and not due: the warm list does not pull them forward
  EXPECT_EQ(web->fetches("mta-sts.a.example"), 1);
  EXPECT_EQ(dns->txt_queries("_mta-sts.a.example"), 1);
}

TEST_F(WorkerTest, InvalidNamesAreDroppedFromTheQueue) {
  redis.cli({"ZADD", "mta-sts:v1:misses", "1", "not a domain!"});
  worker::Worker w(services(), clock);
  w.run_once();
  EXPECT_EQ(store->misses_size(), 0u);
}

TEST_F(WorkerTest, SurvivesRedisRestartAndPicksUpNewWork) {
  publish("example.com", "id1");
  worker::Worker w(services(), clock);
  std::thread loop([&] { w.run(); });
  redis.kill();
  std::this_thread::sleep_for(200ms);  // a few failing polls against a dead Redis
  redis.start();
  store->signal_miss(dom("example.com"), clock.now());
  EXPECT_TRUE(test::wait_until([&] { return entry("example.com").has_value(); }, 10s));
  w.stop();
  loop.join();
}

TEST_F(WorkerTest, RunOnceReportsRedisDown) {
  redis.kill();
  worker::Worker w(services(), clock);
  EXPECT_FALSE(w.run_once().redis_ok);
}

TEST_F(WorkerTest, ReloadSwapsServices) {
  publish("example.com", "id1");
  worker::Worker w(services(), clock);
  auto other = std::make_shared<test::FakeHttps>();
  other->serve("mta-sts.example.com", "version: STSv1\nmode: testing\nmx: mail.example.com\nmax_age: 86400\n");
  auto s = std::make_shared<worker::Services>(*services());
  s->https = other;
  w.reload(s);
  store->signal_miss(dom("example.com"), clock.now());
  w.run_once();
  EXPECT_EQ(verdict(*entry("example.com"), clock.now()), Verdict::testing);
  EXPECT_EQ(web->fetches("mta-sts.example.com"), 0);
}

// A reload (SIGHUP) comes from another thread while run() loops: the warm-list schedule it
// resets must be shared safely (under ThreadSanitizer, the tsan preset, this test fails on a
// data race when run() reads next_warm_ without the lock).
TEST_F(WorkerTest, ReloadWhileRunningIsRaceFree) {
  test::TempDir dir("mtasts-warm");
  test::write_file(dir / "warm", "a.example\n");
  publish("a.example", "a1");
  auto s = services(2, (dir / "warm").string());
  worker::Worker w(s, clock);
  std::thread loop([&] { w.run(); });
  // Reloads back to back, so that one lands between run()'s read of the warm-list schedule
  // and its next use of the lock (a window of microseconds per poll).
  const auto until = std::chrono::steady_clock::now() + 300ms;
  while (std::chrono::steady_clock::now() < until) w.reload(s);
  w.stop();
  loop.join();
  EXPECT_TRUE(entry("a.example"));
}

// Fair work: a share of the concurrency goes to due refreshes, so that misses that never end
// (held fetches) cannot starve the refresh of an enforce policy close to its expiry.
TEST_F(WorkerTest, MissesThatHoldEverySlotDoNotStarveADueEnforcePolicy) {
  const SysTime now = clock.now();
  CacheEntry old = test_entry_enforce(now - Seconds{86400 - 600}, "e1");  // expires in 10 min
  old.next_refresh = now - Seconds{1};
  store->put(dom("enforce.example"), old, now, false);
  publish("enforce.example", "e2");
  std::vector<std::string> flood;
  for (int i = 0; i < 8; ++i) {
    const std::string d = "flood" + std::to_string(i) + ".example";
    publish(d, "f1");
    web->hold("mta-sts." + d);
    store->signal_miss(dom(d), now);
    flood.push_back(d);
  }
  auto s = std::make_shared<worker::Services>(*services(4));
  s->options.refresh_share = 25;  // one slot of four
  worker::Worker w(s, clock);
  std::thread loop([&] { w.run(); });
  EXPECT_TRUE(test::wait_until(
      [&] {
        auto e = entry("enforce.example");
        return e && e->policy && e->policy->id == "e2";
      },
      5s))
      << "the enforce policy was not refreshed while misses held the other slots";
  EXPECT_TRUE(test::wait_until([&] { return web->waiting() >= 3; }, 5s)) << "misses use the rest";
  for (const auto& d : flood) web->release("mta-sts." + d);
  w.stop();
  loop.join();
  EXPECT_TRUE(w.wait_idle(5s));
}

TEST_F(WorkerTest, ADomainNobodyLooksUpStopsBeingRefreshed) {
  publish("wanted.example", "w1");
  publish("unwanted.example", "u1");
  auto s = std::make_shared<worker::Services>(*services());
  s->options.forget_after = Seconds{2 * 86400};
  worker::Worker w(s, clock);
  store->signal_miss(dom("wanted.example"), clock.now());
  store->signal_miss(dom("unwanted.example"), clock.now());
  w.run_once();
  EXPECT_EQ(w.housekeep().forgotten, 0u) << "both were just wanted (the write answered a miss)";
  // Only one of them is looked up again; three days later both are due.
  clock.advance(Seconds{86400});
  store->note_wanted({{"wanted.example", clock.now()}});
  clock.advance(Seconds{2 * 86400});
  const auto forgotten_before = worker::fetcher_metrics().domains_forgotten.value();
  EXPECT_EQ(w.housekeep().forgotten, 1u);
  EXPECT_EQ(worker::fetcher_metrics().domains_forgotten.value(), forgotten_before + 1) << "mta_sts_cached_domains_forgotten_total";
  EXPECT_EQ(redis.cli({"ZSCORE", "mta-sts:v1:schedule", "unwanted.example"}), "");
  EXPECT_EQ(redis.cli({"ZSCORE", "mta-sts:v1:wanted", "unwanted.example"}), "");
  w.run_once();
  EXPECT_EQ(dns->txt_queries("_mta-sts.wanted.example"), 2) << "refreshed";
  EXPECT_EQ(dns->txt_queries("_mta-sts.unwanted.example"), 1) << "not refreshed: its entry ages out";
  EXPECT_TRUE(entry("unwanted.example")) << "the entry is left to its own TTL";
}

TEST_F(WorkerTest, EvictionKeepsWantedUsableEnforcePoliciesAndDropsTheLeastWanted) {
  StoreOptions so;
  so.max_domains = 2;
  auto small = std::make_shared<PolicyStore>(*pool, so);
  auto s = std::make_shared<worker::Services>(*services());
  s->store = small;
  const SysTime now = clock.now();
  // Two enforce policies looked up long ago (but within forget-after), negative entries looked
  // up a moment ago, and a scheduled domain from before demand was recorded.
  for (const char* d : {"enforce1.example", "enforce2.example"})
    small->put(dom(d), test_entry_enforce(now, "e1"), now, false);
  for (const char* d : {"neg1.example", "neg2.example", "neg3.example"}) {
    CacheEntry e;
    e.no_policy_until = now + Seconds{3600};
    e.checked_at = now;
    e.next_refresh = now + Seconds{3600};
    small->put(dom(d), e, now, false);
  }
  redis.cli({"DEL", "mta-sts:v1:wanted"});
  small->note_wanted({{"enforce1.example", now - Seconds{20 * 86400}}, {"enforce2.example", now - Seconds{10 * 86400}},
                      {"neg1.example", now}, {"neg2.example", now}, {"neg3.example", now}});
  redis.cli({"ZADD", "mta-sts:v1:schedule", "1", "legacy.example"});
  worker::Worker w(s, clock);
  const auto evicted_before = worker::fetcher_metrics().domains_evicted.value();
  EXPECT_EQ(w.housekeep().evicted, 4u);
  EXPECT_EQ(worker::fetcher_metrics().domains_evicted.value(), evicted_before + 4) << "mta_sts_cached_domains_evicted_total";
  EXPECT_EQ(small->schedule_size(), 2u);
  EXPECT_NE(redis.cli({"ZSCORE", "mta-sts:v1:schedule", "enforce1.example"}), "");
  EXPECT_NE(redis.cli({"ZSCORE", "mta-sts:v1:schedule", "enforce2.example"}), "");
  EXPECT_EQ(w.housekeep().evicted, 0u);
}

TEST(WorkerOptions, DefaultFetcherIdIsTheHostNameStableAcrossRestarts) {
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  const auto o = worker::options_from(CachedConfig{});
  EXPECT_EQ(o.fetcher_id, std::string(host));  // not HOSTNAME:PID: a restart reports as itself
  CachedConfig named;
  named.fetcher_id = "fetcher-2";
  EXPECT_EQ(worker::options_from(named).fetcher_id, "fetcher-2");
}

}  // namespace
}  // namespace mtasts
