// The lookup path with a fake clock and a fake source: local cache life and bounds, miss
// signalling and its deduplication, the bounded miss-wait (with an injected sleep: nothing here
// waits on wall time), announcements, and failures.
#include "common/fleet/lookup.hpp"

#include <gtest/gtest.h>

#include <map>
#include <thread>
#include <vector>

#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/fake_lookup_source.hpp"

namespace mtasts {
namespace {

using std::chrono::milliseconds;
using test::FakeClock;
using test::FakeLookupSource;

Domain dom(const std::string& s) { return *Domain::parse(s).domain; }

EntryPtr ptr(CacheEntry e) { return std::make_shared<const CacheEntry>(std::move(e)); }

TEST(LocalCache, EvictsLeastRecentlyUsed) {
  LocalCache c(2);
  const SysTime now = FakeClock::kStart;
  const SysTime until = now + Seconds{60};
  c.put("a.example", ptr(test::negative_entry(now)), until, c.generation());
  c.put("b.example", ptr(test::negative_entry(now)), until, c.generation());
  ASSERT_NE(c.get("a.example", now), nullptr);  // a is now the most recent
  c.put("c.example", ptr(test::negative_entry(now)), until, c.generation());
  EXPECT_EQ(c.size(), 2u);
  EXPECT_NE(c.get("a.example", now), nullptr);
  EXPECT_EQ(c.get("b.example", now), nullptr);
  EXPECT_NE(c.get("c.example", now), nullptr);
}

TEST(LocalCache, EntriesEndAtTheirDeadline) {
  LocalCache c(10);
  const SysTime now = FakeClock::kStart;
  c.put("a.example", ptr(test::negative_entry(now)), now + Seconds{5}, c.generation());
  EXPECT_NE(c.get("a.example", now + Seconds{4}), nullptr);
  EXPECT_EQ(c.get("a.example", now + Seconds{5}), nullptr);
  EXPECT_EQ(c.size(), 0u);
}

TEST(LocalCache, AReadOlderThanAnInvalidationIsNotCached) {
  LocalCache c(10);
  const SysTime now = FakeClock::kStart;
  const auto gen = c.generation();
  c.erase("a.example");  // an announcement arrives while the read is in flight
  c.put("a.example", ptr(test::negative_entry(now)), now + Seconds{60}, gen);
  EXPECT_EQ(c.get("a.example", now), nullptr);
}

TEST(LocalCache, ZeroCapacityCachesNothing) {
  LocalCache c(0);
  const SysTime now = FakeClock::kStart;
  c.put("a.example", ptr(test::negative_entry(now)), now + Seconds{60}, c.generation());
  EXPECT_EQ(c.get("a.example", now), nullptr);
}

struct PolicyLookupTest : ::testing::Test {
  FakeClock clock;
  FakeLookupSource source;
  LookupStats stats;
  std::vector<milliseconds> sleeps;
  LookupOptions opts;
  std::unique_ptr<PolicyLookup> lookup;

  void make() {
    lookup = std::make_unique<PolicyLookup>(source, clock, opts, &stats, [this](milliseconds d) {
      sleeps.push_back(d);
      clock.advance(Seconds{0});
    });
  }
  void SetUp() override {
    opts.local_ttl = Seconds{60};
    opts.local_cache_size = 100;
    opts.demand_interval = milliseconds{0};  // demand is flushed by hand (flush_demand)
    make();
  }
};

TEST_F(PolicyLookupTest, SecondLookupIsServedLocally) {
  source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now()));
  LookupResult r = lookup->lookup(dom("example.com"));
  ASSERT_TRUE(r.entry);
  EXPECT_EQ(r.source, LookupSource::redis);
  EXPECT_TRUE(r.entry->policy->raw.empty());  // the raw text stays in Redis
  r = lookup->lookup(dom("Example.COM."));
  EXPECT_EQ(r.source, LookupSource::local);
  EXPECT_EQ(source.gets(), 1);
  EXPECT_EQ(stats.local.count(), 1u);
  EXPECT_EQ(stats.redis.count(), 1u);
}

TEST_F(PolicyLookupTest, TheReportSideKeepsThePolicyFileAndTheFailureText) {
  // mta-sts-reportd's reports carry the policy file's lines (policy-string) and tell a
  // certificate failure from another fetch failure by its text.
  opts.keep_texts = true;
  make();
  CacheEntry e = test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now());
  ASSERT_FALSE(e.policy->raw.empty());
  e.failure = FailureState{};
  e.failure->error = "certificate verify failed";
  source.set("example.com", e);
  LookupResult r = lookup->lookup(dom("example.com"));
  ASSERT_TRUE(r.entry);
  EXPECT_EQ(r.entry->policy->raw, e.policy->raw);
  EXPECT_EQ(r.entry->failure->error, "certificate verify failed");
  r = lookup->lookup(dom("example.com"));
  EXPECT_EQ(r.source, LookupSource::local);
  EXPECT_EQ(r.entry->policy->raw, e.policy->raw);
}

TEST_F(PolicyLookupTest, LocalEntriesLiveLocalCacheTtl) {
  source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now()));
  lookup->lookup(dom("example.com"));
  clock.advance(Seconds{59});
  EXPECT_EQ(lookup->lookup(dom("example.com")).source, LookupSource::local);
  clock.advance(Seconds{1});
  EXPECT_EQ(lookup->lookup(dom("example.com")).source, LookupSource::redis);
  EXPECT_EQ(source.gets(), 2);
}

TEST_F(PolicyLookupTest, LocalEntriesNeverOutliveThePolicy) {
  source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now(), Seconds{30}));
  lookup->lookup(dom("example.com"));
  clock.advance(Seconds{29});
  EXPECT_EQ(lookup->lookup(dom("example.com")).source, LookupSource::local);
  clock.advance(Seconds{1});
  EXPECT_EQ(lookup->lookup(dom("example.com")).source, LookupSource::redis);
}

TEST_F(PolicyLookupTest, MaxAgeZeroIsNeverCachedLocally) {
  source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now(), Seconds{0}));
  lookup->lookup(dom("example.com"));
  lookup->lookup(dom("example.com"));
  EXPECT_EQ(source.gets(), 2);
  EXPECT_EQ(lookup->local_size(), 0u);
}

TEST_F(PolicyLookupTest, NegativeEntriesLiveUntilTheirEnd) {
  source.set("plain.example", test::negative_entry(clock.now(), Seconds{10}));
  lookup->lookup(dom("plain.example"));
  clock.advance(Seconds{9});
  EXPECT_EQ(lookup->lookup(dom("plain.example")).source, LookupSource::local);
  clock.advance(Seconds{1});
  EXPECT_EQ(lookup->lookup(dom("plain.example")).source, LookupSource::redis);
}

TEST_F(PolicyLookupTest, ZeroTtlTurnsTheLocalCacheOff) {
  opts.local_ttl = Seconds{0};
  make();
  source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now()));
  lookup->lookup(dom("example.com"));
  EXPECT_EQ(lookup->lookup(dom("example.com")).source, LookupSource::redis);
}

TEST_F(PolicyLookupTest, SizeIsBounded) {
  opts.local_cache_size = 3;
  make();
  for (int i = 0; i < 10; ++i) {
    const std::string d = "d" + std::to_string(i) + ".example";
    source.set(d, test::negative_entry(clock.now()));
    lookup->lookup(dom(d));
  }
  EXPECT_EQ(lookup->local_size(), 3u);
}

TEST_F(PolicyLookupTest, MissIsSignalledOnceAndNeverCached) {
  LookupResult r = lookup->lookup(dom("new.example"));
  EXPECT_FALSE(r.entry);
  EXPECT_FALSE(r.failed);
  EXPECT_TRUE(r.miss_signalled);
  r = lookup->lookup(dom("new.example"));
  EXPECT_EQ(r.source, LookupSource::redis);  // absence is re-read: a filled miss shows at once
  EXPECT_FALSE(r.miss_signalled);
  EXPECT_EQ(source.misses(), std::vector<std::string>{"new.example"});
  // Filled by a fetcher: the next lookup sees it.
  source.set("new.example", test::negative_entry(clock.now()));
  EXPECT_TRUE(lookup->lookup(dom("new.example")).entry);
  // A later miss (entry gone) after the dedup window is signalled again.
  source.erase("new.example");
  lookup->invalidate("new.example");
  clock.advance(Seconds{60});
  EXPECT_TRUE(lookup->lookup(dom("new.example")).miss_signalled);
  EXPECT_EQ(source.misses().size(), 2u);
  EXPECT_EQ(stats.misses_signalled.load(), 2u);
}

TEST_F(PolicyLookupTest, ExpiredEntryIsSignalledAsAMiss) {
  source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now(), Seconds{600}));
  clock.advance(Seconds{601});
  const LookupResult r = lookup->lookup(dom("example.com"));
  ASSERT_TRUE(r.entry);
  EXPECT_EQ(verdict(*r.entry, clock.now()), Verdict::unknown);
  EXPECT_TRUE(r.miss_signalled);
}

TEST_F(PolicyLookupTest, FailedSignalIsRetriedNextTime) {
  source.fail_signal(true);
  LookupResult r = lookup->lookup(dom("new.example"));
  EXPECT_FALSE(r.failed);  // the read worked: the domain is simply not known
  EXPECT_FALSE(r.miss_signalled);
  EXPECT_NE(r.error.find("miss not signalled"), std::string::npos);
  source.fail_signal(false);
  r = lookup->lookup(dom("new.example"));
  EXPECT_TRUE(r.miss_signalled);
}

TEST_F(PolicyLookupTest, SourceFailureIsAFailedLookup) {
  source.fail(true);
  const LookupResult r = lookup->lookup(dom("example.com"));
  EXPECT_TRUE(r.failed);
  EXPECT_FALSE(r.entry);
  EXPECT_EQ(r.error, "fake source down");
  EXPECT_EQ(stats.failed.count(), 1u);
  EXPECT_TRUE(source.misses().empty());
  // Back: mail gets its answer again.
  source.fail(false);
  source.set("example.com", test::negative_entry(clock.now()));
  EXPECT_FALSE(lookup->lookup(dom("example.com")).failed);
}

TEST_F(PolicyLookupTest, LocalEntriesSurviveASourceFailure) {
  source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now()));
  lookup->lookup(dom("example.com"));
  source.fail(true);
  const LookupResult r = lookup->lookup(dom("example.com"));
  EXPECT_FALSE(r.failed);
  EXPECT_EQ(r.source, LookupSource::local);
}

TEST_F(PolicyLookupTest, MissWaitPollsUntilFilled) {
  opts.miss_wait = milliseconds{100};
  opts.poll_interval = milliseconds{20};
  make();
  source.fill_after(3, test::policy_entry(Mode::testing, "t1", {"mx.new.example"}, clock.now()));
  const LookupResult r = lookup->lookup(dom("new.example"));
  ASSERT_TRUE(r.entry);
  EXPECT_TRUE(r.waited);
  EXPECT_TRUE(r.miss_signalled);
  EXPECT_EQ(verdict(*r.entry, clock.now()), Verdict::testing);
  EXPECT_EQ(sleeps, (std::vector<milliseconds>{milliseconds{20}, milliseconds{20}}));
  EXPECT_EQ(stats.waited.count(), 1u);
  // It was cached on the way.
  EXPECT_EQ(lookup->lookup(dom("new.example")).source, LookupSource::local);
}

TEST_F(PolicyLookupTest, MissWaitIsBounded) {
  opts.miss_wait = milliseconds{50};
  opts.poll_interval = milliseconds{20};
  make();
  const LookupResult r = lookup->lookup(dom("new.example"));
  EXPECT_FALSE(r.entry);
  EXPECT_TRUE(r.waited);
  EXPECT_EQ(sleeps, (std::vector<milliseconds>{milliseconds{20}, milliseconds{20}, milliseconds{10}}));
  EXPECT_EQ(source.gets(), 4);
}

TEST_F(PolicyLookupTest, MissWaitStopsOnAFailureKeepingTheAnswer) {
  opts.miss_wait = milliseconds{100};
  make();
  lookup = std::make_unique<PolicyLookup>(source, clock, opts, &stats, [this](milliseconds) { source.fail(true); });
  const LookupResult r = lookup->lookup(dom("new.example"));
  EXPECT_FALSE(r.failed);
  EXPECT_FALSE(r.entry);
  EXPECT_NE(r.error.find("miss-wait"), std::string::npos);
}

TEST_F(PolicyLookupTest, NoWaitForKnownDomains) {
  opts.miss_wait = milliseconds{100};
  make();
  source.set("plain.example", test::negative_entry(clock.now()));
  EXPECT_FALSE(lookup->lookup(dom("plain.example")).waited);
  EXPECT_TRUE(sleeps.empty());
}

TEST_F(PolicyLookupTest, AnnouncementDropsTheLocalEntry) {
  source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now()));
  lookup->lookup(dom("example.com"));
  source.set("example.com", test::policy_entry(Mode::none, "id2", {}, clock.now()));
  EXPECT_EQ(verdict(*lookup->lookup(dom("example.com")).entry, clock.now()), Verdict::enforce);
  lookup->invalidate("example.com");
  const LookupResult r = lookup->lookup(dom("example.com"));
  EXPECT_EQ(r.source, LookupSource::redis);
  EXPECT_EQ(verdict(*r.entry, clock.now()), Verdict::none);
  EXPECT_EQ(stats.invalidations.load(), 1u);
}

TEST_F(PolicyLookupTest, ResyncMarksEverythingForReReading) {
  for (const char* d : {"a.example", "b.example"}) {
    source.set(d, test::negative_entry(clock.now()));
    lookup->lookup(dom(d));
  }
  EXPECT_EQ(lookup->local_size(), 2u);
  lookup->resync();
  EXPECT_EQ(lookup->local_size(), 2u);  // held, see lookup_held_test.cpp
  EXPECT_EQ(lookup->lookup(dom("a.example")).source, LookupSource::redis);
  EXPECT_EQ(stats.resyncs.load(), 1u);
}

TEST_F(PolicyLookupTest, DemandIsNotedOncePerLocalCacheTtlLocalHitsToo) {
  const SysTime t0 = clock.now();
  source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, t0));
  lookup->lookup(dom("example.com"));                       // from the source
  EXPECT_EQ(lookup->lookup(dom("example.com")).source, LookupSource::local);
  lookup->lookup(dom("unknown.example"));                   // a miss is wanted too
  EXPECT_EQ(source.wanted_batches(), 0) << "nothing reaches the source on the lookup path";
  EXPECT_TRUE(lookup->flush_demand());
  EXPECT_EQ(source.wanted_batches(), 1) << "one batch for every domain noted since the last";
  EXPECT_EQ(source.wanted(), (std::map<std::string, SysTime>{{"example.com", t0}, {"unknown.example", t0}}));

  clock.advance(Seconds{30});
  EXPECT_TRUE(lookup->lookup_local(dom("example.com")));
  EXPECT_TRUE(lookup->flush_demand());
  EXPECT_EQ(source.wanted_batches(), 1) << "within local-cache-ttl: not noted again";

  clock.advance(Seconds{31});
  EXPECT_TRUE(lookup->lookup_local(dom("example.com")) || lookup->lookup(dom("example.com")).entry);
  EXPECT_TRUE(lookup->flush_demand());
  EXPECT_EQ(source.wanted_batches(), 2);
  EXPECT_EQ(source.wanted().at("example.com"), t0 + Seconds{61});
}

TEST_F(PolicyLookupTest, ADemandBatchThatFailsIsDroppedAndCounted) {
  source.set("example.com", test::negative_entry(clock.now()));
  source.fail_signal(true);
  EXPECT_TRUE(lookup->lookup(dom("example.com")).entry) << "the lookup itself is not affected";
  EXPECT_FALSE(lookup->flush_demand());
  EXPECT_EQ(lookup->demand_dropped(), 1u);
  EXPECT_EQ(stats.demand_dropped.load(), 1u);
  source.fail_signal(false);
  EXPECT_TRUE(lookup->flush_demand()) << "the failed batch is gone, not retried";
  EXPECT_TRUE(source.wanted().empty());
  lookup->lookup(dom("other.example"));
  EXPECT_TRUE(lookup->flush_demand());
  EXPECT_EQ(source.wanted().count("other.example"), 1u);
}

TEST_F(PolicyLookupTest, PendingDemandIsBounded) {
  opts.demand_max_pending = 2;
  make();
  for (const char* d : {"a.example", "b.example", "c.example"}) lookup->lookup(dom(d));
  EXPECT_EQ(lookup->demand_dropped(), 1u);
  EXPECT_TRUE(lookup->flush_demand());
  EXPECT_EQ(source.wanted().size(), 2u);
}

TEST_F(PolicyLookupTest, DemandIsFlushedInTheBackground) {
  opts.demand_interval = milliseconds{10};
  make();
  lookup->lookup(dom("example.com"));
  // The recorder's own thread sends it; poll with a generous bound.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (source.wanted().empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds{5});
  EXPECT_EQ(source.wanted().count("example.com"), 1u);
}

TEST_F(PolicyLookupTest, ConcurrentLookupsAreSafe) {
  opts.local_cache_size = 16;
  make();
  for (int i = 0; i < 40; ++i) source.set("d" + std::to_string(i) + ".example", test::negative_entry(clock.now()));
  std::vector<std::thread> threads;
  std::atomic<int> found{0};
  int expected = 0;
  for (int t = 0; t < 8; ++t)
    for (int i = 0; i < 500; ++i) expected += (i * 7 + t) % 50 < 40 ? 1 : 0;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        const std::string d = "d" + std::to_string((i * 7 + t) % 50) + ".example";
        if (lookup->lookup(dom(d)).entry) ++found;
        if (i % 97 == 0) lookup->invalidate(d);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(found.load(), expected);
  EXPECT_LE(lookup->local_size(), 16u);
}

}  // namespace
}  // namespace mtasts
