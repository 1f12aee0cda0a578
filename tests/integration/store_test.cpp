// The policy store against a real redis-server: the key schema, entry round trips with TTLs,
// deduplicated and bounded misses, the schedule, claims between fetchers, announcements, and
// the milter's read-and-signal ACL.
#include "common/fleet/store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "common/fleet/fleet_clock.hpp"
#include "common/fleet/lookup.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/support/redis_fleet.hpp"
#include "tests/support/redis_server.hpp"

namespace mtasts {
namespace {

using namespace std::chrono_literals;
using test::RedisServer;

constexpr SysTime T0{Seconds{1777032000}};

Domain dom(std::string_view s) {
  auto p = Domain::parse(s);
  if (!p.domain) throw std::runtime_error("bad test domain " + std::string(s) + ": " + p.error);
  return *p.domain;
}

RedisOptions options_for(const RedisServer& s) {
  RedisOptions o;
  o.address = s.address();
  o.connect_timeout = 1s;
  o.command_timeout = 1s;
  return o;
}

CacheEntry enforce_entry(SysTime fetched, Seconds max_age) {
  CacheEntry e;
  StoredPolicy sp;
  sp.policy.mode = Mode::enforce;
  sp.policy.max_age = max_age;
  std::string err;
  sp.policy.mx.push_back(*MxPattern::parse("*.example.com", &err));
  sp.raw = "version: STSv1\r\nmode: enforce\r\nmx: *.example.com\r\nmax_age: " + std::to_string(max_age.count()) + "\r\n";
  sp.id = "20260424";
  sp.fetched_at = fetched;
  sp.expires_at = fetched + max_age;
  e.policy = sp;
  e.checked_at = fetched;
  e.next_refresh = fetched + max_age - Seconds{3600};
  return e;
}

class StoreTest : public ::testing::Test {
 protected:
  std::string cli1(std::vector<std::string> args) { return server_.cli(std::move(args)); }
  RedisServer server_;
  Pool pool_{options_for(server_)};
  PolicyStore store_{pool_, StoreOptions{}};
};

TEST_F(StoreTest, KeySchema) {
  EXPECT_EQ(store_.entry_key(dom("Example.COM.")), "mta-sts:v1:e:example.com");
  EXPECT_EQ(store_.changed_channel(), "mta-sts:v1:changed");
  StoreOptions o;
  o.prefix = "fleet7:";
  EXPECT_EQ(PolicyStore(pool_, o).entry_key(dom("example.com")), "fleet7:v1:e:example.com");
}

TEST_F(StoreTest, PutThenGetRoundTripsWithTtlAndSchedule) {
  const Domain d = dom("example.com");
  EXPECT_FALSE(store_.get(d));
  store_.signal_miss(d, T0);
  const CacheEntry e = enforce_entry(T0, Seconds{86400});
  // `now` is the fake time the entry was written at; the TTL follows from it.
  store_.put(d, e, T0, false);
  auto got = store_.get(d);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, e);
  const long ttl = std::stol(cli1({"TTL", "mta-sts:v1:e:example.com"}));
  EXPECT_EQ(ttl, redis_ttl(e, T0, StoreOptions{}.retention).count());
  EXPECT_EQ(ttl, 86400 + 86400);
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:schedule", "example.com"}),
            std::to_string(e.next_refresh.time_since_epoch().count()));
  EXPECT_EQ(store_.misses_size(), 0u) << "put() takes the domain out of misses";
  EXPECT_EQ(store_.schedule_size(), 1u);
  // Written again (refresh): replaced, not duplicated.
  CacheEntry e2 = e;
  e2.policy->id = "20260425";
  store_.put(d, e2, T0 + Seconds{10}, false);
  EXPECT_EQ(store_.get(d)->policy->id, "20260425");
  EXPECT_EQ(store_.schedule_size(), 1u);
}

TEST_F(StoreTest, UndecodableValueIsAbsentWithAReason) {
  cli1({"SET", "mta-sts:v1:e:example.org", "v=9\nwhatever\n"});
  std::string why;
  EXPECT_FALSE(store_.get(dom("example.org"), &why));
  EXPECT_NE(why.find("unknown codec version 9"), std::string::npos) << why;
  EXPECT_FALSE(store_.get(dom("example.org")));  // without the out-parameter
}

TEST_F(StoreTest, MissesAreDeduplicatedOldestFirstAndBoundedByTheFetcher) {
  StoreOptions o;
  o.max_misses = 3;
  PolicyStore s(pool_, o);
  s.signal_miss(dom("a.example"), T0 + Seconds{1});
  s.signal_miss(dom("a.example"), T0 + Seconds{50});  // again: keeps its first time
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:misses", "a.example"}), std::to_string(T0.time_since_epoch().count() + 1));
  s.signal_miss(dom("b.example"), T0 + Seconds{2});
  s.signal_miss(dom("c.example"), T0 + Seconds{3});
  EXPECT_EQ(s.pending_misses(10), (std::vector<std::string>{"a.example", "b.example", "c.example"}));
  EXPECT_EQ(s.pending_misses(2), (std::vector<std::string>{"a.example", "b.example"}));
  EXPECT_TRUE(s.pending_misses(0).empty());
  s.signal_miss(dom("d.example"), T0 + Seconds{4});
  s.signal_miss(dom("e.example"), T0 + Seconds{5});
  EXPECT_EQ(s.misses_size(), 5u) << "a signal does not trim: the milter's user cannot remove misses";
  EXPECT_EQ(s.trim_misses(), 2u) << "the fetcher's housekeeping drops the oldest beyond max_misses";
  EXPECT_EQ(s.misses_size(), 3u);
  EXPECT_EQ(s.pending_misses(10), (std::vector<std::string>{"c.example", "d.example", "e.example"}));
  s.clear_miss(dom("d.example"));
  EXPECT_EQ(s.pending_misses(10), (std::vector<std::string>{"c.example", "e.example"}));
}

TEST_F(StoreTest, MissSurvivesUntilItsEntryIsWritten) {
  // A fetcher that reads misses and dies before writing leaves them in place.
  store_.signal_miss(dom("example.net"), T0);
  EXPECT_EQ(store_.pending_misses(10), std::vector<std::string>{"example.net"});
  EXPECT_EQ(store_.pending_misses(10), std::vector<std::string>{"example.net"});
  store_.put(dom("example.net"), CacheEntry{}, T0, false);
  EXPECT_TRUE(store_.pending_misses(10).empty());
}

TEST_F(StoreTest, ScheduleDueAndBounds) {
  StoreOptions o;
  o.max_domains = 3;
  PolicyStore s(pool_, o);
  s.schedule(dom("a.example"), T0 + Seconds{100});
  s.schedule(dom("a.example"), T0 + Seconds{50});   // earlier: moved
  s.schedule(dom("a.example"), T0 + Seconds{500});  // later: kept at 50
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:schedule", "a.example"}), std::to_string(T0.time_since_epoch().count() + 50));
  s.schedule(dom("b.example"), T0 + Seconds{10});
  s.schedule(dom("c.example"), T0 + Seconds{1000});
  EXPECT_EQ(s.due(T0 + Seconds{50}, 10), (std::vector<std::string>{"b.example", "a.example"}));
  EXPECT_EQ(s.due(T0 + Seconds{50}, 1), std::vector<std::string>{"b.example"});
  EXPECT_TRUE(s.due(T0, 10).empty());
  EXPECT_TRUE(s.due(T0 + Seconds{5000}, 0).empty());
  // Writes never trim the schedule by rank (that dropped the farthest refreshes: the
  // long-lived policies); the fetcher's housekeeping evicts (see EvictionCandidates...).
  s.schedule(dom("d.example"), T0 + Seconds{20});
  s.put(dom("e.example"), enforce_entry(T0, Seconds{86400}), T0, false);
  EXPECT_EQ(s.schedule_size(), 5u);
}

TEST_F(StoreTest, WantedKeepsTheLatestLookupAndWritesMarkDemand) {
  const long long t0 = T0.time_since_epoch().count();
  store_.note_wanted({{"a.example", T0 + Seconds{10}}, {"b.example", T0 + Seconds{5}}});
  store_.note_wanted({{"a.example", T0 + Seconds{3}}});  // an older report never moves it back
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:wanted", "a.example"}), std::to_string(t0 + 10));
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:wanted", "b.example"}), std::to_string(t0 + 5));
  store_.note_wanted({});  // nothing to send: no command

  const auto put = [&](const std::string& d, SysTime now) {
    ASSERT_TRUE(store_.claim(dom(d), "tok", 30s));
    EXPECT_EQ(store_.put_claimed(dom(d), enforce_entry(now, Seconds{86400}), now, false, "tok"),
              PolicyStore::PutResult::written);
    store_.release(dom(d), "tok");
  };
  // A write that answers a miss marks the domain wanted at the write.
  store_.signal_miss(dom("b.example"), T0);
  put("b.example", T0 + Seconds{100});
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:wanted", "b.example"}), std::to_string(t0 + 100));
  // A refresh of a domain with a wanted record leaves it as it is (demand is the lookups').
  put("a.example", T0 + Seconds{200});
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:wanted", "a.example"}), std::to_string(t0 + 10));
  // An entry from before the wanted set existed gets a record at its next write: grace.
  put("old.example", T0 + Seconds{300});
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:wanted", "old.example"}), std::to_string(t0 + 300));
  EXPECT_EQ(store_.wanted_size(), 3u);
}

TEST_F(StoreTest, ForgetUnwantedRemovesStaleDomainsFromWantedAndScheduleOnly) {
  const SysTime kExpired = T0 + Seconds{3 * 86400};  // the entries below are no longer usable
  StoreOptions o;
  o.max_domains = 2;
  o.max_misses = 1;  // wanted is bounded to 3
  PolicyStore s(pool_, o);
  for (const char* d : {"stale1.example", "stale2.example", "fresh.example"}) {
    s.put(dom(d), enforce_entry(T0, Seconds{86400}), T0, false);
  }
  cli1({"DEL", "mta-sts:v1:wanted"});  // the writes gave each a record at T0
  s.note_wanted({{"stale1.example", T0 - Seconds{100}}, {"stale2.example", T0 - Seconds{50}},
                 {"fresh.example", T0}});
  // Wanted strictly before the cutoff, at most `limit` per call.
  EXPECT_EQ(s.forget_unwanted(T0 - Seconds{10}, 1, kExpired), 1u);
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:schedule", "stale1.example"}), "");
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:wanted", "stale1.example"}), "");
  EXPECT_TRUE(s.get(dom("stale1.example"))) << "the entry stays and ages out with its own TTL";
  EXPECT_EQ(s.forget_unwanted(T0 - Seconds{10}, 100, kExpired), 1u);
  EXPECT_EQ(s.forget_unwanted(T0 - Seconds{10}, 100, kExpired), 0u);
  EXPECT_EQ(s.forget_unwanted(T0, 100, kExpired), 0u) << "wanted at the cutoff itself is kept";
  EXPECT_EQ(s.schedule_size(), 1u);
  // Beyond max_domains + max_misses, names that are not scheduled go too (lookups of domains
  // never fetched), however recent; a scheduled domain keeps its record even when it is the
  // least recently wanted: a flood of lookups must not push an enforce policy out.
  s.note_wanted({{"w1.example", T0 + Seconds{1}}, {"w2.example", T0 + Seconds{2}}, {"w3.example", T0 + Seconds{3}}});
  EXPECT_EQ(s.forget_unwanted(T0 - Seconds{10}, 100, kExpired), 1u);
  EXPECT_NE(cli1({"ZSCORE", "mta-sts:v1:wanted", "fresh.example"}), "");
  EXPECT_NE(cli1({"ZSCORE", "mta-sts:v1:schedule", "fresh.example"}), "");
  EXPECT_EQ(s.wanted_size(), 3u);
  // A flood: many more unscheduled names than the bound; only they are dropped.
  std::vector<std::pair<std::string, SysTime>> flood;
  for (int i = 0; i < 50; ++i) flood.emplace_back("flood" + std::to_string(i) + ".example", T0 + Seconds{100});
  s.note_wanted(flood);
  for (int round = 0; round < 50 && s.wanted_size() > 3; ++round) s.forget_unwanted(T0 - Seconds{10}, 100, kExpired);
  EXPECT_EQ(s.wanted_size(), 3u);
  EXPECT_NE(cli1({"ZSCORE", "mta-sts:v1:wanted", "fresh.example"}), "") << "the oldest, but scheduled";
  EXPECT_NE(cli1({"ZSCORE", "mta-sts:v1:schedule", "fresh.example"}), "");
}

TEST_F(StoreTest, EvictionCandidatesAreScheduledWithTheirDemandAndEntries) {
  store_.put(dom("lru.example"), enforce_entry(T0, Seconds{86400}), T0, false);
  store_.put(dom("recent.example"), enforce_entry(T0, Seconds{86400}), T0, false);
  cli1({"ZADD", "mta-sts:v1:schedule", "1", "legacy.example"});  // scheduled, never looked up
  cli1({"DEL", "mta-sts:v1:wanted"});
  store_.note_wanted({{"lru.example", T0 - Seconds{60}}, {"recent.example", T0}, {"gone.example", T0 - Seconds{90}}});
  auto c = store_.eviction_candidates(10);
  std::map<std::string, PolicyStore::Candidate> by;
  for (auto& x : c) by.emplace(x.name, std::move(x));
  EXPECT_EQ(by.size(), 3u) << "gone.example is wanted but not scheduled: not a candidate";
  ASSERT_TRUE(by.count("legacy.example"));
  EXPECT_FALSE(by["legacy.example"].wanted);
  EXPECT_FALSE(by["legacy.example"].entry);
  ASSERT_TRUE(by.count("lru.example"));
  EXPECT_EQ(by["lru.example"].wanted, T0 - Seconds{60});
  ASSERT_TRUE(by["lru.example"].entry);
  EXPECT_EQ(by["lru.example"].entry->policy->policy.mode, Mode::enforce);
  store_.unschedule({"lru.example", "legacy.example"});
  EXPECT_EQ(store_.schedule_size(), 1u);
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:wanted", "lru.example"}), "");
  EXPECT_TRUE(store_.get(dom("lru.example"))) << "an evicted entry ages out with its TTL";
  EXPECT_TRUE(store_.eviction_candidates(0).empty());
}

TEST_F(StoreTest, ForgetInvalidNames) {
  cli1({"ZADD", "mta-sts:v1:misses", "1", "not a domain!"});
  cli1({"ZADD", "mta-sts:v1:schedule", "1", "not a domain!"});
  store_.forget_invalid("not a domain!");
  EXPECT_EQ(store_.misses_size(), 0u);
  EXPECT_EQ(store_.schedule_size(), 0u);
}

TEST_F(StoreTest, ClaimIsExclusiveAndReleasedOnlyByItsHolder) {
  const Domain d = dom("example.com");
  EXPECT_TRUE(store_.claim(d, "fetcher-a:1", 30s));
  EXPECT_FALSE(store_.claim(d, "fetcher-b:1", 30s));
  store_.release(d, "fetcher-b:1");  // not the holder: no effect
  EXPECT_FALSE(store_.claim(d, "fetcher-b:1", 30s));
  EXPECT_EQ(cli1({"GET", "mta-sts:v1:lock:example.com"}), "fetcher-a:1");
  store_.release(d, "fetcher-a:1");
  EXPECT_TRUE(store_.claim(d, "fetcher-b:1", 30s));
  EXPECT_TRUE(store_.claim(dom("other.example"), "fetcher-a:1", 30s)) << "locks are per domain";
}

TEST_F(StoreTest, ClaimExpiresWhenItsHolderDies) {
  const Domain d = dom("example.com");
  ASSERT_TRUE(store_.claim(d, "dead-fetcher", 150ms));
  EXPECT_FALSE(store_.claim(d, "live-fetcher", 30s));
  // Redis's own clock expires the lock: poll, no fixed sleep.
  EXPECT_TRUE(test::wait_until([&] { return store_.claim(d, "live-fetcher", 30s); }, 3s));
  store_.release(d, "dead-fetcher");  // too late: must not remove the new holder's lock
  EXPECT_EQ(cli1({"GET", "mta-sts:v1:lock:example.com"}), "live-fetcher");
}

TEST_F(StoreTest, RenewExtendsOnlyClaimsStillHeldByTheirToken) {
  const Domain mine = dom("mine.example"), theirs = dom("theirs.example"), gone = dom("gone.example");
  ASSERT_TRUE(store_.claim(mine, "me", 2s));
  ASSERT_TRUE(store_.claim(theirs, "other-fetcher", 2s));
  const std::vector<bool> held = store_.renew({{mine, "me"}, {theirs, "me"}, {gone, "me"}}, 60s);
  EXPECT_EQ(held, (std::vector<bool>{true, false, false}));
  EXPECT_GT(std::stoll(cli1({"PTTL", "mta-sts:v1:lock:mine.example"})), 10000) << "renewed to the new ttl";
  EXPECT_LE(std::stoll(cli1({"PTTL", "mta-sts:v1:lock:theirs.example"})), 2000) << "another's claim untouched";
  EXPECT_EQ(cli1({"GET", "mta-sts:v1:lock:theirs.example"}), "other-fetcher");
  EXPECT_EQ(cli1({"EXISTS", "mta-sts:v1:lock:gone.example"}), "0") << "an expired claim is not taken back";
  EXPECT_TRUE(store_.renew({}, 1s).empty());
}

TEST_F(StoreTest, RedisTimeIsTheServersClock) {
  Connection c = Connection::open(options_for(server_));
  const Micros t = redis_time(c);
  const auto local = std::chrono::duration_cast<Micros>(std::chrono::system_clock::now().time_since_epoch());
  // Same host, same clock: equal within the round trip.
  EXPECT_LT(std::chrono::abs(t - local), Micros(2s));
}

TEST_F(StoreTest, AFetcherThatLostItsClaimCannotOverwriteTheEntry) {
  const Domain d = dom("example.com");
  Connection sub = Connection::open(options_for(server_));
  sub.send({"SUBSCRIBE", store_.changed_channel()});
  ASSERT_TRUE(sub.read(2s));
  store_.signal_miss(d, T0);

  // Fetcher A claims, and its discovery outlives the claim (Redis expires it).
  ASSERT_TRUE(store_.claim(d, "fetcher-a", 100ms));
  ASSERT_TRUE(test::wait_until([&] { return store_.claim(d, "fetcher-b", 30s); }, 3s));
  // Fetcher B, the new holder, writes a newer policy and announces it.
  CacheEntry newer = enforce_entry(T0 + Seconds{600}, Seconds{86400});
  newer.policy->id = "newer";
  EXPECT_EQ(store_.put_claimed(d, newer, T0 + Seconds{600}, true, "fetcher-b"), PolicyStore::PutResult::written);
  auto msg = sub.read(2s);
  ASSERT_TRUE(msg);
  EXPECT_EQ(msg->at(2).str(), announcement_text(d, newer)) << "the domain and what was written";
  msg = sub.read(2s);
  ASSERT_TRUE(msg);
  EXPECT_EQ(msg->at(2).str(), "example.com") << "the bare domain, for MTA hosts of older releases";
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:misses", "example.com"}), "") << "the write cleared the miss";
  const std::string schedule = cli1({"ZSCORE", "mta-sts:v1:schedule", "example.com"});

  // A finishes late with the old policy: nothing is written, nothing announced, and the
  // entry, schedule and misses are B's.
  CacheEntry older = enforce_entry(T0, Seconds{86400});
  older.policy->id = "older";
  store_.signal_miss(d, T0 + Seconds{700});
  EXPECT_EQ(store_.put_claimed(d, older, T0 + Seconds{700}, true, "fetcher-a"), PolicyStore::PutResult::claim_lost);
  EXPECT_EQ(store_.get(d)->policy->id, "newer");
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:schedule", "example.com"}), schedule);
  EXPECT_NE(cli1({"ZSCORE", "mta-sts:v1:misses", "example.com"}), "") << "a lost write leaves the miss";
  EXPECT_FALSE(sub.read(200ms)) << "a fenced-off write announces nothing";
  // Nor with no claim at all, or once B released it.
  store_.release(d, "fetcher-b");
  EXPECT_EQ(store_.put_claimed(d, older, T0 + Seconds{700}, false, "fetcher-b"), PolicyStore::PutResult::claim_lost);
  EXPECT_EQ(store_.get(d)->policy->id, "newer");
}

// A fleet half upgraded: the next codec version's fetcher wrote an entry that today's
// version may read (reader=1) and a field it does not know. Today's readers use it; today's
// fetcher does not replace it (it could not write back the field), and does not spin on it.
TEST_F(StoreTest, AnEntryOfANewerFormatIsReadAndNotReplaced) {
  const Domain d = dom("example.com");
  const std::string today = encode(enforce_entry(T0, Seconds{86400}));
  ASSERT_TRUE(today.starts_with("v=1\n"));
  const std::string next = "v=2\nreader=1\n" + today.substr(4, today.size() - 4 - 5) + "tlsrpt=mailto:x@example.com\nend=\n";
  ASSERT_EQ(cli1({"SET", "mta-sts:v1:e:example.com", next}), "OK");
  cli1({"ZADD", "mta-sts:v1:schedule", "100", "example.com"});
  store_.signal_miss(d, T0);

  std::string why;
  const auto e = store_.get(d, &why);
  ASSERT_TRUE(e) << why;
  EXPECT_EQ(e->policy->id, "20260424");

  ASSERT_TRUE(store_.claim(d, "fetcher-old", 30s));
  CacheEntry mine = enforce_entry(T0 + Seconds{60}, Seconds{86400});
  mine.policy->id = "mine";
  EXPECT_EQ(store_.put_claimed(d, mine, T0 + Seconds{60}, true, "fetcher-old"),
            PolicyStore::PutResult::newer_format_kept);
  // (redis-cli drops the final newline)
  EXPECT_EQ(cli1({"GET", "mta-sts:v1:e:example.com"}) + "\n", next) << "the newer entry is kept byte for byte";
  EXPECT_EQ(store_.misses_size(), 0u) << "the miss is answered: the entry exists";
  EXPECT_EQ(cli1({"ZSCORE", "mta-sts:v1:schedule", "example.com"}),
            std::to_string(std::min(mine.next_refresh, e->next_refresh).time_since_epoch().count()))
      << "moved later, but never past the newer entry's own next refresh (issue 19): the newer fetchers must "
         "find it due before it expires";

  // An entry that needs a newer reader is absent for today's readers, and kept too.
  const std::string needs2 = "v=2\nreader=2\n" + today.substr(4);
  cli1({"SET", "mta-sts:v1:e:example.com", needs2});
  EXPECT_FALSE(store_.get(d, &why));
  EXPECT_NE(why.find("needs reader version 2"), std::string::npos) << why;
  EXPECT_EQ(store_.put_claimed(d, mine, T0 + Seconds{60}, true, "fetcher-old"),
            PolicyStore::PutResult::newer_format_kept);
  EXPECT_EQ(cli1({"GET", "mta-sts:v1:e:example.com"}) + "\n", needs2);
}

TEST_F(StoreTest, PutAnnouncesChangesToSubscribers) {
  Connection sub = Connection::open(options_for(server_));
  sub.send({"SUBSCRIBE", store_.changed_channel()});
  ASSERT_TRUE(sub.read(2s));  // subscribe confirmation
  store_.put(dom("quiet.example"), enforce_entry(T0, Seconds{86400}), T0, false);
  EXPECT_FALSE(sub.read(100ms)) << "announce=false publishes nothing";
  const CacheEntry loud = enforce_entry(T0, Seconds{86400});
  store_.put(dom("loud.example"), loud, T0, true);
  auto msg = sub.read(2s);
  ASSERT_TRUE(msg);
  EXPECT_EQ(msg->at(0).str(), "message");
  EXPECT_EQ(msg->at(1).str(), "mta-sts:v1:changed");
  // "<domain> <checked_at>": a reader of a replica behind knows its read is older (issue 19).
  const Announcement a = parse_announcement(msg->at(2).str());
  EXPECT_EQ(a.domain, "loud.example");
  EXPECT_EQ(a.checked_at, loud.checked_at);
  msg = sub.read(2s);
  ASSERT_TRUE(msg);
  EXPECT_EQ(msg->at(2).str(), "loud.example") << "the bare domain, for MTA hosts of older releases";
  EXPECT_TRUE(store_.drop(dom("loud.example")));
  msg = sub.read(2s);
  ASSERT_TRUE(msg);
  EXPECT_EQ(msg->at(2).str(), "loud.example");
}

TEST_F(StoreTest, DropRemovesEverything) {
  const Domain d = dom("example.com");
  store_.put(d, enforce_entry(T0, Seconds{86400}), T0, false);
  store_.signal_miss(d, T0);
  EXPECT_TRUE(store_.drop(d));
  EXPECT_FALSE(store_.get(d));
  EXPECT_EQ(store_.schedule_size(), 0u);
  EXPECT_EQ(store_.misses_size(), 0u);
  EXPECT_FALSE(store_.drop(d)) << "nothing left to drop";
}

// An operator's drop (issue 19 defect 3) beats a fetch in progress: the claim it took before
// the drop is gone, so its fenced write of the dropped policy changes nothing; and the drop
// leaves a mark that every host reads with the entry (one MGET), new at every drop.
TEST_F(StoreTest, ADropRevokesTheClaimAndLeavesANewMark) {
  const Domain d = dom("example.com");
  store_.put(d, enforce_entry(T0, Seconds{86400}), T0, false);
  EXPECT_EQ(store_.read(d).drop_mark, "");
  ASSERT_TRUE(store_.claim(d, "fetcher-a", 30s));  // a refresh starts
  ASSERT_TRUE(store_.drop(d));                      // the operator drops the domain
  EXPECT_EQ(store_.put_claimed(d, enforce_entry(T0, Seconds{86400}), T0, true, "fetcher-a"),
            PolicyStore::PutResult::claim_lost);
  const PolicyStore::Read r = store_.read(d);
  EXPECT_FALSE(r.present) << "the dropped policy stays dropped";
  EXPECT_FALSE(r.entry);
  EXPECT_FALSE(r.drop_mark.empty());
  const auto ttl = std::stoll(cli1({"TTL", store_.drop_key(d)}));
  EXPECT_GT(ttl, 31557600) << "the mark outlives any held copy";
  // A fetch after the drop writes normally; a second drop leaves another mark.
  ASSERT_TRUE(store_.claim(d, "fetcher-b", 30s));
  EXPECT_EQ(store_.put_claimed(d, enforce_entry(T0, Seconds{86400}), T0, true, "fetcher-b"),
            PolicyStore::PutResult::written);
  EXPECT_TRUE(store_.read(d).entry);
  EXPECT_EQ(store_.read(d).drop_mark, r.drop_mark);
  EXPECT_TRUE(store_.drop(d));
  EXPECT_NE(store_.read(d).drop_mark, r.drop_mark);
}

TEST_F(StoreTest, ReadTellsAnUnreadableValueFromNoKey) {
  const Domain d = dom("example.com");
  EXPECT_FALSE(store_.read(d).present);
  cli1({"SET", store_.entry_key(d), "v=9\nreader=9\nsomething=new\n"});
  const PolicyStore::Read r = store_.read(d);
  EXPECT_TRUE(r.present);
  EXPECT_FALSE(r.entry);
  EXPECT_FALSE(r.decode_error.empty());
}

TEST_F(StoreTest, ListScansOnlyEntryKeysOfThePrefix) {
  std::set<std::string> expected;
  for (int i = 0; i < 150; ++i) {
    const std::string name = "d" + std::to_string(i) + ".example";
    store_.put(dom(name), CacheEntry{}, T0, false);
    expected.insert(name);
  }
  cli1({"SET", "mta-sts:v1:lock:x.example", "t"});
  cli1({"SET", "other:v1:e:y.example", "v"});
  const auto all = store_.list(1000);
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()), expected);
  EXPECT_EQ(all.size(), 150u) << "no duplicates";
  EXPECT_EQ(store_.list(10).size(), 10u);
  EXPECT_TRUE(store_.list(0).empty());

  // A prefix with glob characters is matched literally.
  StoreOptions o;
  o.prefix = "a*[b]?:";
  PolicyStore odd(pool_, o);
  odd.put(dom("z.example"), CacheEntry{}, T0, false);
  EXPECT_EQ(odd.list(100), std::vector<std::string>{"z.example"});
}

TEST_F(StoreTest, WriteStats) {
  store_.write_stats("fetcher-1", {{"fetches", 12}, {"failures_dns", 3}}, Seconds{900});
  EXPECT_EQ(cli1({"HGET", "mta-sts:v1:stats:fetcher-1", "fetches"}), "12");
  EXPECT_EQ(cli1({"HGET", "mta-sts:v1:stats:fetcher-1", "failures_dns"}), "3");
  const long ttl = std::stol(cli1({"TTL", "mta-sts:v1:stats:fetcher-1"}));
  EXPECT_GT(ttl, 890);
  EXPECT_LE(ttl, 900);
  store_.write_stats("fetcher-1", {{"fetches", 13}}, Seconds{900});
  EXPECT_EQ(cli1({"HLEN", "mta-sts:v1:stats:fetcher-1"}), "1") << "replaced, not merged";

  store_.write_stats("fetcher-2", {{"fetches", 7}, {"failures_fetch", 1}}, Seconds{900});
  const auto all = store_.read_stats();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all.at("fetcher-1"), (std::map<std::string, std::string>{{"fetches", "13"}}));
  EXPECT_EQ(all.at("fetcher-2"), (std::map<std::string, std::string>{{"failures_fetch", "1"}, {"fetches", "7"}}));
  EXPECT_EQ(store_.read_stats(1).size(), 1u) << "bounded";
}

TEST_F(StoreTest, RedisDownIsARedisError) {
  server_.kill();
  EXPECT_THROW(store_.get(dom("example.com")), RedisError);
  EXPECT_THROW(store_.signal_miss(dom("example.com"), T0), RedisError);
  server_.start();
  EXPECT_FALSE(store_.get(dom("example.com")));
}

// The lookup library records demand in Redis at most once per domain per local-cache-ttl, and a
// Redis outage costs the lookups nothing but the dropped batch.
TEST_F(StoreTest, LookupsRecordDemandAtMostOncePerLocalCacheTtl) {
  test::FakeClock clock;
  const SysTime t0 = clock.now();
  store_.put(dom("example.com"), enforce_entry(t0, Seconds{86400}), t0, false);
  cli1({"DEL", "mta-sts:v1:wanted"});
  RedisPolicySource source(pool_, StoreOptions{});
  LookupOptions lo;
  lo.local_ttl = Seconds{60};
  lo.demand_interval = 0ms;  // flushed here, not by the recorder's thread
  PolicyLookup lookup(source, clock, lo);
  const auto wanted = [&] { return cli1({"ZSCORE", "mta-sts:v1:wanted", "example.com"}); };
  for (int i = 0; i < 3; ++i) lookup.lookup(dom("example.com"));
  EXPECT_EQ(wanted(), "") << "nothing is written on the lookup path";
  EXPECT_TRUE(lookup.flush_demand());
  EXPECT_EQ(wanted(), std::to_string(t0.time_since_epoch().count()));
  clock.advance(Seconds{59});
  lookup.lookup(dom("example.com"));
  EXPECT_TRUE(lookup.flush_demand());
  EXPECT_EQ(wanted(), std::to_string(t0.time_since_epoch().count())) << "within local-cache-ttl";
  clock.advance(Seconds{1});
  lookup.lookup(dom("example.com"));
  EXPECT_TRUE(lookup.flush_demand());
  EXPECT_EQ(wanted(), std::to_string(t0.time_since_epoch().count() + 60));

  clock.advance(Seconds{30});
  server_.kill();
  EXPECT_TRUE(lookup.lookup(dom("example.com")).entry) << "answered locally while Redis is down";
  EXPECT_TRUE(lookup.lookup(dom("other.example")).failed);
  EXPECT_FALSE(lookup.flush_demand()) << "other.example's note is dropped";
  EXPECT_EQ(lookup.demand_dropped(), 1u);
  server_.start();
}

// The milter's Redis user may read entries, signal misses and listen for changes, nothing else.
TEST(StoreAcl, MilterIsReadAndSignalOnly) {
  RedisServer server(
      "user milter on >mpw resetkeys ~mta-sts:v1:e:* ~mta-sts:v1:misses resetchannels &mta-sts:v1:changed "
      "-@all +get +zadd +subscribe +ping\n"
      "user fetcher on >fpw resetkeys ~mta-sts:* resetchannels &mta-sts:* -@all +@read +@write +@transaction "
      "+@pubsub +eval +ping +scan\n"
      "user default on nopass ~* &* +@all\n");
  RedisOptions mo = options_for(server);
  mo.user = "milter";
  mo.password = "mpw";
  RedisOptions fo = options_for(server);
  fo.user = "fetcher";
  fo.password = "fpw";
  Pool mp(mo), fp(fo);
  PolicyStore milter(mp, StoreOptions{});
  PolicyStore fetcher(fp, StoreOptions{});

  const Domain d = dom("example.com");
  milter.signal_miss(d, T0);
  EXPECT_EQ(fetcher.pending_misses(10), std::vector<std::string>{"example.com"});
  ASSERT_TRUE(fetcher.claim(d, "f1", 30s));
  fetcher.put(d, enforce_entry(T0, Seconds{86400}), T0, true);
  fetcher.release(d, "f1");
  ASSERT_TRUE(milter.get(d));
  EXPECT_EQ(milter.get(d)->policy->id, "20260424");
  try {
    milter.put(d, CacheEntry{}, T0, false);
    ADD_FAILURE() << "the milter could write a policy";
  } catch (const RedisError& e) {
    EXPECT_EQ(e.kind(), RedisError::Kind::auth) << e.what();
  }
  EXPECT_THROW(milter.drop(d), RedisError);
  EXPECT_EQ(fetcher.get(d)->policy->id, "20260424") << "the entry is intact";
}

// The ACL example shipped in etc/ gives each program exactly what the store needs.
TEST(StoreAcl, ShippedAclExampleWorks) {
  const auto path = test::source_dir() / "etc" / "redis-acl.conf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not written yet";
  std::string conf;
  std::istringstream in(test::read_file(path));
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("user ")) continue;
    if (line.starts_with("user default ")) continue;  // the test harness needs the default user
    for (const char* who : {"milter", "cached", "ctl"}) {
      const std::string placeholder = std::string(">CHANGE-ME-") + who;
      if (auto p = line.find(placeholder); p != std::string::npos) line.replace(p, placeholder.size(), ">pw");
    }
    conf += line + "\n";
  }
  conf += "user default on nopass ~* &* +@all\n";
  RedisServer server(conf);
  auto opts = [&](const char* user) {
    RedisOptions o = options_for(server);
    o.user = user;
    o.password = "pw";
    return o;
  };
  Pool mp(opts("mta-sts-milter")), fp(opts("mta-sts-cached")), cp(opts("mta-sts-ctl"));
  PolicyStore milter(mp, StoreOptions{}), fetcher(fp, StoreOptions{}), ctl(cp, StoreOptions{});
  const Domain d = dom("example.com");

  milter.signal_miss(d, T0);
  Connection sub = Connection::open(opts("mta-sts-milter"));
  sub.send({"SUBSCRIBE", milter.changed_channel()});
  ASSERT_TRUE(sub.read(2s));

  EXPECT_EQ(fetcher.pending_misses(10), std::vector<std::string>{"example.com"});
  EXPECT_EQ(fetcher.due(T0, 10).size(), 0u);
  ASSERT_TRUE(fetcher.claim(d, "f1", 30s));
  fetcher.put(d, enforce_entry(T0, Seconds{86400}), T0, true);
  fetcher.release(d, "f1");
  fetcher.schedule(dom("warm.example"), T0);
  fetcher.write_stats("f1", {{"fetches", 1}}, Seconds{900});
  fetcher.clear_miss(d);
  fetcher.forget_invalid("bad name");
  EXPECT_EQ(fetcher.misses_size(), 0u);

  ASSERT_TRUE(milter.get(d));
  EXPECT_TRUE(milter.read(d).entry) << "the entry and its drop mark in one MGET";
  auto msg = sub.read(2s);
  ASSERT_TRUE(msg);
  EXPECT_EQ(msg->at(2).str(), announcement_text(d, enforce_entry(T0, Seconds{86400})));
  msg = sub.read(2s);
  ASSERT_TRUE(msg);
  EXPECT_EQ(msg->at(2).str(), "example.com");
  EXPECT_THROW(milter.put(d, CacheEntry{}, T0, false), RedisError);

  EXPECT_EQ(ctl.list(10), std::vector<std::string>{"example.com"});
  EXPECT_TRUE(ctl.get(d));
  ctl.schedule(dom("warm2.example"), T0);
  EXPECT_EQ(ctl.schedule_size(), 3u);
  EXPECT_EQ(ctl.misses_size(), 0u);
  EXPECT_TRUE(ctl.drop(d));
  EXPECT_FALSE(milter.read(d).drop_mark.empty()) << "the milter reads the drop mark";
  EXPECT_THROW(ctl.put(d, CacheEntry{}, T0, false), RedisError) << "only the fetcher writes policies";
}

// Issue 19 defect 7, with a real primary and replica: the announcement comes from the primary
// while the replica the lookup reads from has not applied the write yet (its replication
// stream held by CLIENT PAUSE WRITE, reads still answered). The older entry read then is
// answered but not held as fresh for local-cache-ttl (an hour here): once the replica has
// the write, the next lookup reads it.
TEST(StoreReplicaTest, AnAnnouncementAheadOfTheReplicaIsReadAgain) {
  test::RedisFleet fleet;
  const auto as = [](const std::string& user, int port) {
    RedisOptions o;
    o.address = "127.0.0.1:" + std::to_string(port);
    o.user = user;
    o.password = test::RedisFleet::password_of(user);
    o.connect_timeout = 1s;
    o.command_timeout = 1s;
    return o;
  };
  Pool fetcher_pool(as("mta-sts-cached", fleet.primary_port()));
  PolicyStore fetcher(fetcher_pool, StoreOptions{});
  Pool writes(as("mta-sts-milter", fleet.primary_port()));
  RedisOptions ro = as("mta-sts-milter", fleet.primary_port());
  ro.role = RedisOptions::Role::replica;
  ro.replica_address = "127.0.0.1:" + std::to_string(fleet.replica_port());
  Pool reads(ro);
  RedisPolicySource source(writes, StoreOptions{}, &reads);
  SystemClock clock;
  LookupOptions lo;
  lo.local_ttl = Seconds{3600};
  lo.demand_interval = 0ms;
  PolicyLookup lookup(source, clock, lo);
  const Domain d = dom("example.com");
  const auto replica_id = [&] {
    const std::string v = fleet.cli(fleet.replica_port(), {"GET", "mta-sts:v1:e:example.com"});
    return v.find("oldid") != std::string::npos ? "old" : v.find("newid") != std::string::npos ? "new" : "";
  };
  const auto id_read = [&] {
    const LookupResult r = lookup.lookup(d);
    return r.entry && r.entry->policy ? r.entry->policy->id : std::string("(none: ") + r.error + ")";
  };

  const SysTime now = clock.now();
  CacheEntry old_entry = enforce_entry(now - Seconds{60}, Seconds{86400});
  old_entry.policy->id = "oldid";
  fetcher.put(d, old_entry, now, false);
  ASSERT_TRUE(test::wait_until([&] { return std::string(replica_id()) == "old"; }, 10s));
  ASSERT_EQ(id_read(), "oldid");

  std::atomic<int> heard{0};
  ChangeSubscriber sub(as("mta-sts-milter", fleet.primary_port()), fetcher.changed_channel(),
                       [&](std::string_view text) {
                         lookup.invalidate(text);
                         heard.fetch_add(1);
                       },
                       [] {});
  sub.start();
  ASSERT_TRUE(test::wait_until([&] { return sub.subscribed(); }, 5s));

  // The replica stops applying the replication stream; it still answers reads.
  fleet.cli(fleet.replica_port(), {"CLIENT", "PAUSE", "30000", "WRITE"});
  CacheEntry new_entry = enforce_entry(now, Seconds{86400});
  new_entry.policy->id = "newid";
  fetcher.put(d, new_entry, now, true);
  ASSERT_TRUE(test::wait_until([&] { return heard.load() >= 2; }, 5s)) << "both announcements heard";
  EXPECT_EQ(std::string(replica_id()), "old") << "the replica is behind";
  EXPECT_EQ(id_read(), "oldid") << "what the replica has is answered";

  fleet.cli(fleet.replica_port(), {"CLIENT", "UNPAUSE"});
  ASSERT_TRUE(test::wait_until([&] { return std::string(replica_id()) == "new"; }, 10s));
  EXPECT_EQ(id_read(), "newid") << "the older entry was held as fresh for local-cache-ttl";
  sub.stop();
}

}  // namespace
}  // namespace mtasts
