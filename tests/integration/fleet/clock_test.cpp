// Two real mta-sts-cached daemons on one real Redis (issue 10): one runs with its clock set 10
// minutes fast (libfaketime, only for that process), and a discovery outlives both fetchers'
// lock-ttl. What must hold: the skewed fetcher writes times in the fleet's clock (Redis TIME)
// and honours the backoff the other one wrote; a slow discovery keeps its claim, so the domain
// is fetched once, not once per lock-ttl; neither writes over the other; both log their skew;
// and a fetcher that truly lost its claim (stopped) writes nothing when it wakes up: no old
// policy brought back, no lost update.
#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "common/fleet/fleet_clock.hpp"
#include "common/fleet/store.hpp"
#include "tests/support/fetcher.hpp"
#include "tests/support/freezable_proxy.hpp"
#include "tests/support/process.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;

Domain dom(const std::string& s) { return *Domain::parse(s).domain; }

// Debian's libfaketime (package faketime), the thread-safe build, in the multiarch directory.
std::string faketime_lib() {
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator("/usr/lib", ec)) {
    const auto lib = d.path() / "faketime" / "libfaketimeMT.so.1";
    if (std::filesystem::exists(lib, ec)) return lib.string();
  }
  return {};
}

class FleetClockTest : public ::testing::Test {
 protected:
  FleetClockTest() : world(WorldOptions{.redis = true}) {}

  void SetUp() override {
    add("good.example", Behaviour::serve);
    add("fail.example", Behaviour::server_error);
    add("slow.example", Behaviour::sluggish);  // about 5 s per fetch: more than lock-ttl
    add("lost.example", Behaviour::sluggish);
    add("near.example", Behaviour::serve);
    add("away.example", Behaviour::serve);
    world.start();
    RedisOptions ro;
    ro.address = world.redis().address();
    ro.command_timeout = 2s;
    pool = std::make_unique<Pool>(ro);
    store = std::make_unique<PolicyStore>(*pool, StoreOptions{});
  }

  void add(const std::string& d, Behaviour b) {
    DomainSpec s;
    s.txt = {"v=STSv1; id=" + d.substr(0, 4) + "1;"};
    s.policy = World::policy("enforce", {"mail." + d}, 86400);
    s.behaviour = b;
    world.add_domain(d, s);
  }

  // A fetcher with a short claim (lock-ttl 2 s) and a fetch-timeout that lets a 5 s transfer
  // finish; `skew` runs it under libfaketime with its wall clock moved (monotonic untouched).
  std::unique_ptr<Process> start(const std::string& id, const std::string& skew = "", const std::string& extra = "") {
    std::vector<std::string> env;
    if (!skew.empty()) {
      // Preloaded straight into the daemon (not through the faketime wrapper, which forks):
      // signals reach the daemon itself.
      const std::string lib = faketime_lib();
      EXPECT_FALSE(lib.empty()) << "libfaketimeMT.so.1 not found: install the package faketime";
      env = {"LD_PRELOAD=" + lib, "FAKETIME=" + skew, "FAKETIME_DONT_FAKE_MONOTONIC=1"};
    }
    return start_fetcher(dir.path(), id,
                         fetcher_config(world, {"address = " + world.redis().address()}, id,
                                        "fetch-timeout = 10s\nlock-ttl = 2s\nshutdown-timeout = 1s\n" + extra),
                         env);
  }
  std::string log(const std::string& id) const { return fetcher_log(dir.path(), id); }
  std::optional<CacheEntry> entry(const std::string& d) {
    try {
      return store->get(dom(d));
    } catch (const RedisError&) {
      return std::nullopt;
    }
  }
  SysTime redis_now() { return SysTime{std::chrono::floor<Seconds>(redis_time(*pool->lease()))}; }
  void miss(const std::string& d) { store->signal_miss(dom(d), redis_now()); }
  static long long apart(SysTime a, SysTime b) { return std::llabs((a - b).count()); }

  World world;
  TempDir dir{"mtasts-fleet-clock"};
  std::unique_ptr<Pool> pool;
  std::unique_ptr<PolicyStore> store;
};

TEST_F(FleetClockTest, AFetcherTenMinutesFastKeepsTheFleetsTimesAndBackoff) {
  // The on-time fetcher alone sees fail.example fail and writes the fleet's 5-minute backoff.
  auto b = start("on-time");
  EXPECT_TRUE(wait_until([&] { return log("on-time").find("clock skew") != std::string::npos; }, 5s));
  miss("fail.example");
  ASSERT_TRUE(wait_until([&] { auto e = entry("fail.example"); return e && e->failure; }, 10s)) << log("on-time");
  ASSERT_EQ(world.https().requests("mta-sts.fail.example"), 1u);
  b->stop();

  // A fetcher whose clock is 10 minutes fast: on its own clock the backoff ran out 5 minutes
  // ago. On the fleet's, it has not.
  auto a = start("fast", "+10m");
  ASSERT_TRUE(wait_until([&] { return log("fast").find("clock skew beyond the bound") != std::string::npos; }, 5s))
      << log("fast");
  const auto at = log("fast").find("skew=");
  ASSERT_NE(at, std::string::npos);
  EXPECT_NEAR(std::stod(log("fast").substr(at + 5)), -600.0, 5.0) << "Redis's clock is 600 s behind this host's\n"
                                                                  << log("fast");
  std::this_thread::sleep_for(2s);  // 100 polls
  EXPECT_EQ(world.https().requests("mta-sts.fail.example"), 1u)
      << "the fast fetcher retried inside the fleet's backoff\n" << log("fast");

  // What it writes is in the fleet's time, not 10 minutes ahead of it.
  miss("good.example");
  ASSERT_TRUE(wait_until([&] { auto e = entry("good.example"); return e && e->policy; }, 10s)) << log("fast");
  const SysTime now = redis_now();
  const CacheEntry e = *entry("good.example");
  EXPECT_LE(apart(e.checked_at, now), 5) << iso_time(e.checked_at) << " vs Redis " << iso_time(now);
  EXPECT_LE(apart(e.policy->expires_at, now + Seconds(86400)), 5) << iso_time(e.policy->expires_at);
  EXPECT_EQ(world.https().requests("mta-sts.good.example"), 1u);
}

// The Redis clock itself off (issue 19, defect 9): a proxy in front of the real Redis moves
// every TIME reply (libfaketime crashes redis-server). 30 minutes off, within clock-skew-limit
// (1 h by default): the fetcher follows Redis, as the fleet clock is meant to. Two hours off: the
// fetcher refuses that clock, says so (an error), and writes times by its own clock.
TEST_F(FleetClockTest, ARedisClockBeyondTheLimitIsRefusedAndTheFetcherKeepsItsOwn) {
  const auto shifted = [&](const std::string& id, std::chrono::seconds shift) {
    auto proxy = std::make_unique<FreezableProxy>(dir / (id + ".sock"), world.redis().address().substr(5));
    proxy->rewrite_replies(shift_redis_time(shift));
    return proxy;
  };
  const auto start_on = [&](const std::string& id, const FreezableProxy& proxy) {
    return start_fetcher(dir.path(), id, fetcher_config(world, {"address = " + proxy.address()}, id, "fetch-timeout = 10s\n"));
  };
  const SystemClock local;
  {
    auto proxy = shifted("near", std::chrono::minutes(30));
    RedisOptions ro;
    ro.address = proxy->address();
    Pool p(ro);
    const SysTime seen{std::chrono::floor<Seconds>(redis_time(*p.lease()))};
    ASSERT_LE(apart(seen, local.now() + Seconds(1800)), 5) << "the proxy does not move TIME";
    auto f = start_on("near", *proxy);
    miss("near.example");
    ASSERT_TRUE(wait_until([&] { auto e = entry("near.example"); return e && e->policy; }, 10s)) << log("near");
    EXPECT_LE(apart(entry("near.example")->checked_at, local.now() + Seconds(1800)), 5)
        << "within the limit, the Redis clock is followed\n" << log("near");
    EXPECT_EQ(log("near").find("redis clock refused"), std::string::npos) << log("near");
  }
  auto proxy = shifted("far", std::chrono::hours(2));
  auto f = start_on("far", *proxy);
  EXPECT_TRUE(wait_until([&] { return log("far").find("error: redis clock refused") != std::string::npos; }, 5s))
      << log("far");
  miss("away.example");
  ASSERT_TRUE(wait_until([&] { auto e = entry("away.example"); return e && e->policy; }, 10s)) << log("far");
  const CacheEntry e = *entry("away.example");
  EXPECT_LE(apart(e.checked_at, local.now()), 5) << "beyond the limit, its own clock: " << iso_time(e.checked_at);
  EXPECT_LE(apart(e.policy->expires_at, local.now() + Seconds(86400)), 5) << iso_time(e.policy->expires_at);
}

TEST_F(FleetClockTest, ASlowDiscoveryKeepsItsClaimAndIsFetchedOnce) {
  auto a = start("first");
  auto b = start("second", "+10m");
  miss("slow.example");
  // About 5 s of transfer against a 2 s lock-ttl: without renewal, the other fetcher would
  // take the domain after 2 s and fetch it again.
  ASSERT_TRUE(wait_until([&] { auto e = entry("slow.example"); return e && e->policy; }, 20s))
      << log("first") << log("second");
  std::this_thread::sleep_for(1s);  // a second fetch would have started by now
  EXPECT_EQ(world.https().requests("mta-sts.slow.example"), 1u) << log("first") << log("second");
  for (const std::string id : {"first", "second"}) {
    EXPECT_EQ(log(id).find("claim lost"), std::string::npos) << log(id);
    EXPECT_EQ(log(id).find("writes_fenced"), std::string::npos) << log(id);
  }
  EXPECT_TRUE(store->misses_size() == 0) << "the miss was cleared by the one write";
}

}  // namespace
}  // namespace mtasts::test

namespace mtasts::test {
namespace {

// A fetcher that truly loses its claim (stopped for longer than lock-ttl, so that nothing
// renews it) while the domain publishes a new policy, which the other fetcher then writes:
// when the first one wakes up and finishes its old fetch, it must write nothing, neither the
// old policy (brought back) nor anything else (a lost update).
TEST_F(FleetClockTest, AFetcherThatLostItsClaimDoesNotBringBackTheOldPolicy) {
  const std::string lock = "mta-sts:v1:lock:lost.example";
  auto a = start("stalled", "", "fetch-timeout = 60s\n");  // its transfer survives the stop
  miss("lost.example");
  ASSERT_TRUE(wait_until([&] { return !world.redis().cli({"GET", lock}).empty(); }, 5s)) << log("stalled");
  std::this_thread::sleep_for(1s);  // TXT answered, the 5 s transfer of the old policy under way
  a->signal(SIGSTOP);

  world.set_policy("lost.example", World::policy("enforce", {"mx2.lost.example"}, 86400));
  world.set_txt("lost.example", {"v=STSv1; id=lost2;"});
  auto b = start("other");
  ASSERT_TRUE(wait_until([&] {
    const auto e = entry("lost.example");
    return e && e->policy && e->policy->id == "lost2";
  }, 20s)) << log("other");

  a->signal(SIGCONT);
  // Its old transfer ends (the second request in nginx's log) and its claim is found lost.
  ASSERT_TRUE(wait_until([&] { return world.https().requests("mta-sts.lost.example") == 2; }, 20s)) << log("stalled");
  ASSERT_TRUE(wait_until([&] { return log("stalled").find("claim lost") != std::string::npos; }, 10s))
      << log("stalled");
  std::this_thread::sleep_for(500ms);
  const auto e = entry("lost.example");
  ASSERT_TRUE(e && e->policy) << log("stalled");
  EXPECT_EQ(e->policy->id, "lost2") << "the old policy was brought back\n" << log("stalled");
  EXPECT_EQ(e->policy->policy.mx.size(), 1u);
  EXPECT_EQ(log("stalled").find("status=valid"), std::string::npos) << "it wrote its result\n" << log("stalled");
}

}  // namespace
}  // namespace mtasts::test
