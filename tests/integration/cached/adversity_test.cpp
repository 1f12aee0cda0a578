// The fleet's queues under a compromised MTA host (issue 19, defects 1, 8 and 10): a real
// redis-server loaded with the shipped ACL users (etc/redis-acl.conf), the milter's user writing
// whatever members and scores its ZADD permission allows into `misses` and `wanted`, and the real
// fetcher (and its store) as the fetcher's user:
// - a member that is not a canonical name is dropped (not claimed and released forever), so a
//   genuine miss is still fetched within seconds and the fetcher's command rate stays small;
// - a score far from "now" neither jumps the queue nor hides at its end;
// - `ZADD wanted 0 victim.example` never makes housekeeping forget or evict a usable enforce
//   policy, and a domain looked up between eviction's choice and its removal is not evicted.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/fleet/store.hpp"
#include "common/util/clock.hpp"
#include "tests/fakes/cache_entries.hpp"
#include "tests/support/fetcher.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_acl.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;

Domain dom(const std::string& s) { return *Domain::parse(s).domain; }
std::string unix_text(SysTime t) { return std::to_string(t.time_since_epoch().count()); }

// The shipped users with test passwords ("user default off" left out: the harness's redis-cli).
std::string acl_conf() {
  return acl_user_lines(source_dir() / "etc/redis-acl.conf", [](const std::string& who) { return "pw-" + who; }, false);
}

RedisOptions as_user(const RedisServer& s, const std::string& who) {
  RedisOptions o;
  o.address = s.address();
  o.user = "mta-sts-" + who;
  o.password = "pw-" + who;
  o.connect_timeout = 2s;
  o.command_timeout = 2s;
  return o;
}

// `calls` of one command in INFO commandstats (0 when it never ran).
long long command_calls(RedisServer& s, const std::string& cmd) {
  const std::string info = s.cli({"INFO", "commandstats"});
  const std::string key = "cmdstat_" + cmd + ":calls=";
  const auto p = info.find(key);
  return p == std::string::npos ? 0 : std::stoll(info.substr(p + key.size()));
}

class QueueAdversity : public ::testing::Test {
 protected:
  RedisServer redis{acl_conf()};
  Pool milter_pool{as_user(redis, "milter")};
  Pool fetcher_pool{as_user(redis, "cached")};
  PolicyStore milter{milter_pool, StoreOptions{}};
  PolicyStore fetcher{fetcher_pool, StoreOptions{}};

  // What a compromised MTA host can send: any ZADD on misses or wanted.
  void milter_zadd(const std::string& set, const std::string& score, const std::string& member) {
    milter_pool.lease()->command({"ZADD", "mta-sts:v1:" + set, score, member});
  }
  std::string score(const std::string& set, const std::string& member) {
    return redis.cli({"ZSCORE", "mta-sts:v1:" + set, member});
  }
};

TEST_F(QueueAdversity, ScoresFarFromNowAreNeitherTakenFirstNorHiddenAndHousekeepingBringsThemBack) {
  const SysTime now = SystemClock().now();
  milter.signal_miss(dom("genuine.example"), now);
  milter_zadd("misses", "0", "early.example");           // would jump the queue
  milter_zadd("misses", "-inf", "earlier.example");
  milter_zadd("misses", "4102444800", "hidden.example");  // 2100: would never be trimmed or reached
  milter_zadd("wanted", "+inf", "pinned.example");        // would never be forgotten
  EXPECT_EQ(fetcher.pending_misses(now, 10), std::vector<std::string>{"genuine.example"});
  EXPECT_EQ(fetcher.bound_scores(now, 100), 4u);
  for (const char* m : {"early.example", "earlier.example", "hidden.example", "genuine.example"})
    EXPECT_NE(score("misses", m), "") << m;
  EXPECT_EQ(score("misses", "hidden.example"), unix_text(now));
  EXPECT_EQ(score("misses", "early.example"), unix_text(now));
  EXPECT_EQ(score("wanted", "pinned.example"), unix_text(now));
  EXPECT_EQ(fetcher.pending_misses(now, 10).size(), 4u);
  EXPECT_EQ(fetcher.bound_scores(now, 100), 0u) << "nothing left to move";
}

TEST_F(QueueAdversity, WantedAloneNeverForgetsAUsableEnforcePolicy) {
  const SysTime now = SystemClock().now();
  const Seconds forget_after{30 * 86400};
  fetcher.put(dom("victim.example"), policy_entry(Mode::enforce, "v1", {"mx.victim.example"}, now, Seconds{86400 * 7}), now, false);
  fetcher.put(dom("negative.example"), negative_entry(now), now, false);
  milter_zadd("wanted", "0", "victim.example");
  milter_zadd("wanted", "0", "negative.example");
  EXPECT_EQ(fetcher.forget_unwanted(now - forget_after, 100, now), 1u) << "only the negative entry";
  EXPECT_NE(score("schedule", "victim.example"), "");
  EXPECT_EQ(score("wanted", "victim.example"), unix_text(now)) << "its record moved to now: not found at every pass";
  EXPECT_EQ(score("schedule", "negative.example"), "");
  EXPECT_EQ(fetcher.forget_unwanted(now - forget_after, 100, now), 0u);
}

TEST_F(QueueAdversity, EvictionSparesADomainLookedUpBetweenTheChoiceAndTheRemoval) {
  const SysTime now = SystemClock().now();
  fetcher.put(dom("a.example"), negative_entry(now), now, false);
  fetcher.put(dom("b.example"), negative_entry(now), now, false);
  redis.cli({"ZADD", "mta-sts:v1:wanted", unix_text(now - Seconds{3600}), "a.example"});
  redis.cli({"ZREM", "mta-sts:v1:wanted", "b.example"});
  auto candidates = fetcher.eviction_candidates(10);
  ASSERT_EQ(candidates.size(), 2u);
  // Both looked up now, after the fetcher chose them.
  milter.note_wanted({{"a.example", now}, {"b.example", now}});
  EXPECT_EQ(fetcher.unschedule_unwanted(candidates), 0u);
  EXPECT_NE(score("schedule", "a.example"), "");
  EXPECT_NE(score("schedule", "b.example"), "");
  // a.example refreshed (a fetcher found an enforce policy) after the choice: kept too.
  candidates = fetcher.eviction_candidates(10);
  ASSERT_EQ(candidates.size(), 2u);
  fetcher.put(dom("a.example"), policy_entry(Mode::enforce, "a1", {"mx.a.example"}, now + Seconds{1}), now + Seconds{1},
              false);
  EXPECT_EQ(fetcher.unschedule_unwanted(candidates), 1u);
  EXPECT_NE(score("schedule", "a.example"), "");
  EXPECT_EQ(score("schedule", "b.example"), "") << "nothing happened to it since: evicted";
}

// The whole fetcher as its user, the milter's user writing garbage beside genuine lookups.
class FetcherUnderGarbage : public QueueAdversity {
 protected:
  void SetUp() override {
    for (const std::string d : {"victim.example", "genuine.example", "hidden.example"}) {
      DomainSpec s;
      s.txt = {"v=STSv1; id=" + d.substr(0, 3) + "1;"};
      s.policy = World::policy("enforce", {"mx." + d}, 604800);
      world.add_domain(d, s);
    }
    world.start();
    write_file(dir.path() / "cached.password", "pw-cached\n");
  }
  std::unique_ptr<Process> start(std::vector<std::string> redis_lines = {}) {
    redis_lines.push_back("address = " + redis.address());
    return start_fetcher(dir.path(), "garbage",
                         fetcher_config(world, redis_lines, "garbage",
                                        "concurrency = 2\nredis-acl-user = mta-sts-cached\n"
                                        "redis-acl-password-file = " + (dir.path() / "cached.password").string()));
  }
  std::string log() const { return fetcher_log(dir.path(), "garbage"); }
  bool has_entry(const std::string& d) { return fetcher.get(dom(d)).has_value(); }

  World world;
  TempDir dir{"mtasts-adversity"};
};

TEST_F(FetcherUnderGarbage, AGenuineMissIsFetchedAndNoUsableEnforcePolicyIsForgotten) {
  auto proc = start();
  milter.signal_miss(dom("victim.example"), SystemClock().now());
  ASSERT_TRUE(wait_until([&] { return has_entry("victim.example"); }, 10s)) << log();
  ASSERT_NE(score("schedule", "victim.example"), "");

  // The compromised host: names the fetcher would normalise, at the head of the queue, and
  // its victim's lookups set back to 1970.
  for (const char* bogus : {"BOGUS1.EXAMPLE.", "BOGUS2.EXAMPLE.", "Bogus3.Example", "bogus4.example."})
    milter_zadd("misses", "0", bogus);
  milter_zadd("misses", "4102444800", "hidden.example");
  milter_zadd("wanted", "0", "victim.example");

  const SysTime signalled = SystemClock().now();
  milter.signal_miss(dom("genuine.example"), signalled);
  EXPECT_TRUE(wait_until([&] { return has_entry("genuine.example"); }, 5s)) << "a genuine miss within seconds\n"
                                                                            << log();
  // The garbage is gone, and the fetcher is idle: no claim/release loop (before: thousands of
  // claims a second). An idle fetcher claims nothing; allow a few for a late housekeeping.
  EXPECT_TRUE(wait_until([&] { return score("misses", "BOGUS1.EXAMPLE.") == ""; }, 5s)) << log();
  const long long sets = command_calls(redis, "set"), evals = command_calls(redis, "eval");
  std::this_thread::sleep_for(2s);
  const long long set_rate = (command_calls(redis, "set") - sets) / 2;
  const long long eval_rate = (command_calls(redis, "eval") - evals) / 2;
  std::cout << "idle fetcher under garbage: " << set_rate << " SET/s, " << eval_rate << " EVAL/s\n";
  EXPECT_LT(set_rate, 20) << log();
  EXPECT_LT(eval_rate, 40) << log();
  for (const char* bogus : {"BOGUS1.EXAMPLE.", "BOGUS2.EXAMPLE.", "Bogus3.Example", "bogus4.example."})
    EXPECT_EQ(score("misses", bogus), "") << bogus;

  // Housekeeping runs every 5 s: after two rounds the far-future miss was brought back and
  // fetched, and the victim is still scheduled, its policy refreshed as before.
  EXPECT_TRUE(wait_until([&] { return has_entry("hidden.example"); }, 15s)) << log();
  std::this_thread::sleep_for(5s);
  EXPECT_NE(score("schedule", "victim.example"), "") << "forgotten for a forged wanted time\n" << log();
  EXPECT_EQ(log().find("forgotten=1"), std::string::npos) << log();
  EXPECT_TRUE(proc->running());
}

// Issue 19, defect 10: housekeeping removed at most 1000 names per set every 5 s (200/s), so a
// flood of made-up recipient domains above that rate grew wanted and the schedule past their
// bounds. Now each round works in batches for as long as a set is over its bound (within a
// time budget): one round brings both back.
TEST_F(FetcherUnderGarbage, AFloodOfMadeUpDomainsDoesNotOutgrowTheBounds) {
  // Bounds: schedule 1000, wanted 1000 + 1000.
  auto proc = start({"max-domains = 1000", "max-misses = 1000"});
  const SysTime now = SystemClock().now();
  const std::string later = unix_text(now + Seconds{86400});
  RedisOptions admin;
  admin.address = redis.address();
  admin.command_timeout = 10s;
  Pool harness(admin);  // the default user: the schedule as fetchers would have filled it
  for (int batch = 0; batch < 60; ++batch) {
    std::vector<std::string> names;
    for (int i = 0; i < 1000; ++i) names.push_back("flood" + std::to_string(batch * 1000 + i) + ".example");
    std::vector<std::pair<std::string, SysTime>> wanted;
    for (const auto& n : names) wanted.emplace_back(n, now);
    milter.note_wanted(wanted);  // as the MTA hosts' user
    if (batch < 30) {
      std::vector<std::string_view> zadd{"ZADD", "mta-sts:v1:schedule"};
      for (const auto& n : names) {
        zadd.push_back(later);
        zadd.push_back(n);
      }
      harness.lease()->command(zadd);
    }
  }
  ASSERT_GT(fetcher.wanted_size(), 50000u);
  // Within three housekeeping rounds (every 5 s; before: about 1,000 names per set each).
  EXPECT_TRUE(wait_until([&] { return fetcher.wanted_size() <= 2000 && fetcher.schedule_size() <= 1000; }, 17s))
      << "wanted " << fetcher.wanted_size() << ", schedule " << fetcher.schedule_size() << "\n" << log().substr(0, 4000);
  const std::string l = log();  // the figures, for the test's log
  for (auto p = l.find("housekeeping "); p != std::string::npos; p = l.find("housekeeping ", p + 1))
    std::cout << l.substr(p, l.find('\n', p) - p) << "\n";
  EXPECT_TRUE(proc->running());
}

}  // namespace
}  // namespace mtasts::test
