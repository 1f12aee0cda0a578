// The fail-safe rule of the lookup (issue 18; RFC 8461 section 5.1): a usable policy this
// process has read is applied until it expires, whatever happens to the shared cache, the
// subscriber or the configuration; only a newer policy or an operator's drop replaces it.
// Fake clock and fake source: nothing here waits on wall time.
#include "common/fleet/lookup.hpp"

#include <gtest/gtest.h>

#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/fake_lookup_source.hpp"

namespace mtasts {
namespace {

using std::chrono::milliseconds;
using test::FakeClock;
using test::FakeLookupSource;

Domain dom(const std::string& s) { return *Domain::parse(s).domain; }

struct HeldTest : ::testing::Test {
  FakeClock clock;
  FakeLookupSource source;
  LookupStats stats;
  LookupOptions opts;
  std::unique_ptr<PolicyLookup> lookup;

  void make(std::shared_ptr<LocalCache> held = nullptr) {
    lookup = std::make_unique<PolicyLookup>(source, clock, opts, &stats, [](milliseconds) {}, std::move(held));
  }
  void SetUp() override {
    opts.local_ttl = Seconds{60};
    opts.local_cache_size = 100;
    opts.demand_interval = milliseconds{0};
    make();
  }
  // An enforce policy for a day, read once through the lookup; then local-cache-ttl passes.
  void read_enforce_once() {
    source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now()));
    ASSERT_EQ(verdict(*lookup->lookup(dom("example.com")).entry, clock.now()), Verdict::enforce);
    clock.advance(opts.local_ttl + Seconds{1});
  }
  Verdict now_verdict(const LookupResult& r) const {
    return r.entry ? verdict(*r.entry, clock.now()) : Verdict::unknown;
  }
};

TEST_F(HeldTest, AResyncKeepsHeldCopies) {
  read_enforce_once();
  lookup->resync();  // the subscriber came back: announcements may have been lost
  source.fail(true);  // and Redis fails (-LOADING, slow) at the next read
  const LookupResult r = lookup->lookup(dom("example.com"));
  EXPECT_FALSE(r.failed);
  EXPECT_TRUE(r.source_failed);  // counted as a Redis error
  EXPECT_EQ(r.source, LookupSource::stale);
  EXPECT_EQ(now_verdict(r), Verdict::enforce);
}

TEST_F(HeldTest, AResyncMakesTheNextLookupReRead) {
  source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now()));
  lookup->lookup(dom("example.com"));
  lookup->resync();
  EXPECT_EQ(lookup->lookup(dom("example.com")).source, LookupSource::redis);
  EXPECT_EQ(source.gets(), 2);
}

TEST_F(HeldTest, AnAbsentKeyKeepsAHeldEnforcePolicyAndSignalsAMiss) {
  read_enforce_once();
  source.erase("example.com");  // evicted, FLUSHALL, restarted empty, a replica without it
  const LookupResult r = lookup->lookup(dom("example.com"));
  EXPECT_FALSE(r.failed);
  EXPECT_FALSE(r.source_failed);  // Redis answered: not a Redis error
  EXPECT_EQ(r.source, LookupSource::stale);
  EXPECT_EQ(now_verdict(r), Verdict::enforce);
  EXPECT_TRUE(r.miss_signalled);  // the fleet must fetch it again before the copy expires
  EXPECT_EQ(source.misses(), std::vector<std::string>{"example.com"});
}

TEST_F(HeldTest, AnUnreadableValueKeepsAHeldEnforcePolicy) {
  read_enforce_once();
  source.set_unreadable("example.com");  // `reader=` above this build's version, or garbage
  const LookupResult r = lookup->lookup(dom("example.com"));
  EXPECT_EQ(r.source, LookupSource::stale);
  EXPECT_EQ(now_verdict(r), Verdict::enforce);
}

TEST_F(HeldTest, ANegativeOrFailureEntryDoesNotReplaceAHeldPolicy) {
  read_enforce_once();
  // A fetcher rediscovered the domain after the fleet's cache was lost, and found nothing.
  source.set("example.com", test::negative_entry(clock.now()));
  EXPECT_EQ(now_verdict(lookup->lookup(dom("example.com"))), Verdict::enforce);
  clock.advance(opts.local_ttl + Seconds{1});
  source.set("example.com", test::failure_entry(clock.now()));
  EXPECT_EQ(now_verdict(lookup->lookup(dom("example.com"))), Verdict::enforce);
}

TEST_F(HeldTest, AnOlderEntryDoesNotReplaceAHeldPolicy) {
  const SysTime t0 = clock.now();
  clock.advance(Seconds{600});
  read_enforce_once();
  // A replica behind, or a restored backup: the same domain checked before the held copy.
  source.set("example.com", test::policy_entry(Mode::none, "old", {}, t0));
  EXPECT_EQ(now_verdict(lookup->lookup(dom("example.com"))), Verdict::enforce);
}

TEST_F(HeldTest, ANewerPolicyReplacesIt) {
  read_enforce_once();
  source.set("example.com", test::policy_entry(Mode::none, "id2", {}, clock.now()));
  const LookupResult r = lookup->lookup(dom("example.com"));
  EXPECT_EQ(r.source, LookupSource::redis);
  EXPECT_EQ(now_verdict(r), Verdict::none);
  // The replacement is what is held now.
  clock.advance(opts.local_ttl + Seconds{1});
  source.erase("example.com");
  EXPECT_EQ(now_verdict(lookup->lookup(dom("example.com"))), Verdict::none);
}

TEST_F(HeldTest, AnExpiredHeldCopyIsNotUsed) {
  source.set("example.com",
             test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now(), Seconds{3600}));
  lookup->lookup(dom("example.com"));
  clock.advance(Seconds{3600});
  source.erase("example.com");
  LookupResult r = lookup->lookup(dom("example.com"));
  EXPECT_FALSE(r.entry);
  source.fail(true);
  r = lookup->lookup(dom("example.com"));
  EXPECT_TRUE(r.failed);
  EXPECT_FALSE(r.entry);
}

TEST_F(HeldTest, AnOperatorsDropForgetsItWithoutTheAnnouncement) {
  read_enforce_once();
  source.drop("example.com", "mark-1");  // the announcement was lost: no invalidate()
  LookupResult r = lookup->lookup(dom("example.com"));
  EXPECT_FALSE(r.entry);
  EXPECT_EQ(r.source, LookupSource::redis);
  // Forgotten, not merely hidden: a Redis outage now finds nothing to fall back on.
  source.fail(true);
  r = lookup->lookup(dom("example.com"));
  EXPECT_TRUE(r.failed);
}

TEST_F(HeldTest, APolicyReadAfterTheDropIsHeldAgain) {
  source.drop("example.com", "mark-1");
  read_enforce_once();  // refetched after the drop, read under mark-1
  source.erase("example.com");  // and the key is lost again: the mark did not change
  EXPECT_EQ(now_verdict(lookup->lookup(dom("example.com"))), Verdict::enforce);
  source.drop("example.com", "mark-2");
  EXPECT_FALSE(lookup->lookup(dom("example.com")).entry);
}

TEST_F(HeldTest, ZeroLocalCacheTtlStillHolds) {
  opts.local_ttl = Seconds{0};
  make();
  source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now()));
  lookup->lookup(dom("example.com"));
  EXPECT_EQ(lookup->lookup(dom("example.com")).source, LookupSource::redis);  // every lookup reads
  source.fail(true);
  const LookupResult r = lookup->lookup(dom("example.com"));
  EXPECT_FALSE(r.failed);
  EXPECT_EQ(r.source, LookupSource::stale);
  EXPECT_EQ(now_verdict(r), Verdict::enforce);
}

TEST_F(HeldTest, AReloadedLookupKeepsWhatTheOldOneHeld) {
  read_enforce_once();
  opts.local_cache_size = 50;  // the new configuration
  make(lookup->held());
  source.fail(true);  // Redis down during and after the reload
  const LookupResult r = lookup->lookup(dom("example.com"));
  EXPECT_EQ(r.source, LookupSource::stale);
  EXPECT_EQ(now_verdict(r), Verdict::enforce);
}

TEST_F(HeldTest, AnAnnouncementMarksForReReadingWithoutForgetting) {
  read_enforce_once();
  lookup->invalidate("example.com");
  source.fail(true);
  EXPECT_EQ(now_verdict(lookup->lookup(dom("example.com"))), Verdict::enforce);
}

// Issue 19 defect 7: the announcement can come from replica A before replica B, which this
// process reads, applied the write. The announcement says what was written (its checked_at);
// an older entry read after it is answered but not held as fresh for local-cache-ttl.
TEST_F(HeldTest, AnOlderReadThanAnnouncedIsReReadAtTheNextLookup) {
  source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now()));
  ASSERT_EQ(lookup->lookup(dom("example.com")).entry->policy->id, "id1");
  clock.advance(Seconds{5});
  const CacheEntry newer = test::policy_entry(Mode::enforce, "id2", {"mx2.example.com"}, clock.now());
  lookup->invalidate(announcement_text(dom("example.com"), newer));
  // The replica read is behind: still id1. Answered (it is all there is), never forgotten.
  const LookupResult behind = lookup->lookup(dom("example.com"));
  ASSERT_TRUE(behind.entry);
  EXPECT_EQ(behind.entry->policy->id, "id1");
  EXPECT_EQ(source.gets(), 2);
  source.set("example.com", newer);  // the replica caught up
  const LookupResult r = lookup->lookup(dom("example.com"));
  EXPECT_EQ(source.gets(), 3) << "the older entry was held as fresh for local-cache-ttl";
  ASSERT_TRUE(r.entry);
  EXPECT_EQ(r.entry->policy->id, "id2");
  EXPECT_EQ(r.source, LookupSource::redis);
  // Once what was announced is read, local-cache-ttl applies again.
  EXPECT_EQ(lookup->lookup(dom("example.com")).source, LookupSource::local);
  EXPECT_EQ(source.gets(), 3);
}

TEST_F(HeldTest, AnOlderReadThanAnnouncedKeepsTheHeldCopyWhenRedisFails) {
  source.set("example.com", test::policy_entry(Mode::enforce, "id1", {"mx.example.com"}, clock.now()));
  lookup->lookup(dom("example.com"));
  const CacheEntry newer = test::policy_entry(Mode::enforce, "id2", {"mx2.example.com"}, clock.now() + Seconds{5});
  lookup->invalidate(announcement_text(dom("example.com"), newer));
  lookup->lookup(dom("example.com"));  // behind
  source.fail(true);
  const LookupResult r = lookup->lookup(dom("example.com"));
  EXPECT_EQ(r.source, LookupSource::stale);
  EXPECT_EQ(now_verdict(r), Verdict::enforce);
}

TEST(Announcement, ParsesTheDomainAndWhatWasWritten) {
  const SysTime t = FakeClock::kStart;
  const CacheEntry e = test::policy_entry(Mode::enforce, "i", {"mx.example.com"}, t);
  const Announcement a = parse_announcement(announcement_text(dom("example.com"), e));
  EXPECT_EQ(a.domain, "example.com");
  ASSERT_TRUE(a.checked_at);
  EXPECT_EQ(std::chrono::time_point_cast<Seconds>(*a.checked_at), std::chrono::time_point_cast<Seconds>(t));
  // A fetcher of an older release announces the bare domain.
  const Announcement bare = parse_announcement("example.com");
  EXPECT_EQ(bare.domain, "example.com");
  EXPECT_FALSE(bare.checked_at);
  // Untrusted text: a bad version is ignored, the domain still re-read.
  for (const char* bad : {"example.com x", "example.com -5", "example.com 99999999999999999999999", "example.com 12 13"}) {
    const Announcement b = parse_announcement(bad);
    EXPECT_EQ(b.domain, "example.com") << bad;
    EXPECT_FALSE(b.checked_at) << bad;
  }
}

TEST(LocalCacheHeld, EvictionSparesEnforcePoliciesAmongTheLeastRecentlyUsed) {
  LocalCache c(2);
  const SysTime now = FakeClock::kStart;
  const auto ptr = [](CacheEntry e) { return std::make_shared<const CacheEntry>(std::move(e)); };
  c.put("enforce.example", ptr(test::policy_entry(Mode::enforce, "i", {"mx.enforce.example"}, now)), now + Seconds{60},
        c.generation());
  c.put("plain.example", ptr(test::negative_entry(now)), now + Seconds{60}, c.generation());
  c.put("new.example", ptr(test::negative_entry(now)), now + Seconds{60}, c.generation());
  EXPECT_NE(c.get("enforce.example", now), nullptr);
  EXPECT_EQ(c.get("plain.example", now), nullptr);
}

// An invalidation (of any domain) raced with the read of an enforce policy: the lookup
// answered it, so the process holds it, to be re-read at the next lookup; if the shared cache
// then loses the key (a failover to a replica without it), the policy is still applied.
// Failed before: nothing was kept (PartitionTest saw NOTFOUND for a domain the MTA had just
// answered "secure" for, during the partition).
TEST(LocalCacheHeld, AnEnforcePolicyReadAcrossAnInvalidationIsHeldButReRead) {
  LocalCache c(10);
  const SysTime now = FakeClock::kStart;
  const auto ptr = [](CacheEntry e) { return std::make_shared<const CacheEntry>(std::move(e)); };
  const std::uint64_t gen = c.generation();
  c.expire("other.example");  // an announcement arrives while the read is in flight
  c.put("enforce.example", ptr(test::policy_entry(Mode::enforce, "i", {"mx.enforce.example"}, now)), now + Seconds{60},
        gen, now + Seconds{86400});
  EXPECT_EQ(c.get("enforce.example", now), nullptr) << "served without re-reading";
  ASSERT_TRUE(c.get_held("enforce.example", now));
  EXPECT_EQ(verdict(*c.get_held("enforce.example", now)->entry, now), Verdict::enforce);
  // What protects nothing is not kept, and nothing replaces an entry already there.
  c.put("plain.example", ptr(test::negative_entry(now)), now + Seconds{60}, gen);
  EXPECT_FALSE(c.get_held("plain.example", now));
  c.put("enforce.example", ptr(test::policy_entry(Mode::enforce, "old", {"mx.enforce.example"}, now)),
        now + Seconds{60}, gen, now + Seconds{86400});
  EXPECT_EQ(c.get_held("enforce.example", now)->entry->policy->id, "i");
}

}  // namespace
}  // namespace mtasts
