// Integration tests of the mta-sts-cached binary against the loopback world and a real
// redis-server: a signalled miss gets filled, SIGTERM ends it promptly with status 0 (also with
// a slow fetch in flight), Redis killed and restarted underneath it, SIGHUP reload, --check,
// --once, detaching with a pid file, and two daemons sharing one Redis (never fetching one
// domain twice at once; sharing failure backoff), checked in nginx's access log.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/fleet/store.hpp"
#include "tests/support/fetcher.hpp"
#include "tests/support/process.hpp"
#include "tests/support/world.hpp"

namespace mtasts {
namespace {

using namespace std::chrono_literals;
using test::Behaviour;
using test::DomainSpec;
using test::Process;
using test::TempDir;
using test::World;

std::filesystem::path binary() { return test::fetcher_binary(); }

Domain dom(const std::string& s) { return *Domain::parse(s).domain; }

std::size_t count_of(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) ++n;
  return n;
}

bool exited_zero(std::optional<int> status) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

class DaemonTest : public ::testing::Test {
 protected:
  DaemonTest() : world(test::WorldOptions{.redis = true}) {}

  void SetUp() override {
    add("example.com", "id1");
    world.start();
    RedisOptions ro;
    ro.address = world.redis().address();
    pool = std::make_unique<Pool>(ro);
    store = std::make_unique<PolicyStore>(*pool, StoreOptions{});
  }

  void add(const std::string& d, const std::string& id, Behaviour b = Behaviour::serve) {
    DomainSpec s;
    s.txt = {"v=STSv1; id=" + id + ";"};
    s.policy = World::policy("enforce", {"mail." + d}, 86400);
    s.behaviour = b;
    world.add_domain(d, s);
  }

  // The test defaults of tests/support/fetcher, each replaced by a line of `extra` with the
  // same key.
  std::string config(const std::string& id, const std::string& extra = "") {
    return test::fetcher_config(world, {"address = " + world.redis().address()}, id, extra);
  }
  // Starts a daemon with the config written to DIR/<id>.conf; waits until it runs.
  std::unique_ptr<Process> start(const std::string& id, const std::string& extra = "") {
    return test::start_fetcher(dir.path(), id, config(id, extra));
  }
  std::string log(const std::string& id) { return test::fetcher_log(dir.path(), id); }
  bool has_entry(const std::string& d) {
    try {
      return store->get(dom(d)).has_value();
    } catch (const RedisError&) {
      return false;
    }
  }

  // nginx writes its access log line just after replying: wait for the count we expect to be
  // reached (or time out), then report what is there, so that an extra request still shows.
  std::size_t requests(const std::string& host, std::size_t expected) {
    test::wait_until([&] { return world.https().requests(host) >= expected; }, std::chrono::seconds(2));
    return world.https().requests(host);
  }

  World world;
  TempDir dir{"mtasts-cached-daemon"};
  std::unique_ptr<Pool> pool;
  std::unique_ptr<PolicyStore> store;
};

TEST_F(DaemonTest, FillsASignalledMissAndStopsPromptlyOnSigterm) {
  auto p = start("a");
  store->signal_miss(dom("example.com"), SystemClock().now());
  ASSERT_TRUE(test::wait_until([&] { return has_entry("example.com"); }, 5s)) << log("a");
  const auto e = *store->get(dom("example.com"));
  EXPECT_EQ(verdict(e, SystemClock().now()), Verdict::enforce);
  EXPECT_EQ(e.policy->id, "id1");
  EXPECT_EQ(store->misses_size(), 0u);
  EXPECT_EQ(requests("mta-sts.example.com", 1), 1u);

  const auto t0 = std::chrono::steady_clock::now();
  p->signal(SIGTERM);
  const auto status = p->wait(5s);
  EXPECT_TRUE(exited_zero(status)) << log("a");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  // Its counters are left behind in Redis.
  EXPECT_EQ(world.redis().cli({"HGET", "mta-sts:v1:stats:a", "status_valid"}), "1");
}

TEST_F(DaemonTest, PublishesItsCountersAsSoonAsItRuns) {
  // stats-interval is 5 minutes by default: the first figures must not wait for it.
  auto p = start("a");
  EXPECT_TRUE(test::wait_until(
      [&] { return !world.redis().cli({"HGET", "mta-sts:v1:stats:a", "concurrency"}).empty(); }, 5s))
      << log("a");
  EXPECT_TRUE(p->running()) << log("a");
  // With when it reported and how often it will, for the ages `mta-sts-ctl cache stats` shows.
  const long long now = SystemClock().now().time_since_epoch().count();
  const long long at = std::stoll("0" + world.redis().cli({"HGET", "mta-sts:v1:stats:a", "reported_at"}));
  EXPECT_LE(std::llabs(now - at), 10) << at;
  EXPECT_EQ(world.redis().cli({"HGET", "mta-sts:v1:stats:a", "stats_interval"}), "300");
  // The log line keeps ISO time only.
  EXPECT_EQ(log("a").find("reported_at="), std::string::npos) << log("a");
}

TEST_F(DaemonTest, SigtermWithASlowFetchInFlightEndsWithinTheShutdownTimeout) {
  add("slow.example", "s1", Behaviour::slow);
  world.https().apply();
  auto p = start("a", "fetch-timeout = 60s\nshutdown-timeout = 1s\n");
  store->signal_miss(dom("slow.example"), SystemClock().now());
  // nginx logs a request only when it ends: give the fetch a moment to be under way.
  std::this_thread::sleep_for(1s);
  const auto t0 = std::chrono::steady_clock::now();
  p->signal(SIGTERM);
  EXPECT_TRUE(exited_zero(p->wait(8s))) << log("a");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_NE(log("a").find("abandoning"), std::string::npos) << log("a");
  // Nothing was written from the abandoned fetch: the miss is still there for the next run.
  EXPECT_FALSE(has_entry("slow.example"));
  EXPECT_EQ(store->misses_size(), 1u);
}

TEST_F(DaemonTest, RecoversWhenRedisIsKilledAndRestarted) {
  auto p = start("a");
  world.redis().kill();
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(p->running());
  world.redis().start();
  store->signal_miss(dom("example.com"), SystemClock().now());
  EXPECT_TRUE(test::wait_until([&] { return has_entry("example.com"); }, 10s)) << log("a");
  EXPECT_TRUE(p->running());
  const std::string l = log("a");
  EXPECT_EQ(count_of(l, "redis unreachable"), 1u) << l;  // logged once per state change
  EXPECT_EQ(count_of(l, "redis reachable again"), 1u) << l;
  p->signal(SIGTERM);
  EXPECT_TRUE(exited_zero(p->wait(5s)));
}

TEST_F(DaemonTest, TwoFetchersShareOneRedis) {
  std::vector<std::string> domains;
  {
    auto batch = world.batch();
    for (int i = 0; i < 30; ++i) {
      domains.push_back("d" + std::to_string(i) + ".example");
      add(domains.back(), "id" + std::to_string(i));
    }
    add("fail.example", "f1", Behaviour::server_error);
  }
  auto a = start("a", "concurrency = 4\n");
  auto b = start("b", "concurrency = 4\n");
  const SysTime now = SystemClock().now();
  for (const auto& d : domains) store->signal_miss(dom(d), now);
  store->signal_miss(dom("fail.example"), now);
  ASSERT_TRUE(test::wait_until([&] {
    for (const auto& d : domains)
      if (!has_entry(d)) return false;
    return has_entry("fail.example");
  }, 15s)) << log("a") << log("b");
  for (const auto& d : domains) EXPECT_EQ(requests("mta-sts." + d, 1), 1u) << d;
  EXPECT_EQ(requests("mta-sts.fail.example", 1), 1u);

  // The failure is shared: new misses within the backoff make neither fetcher try again.
  auto e = *store->get(dom("fail.example"));
  ASSERT_TRUE(e.failure);
  EXPECT_GE(e.failure->retry_after, e.failure->last_at + Seconds{300});
  for (int i = 0; i < 5; ++i) {
    store->signal_miss(dom("fail.example"), SystemClock().now());
    ASSERT_TRUE(test::wait_until([&] { return store->misses_size() == 0; }, 5s));
  }
  EXPECT_EQ(requests("mta-sts.fail.example", 1), 1u);

  // Each domain was discovered once in all, whichever fetcher did it.
  a->signal(SIGTERM);
  b->signal(SIGTERM);
  EXPECT_TRUE(exited_zero(a->wait(5s)));
  EXPECT_TRUE(exited_zero(b->wait(5s)));
  const std::string la = log("a"), lb = log("b");
  EXPECT_EQ(count_of(la, "discovery domain=") + count_of(lb, "discovery domain="), 31u) << la << lb;
}

TEST_F(DaemonTest, SighupReloadsAndKeepsTheOldConfigurationOnError) {
  auto p = start("a");
  test::write_file(dir / "a.conf", config("a", "concurrency = 7\n"));
  p->signal(SIGHUP);
  ASSERT_TRUE(test::wait_until([&] { return log("a").find("configuration reloaded") != std::string::npos; }, 5s))
      << log("a");
  test::write_file(dir / "a.conf", config("a", "concurrency = lots\n"));
  p->signal(SIGHUP);
  ASSERT_TRUE(test::wait_until([&] { return log("a").find("reload failed") != std::string::npos; }, 5s)) << log("a");
  EXPECT_TRUE(p->running());
  store->signal_miss(dom("example.com"), SystemClock().now());
  EXPECT_TRUE(test::wait_until([&] { return has_entry("example.com"); }, 5s));
  p->signal(SIGTERM);
  EXPECT_TRUE(exited_zero(p->wait(5s)));
}

TEST_F(DaemonTest, CheckModeValidatesAndExplains) {
  test::write_file(dir / "good.conf", config("a"));
  auto r = test::run({binary().string(), "--check", "-c", (dir / "good.conf").string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("OK"), std::string::npos);

  test::write_file(dir / "bad.conf", config("a", "concurency = 3\n"));
  r = test::run({binary().string(), "--check", "-c", (dir / "bad.conf").string()});
  EXPECT_EQ(r.exit_code, 2);  // a bad configuration: 2 in every program
  EXPECT_NE(r.err.find("bad.conf:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("concurency"), std::string::npos) << r.err;

  r = test::run({binary().string(), "--check", "-c", (dir / "good.conf").string(), "--ca-file", "/nonexistent/ca.pem"});
  EXPECT_EQ(r.exit_code, 2);  // a bad configuration: 2 in every program
  EXPECT_NE(r.err.find("/nonexistent/ca.pem"), std::string::npos) << r.err;

  r = test::run({binary().string(), "--check", "-c", (dir / "good.conf").string(), "--resolver", "not-an-ip"});
  EXPECT_EQ(r.exit_code, 2);  // a bad configuration: 2 in every program
  EXPECT_FALSE(r.err.empty());
}

TEST_F(DaemonTest, OnceProcessesMissesAndWarmListThenExits) {
  add("warm.example", "w1");
  world.https().apply();
  world.dns().apply();
  test::write_file(dir / "warm", "warm.example\n");
  test::write_file(dir / "once.conf", config("once", "warm-list = " + (dir / "warm").string() + "\n"));
  store->signal_miss(dom("example.com"), SystemClock().now());
  const auto r = test::run({binary().string(), "--once", "-c", (dir / "once.conf").string()}, 20s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has_entry("example.com"));
  EXPECT_TRUE(has_entry("warm.example"));
  EXPECT_EQ(store->misses_size(), 0u);
}

// The test: a flood of misses (50,000 new domains, each slow to discover: every name
// under flood.example times out in DNS) while enforce policies are close to expiry. A share
// of the concurrency is kept for due refreshes, enforce policies closest to expiry first, so
// the policies are refreshed before they expire instead of turning into "unknown".
TEST_F(DaemonTest, AMissFloodDoesNotLetEnforcePoliciesExpire) {
  const std::vector<std::string> policies{"enforce0.example", "enforce1.example", "enforce2.example"};
  for (const auto& d : policies) add(d, "new1");
  world.dns().set_failure("flood.example", test::DnsFailure::timeout);
  world.https().apply();
  world.dns().apply();

  // The cached entries: an older id, expiring in 30 s, due now.
  const SysTime now = SystemClock().now();
  const SysTime old_expiry = now + Seconds{30};
  for (const auto& d : policies) {
    CacheEntry e;
    StoredPolicy sp;
    sp.policy.mode = Mode::enforce;
    sp.policy.max_age = Seconds{86400};
    std::string err;
    sp.policy.mx.push_back(*MxPattern::parse("mail." + d, &err));
    sp.raw = World::policy("enforce", {"mail." + d}, 86400);
    sp.id = "old1";
    sp.fetched_at = old_expiry - Seconds{86400};
    sp.expires_at = old_expiry;
    e.policy = sp;
    e.checked_at = sp.fetched_at;
    e.next_refresh = now - Seconds{1};
    store->put(dom(d), e, now, false);
  }
  // 50,000 misses in one pipelined batch, signalled before the policies came due.
  {
    const std::string t = std::to_string(now.time_since_epoch().count() - 60);
    std::vector<std::string> names;
    for (int i = 0; i < 50000; ++i) names.push_back("d" + std::to_string(i) + ".flood.example");
    std::vector<std::vector<std::string_view>> cmds;
    for (std::size_t i = 0; i < names.size(); i += 1000) {
      std::vector<std::string_view> zadd{"ZADD", "mta-sts:v1:misses", "NX"};
      for (std::size_t j = i; j < std::min(names.size(), i + 1000); ++j) {
        zadd.push_back(t);
        zadd.push_back(names[j]);
      }
      cmds.push_back(std::move(zadd));
    }
    pool->lease()->pipeline(cmds);
  }
  ASSERT_EQ(store->misses_size(), 50000u);

  auto p = start("flood", "concurrency = 4\ndns-timeout = 100ms\ndns-retries = 0\nlog-level = info\n");
  const auto refreshed = [&](const std::string& d) {
    try {
      auto e = store->get(dom(d));
      return e && e->policy && e->policy->id == "new1" && e->policy->expires_at > old_expiry;
    } catch (const RedisError&) {
      return false;
    }
  };
  const bool all = test::wait_until(
      [&] { return std::all_of(policies.begin(), policies.end(), refreshed); }, std::chrono::seconds(25));
  const std::size_t left = store->misses_size();
  EXPECT_TRUE(all) << "enforce policies not refreshed during the miss flood";
  EXPECT_LT(SystemClock().now(), old_expiry) << "refreshed, but only after the old policies expired";
  for (const auto& d : policies) {
    EXPECT_TRUE(refreshed(d)) << d;
    EXPECT_EQ(requests("mta-sts." + d, 1), 1u) << d;
  }
  // (dnsmasq gives up on the silent upstream after a while and answers at once: the flood
  // then drains faster, but not within the first seconds.)
  EXPECT_GT(left, 25000u) << "refreshed while the flood was still being worked off";
  p->signal(SIGTERM);
  EXPECT_TRUE(exited_zero(p->wait(10s))) << log("flood");
}

TEST_F(DaemonTest, DetachesWithAPidFile) {
  const auto pid_file = dir / "cached.pid";
  test::write_file(dir / "bg.conf", config("bg", "daemonize = yes\npid-file = " + pid_file.string() + "\n"));
  const auto r = test::run({binary().string(), "-c", (dir / "bg.conf").string()}, 10s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(test::wait_until([&] { return std::filesystem::exists(pid_file); }, 5s));
  const pid_t pid = static_cast<pid_t>(std::stol(test::read_file(pid_file)));
  ASSERT_GT(pid, 1);
  EXPECT_EQ(::kill(pid, 0), 0);
  store->signal_miss(dom("example.com"), SystemClock().now());
  EXPECT_TRUE(test::wait_until([&] { return has_entry("example.com"); }, 5s));
  ::kill(pid, SIGTERM);
  EXPECT_TRUE(test::wait_until([&] { return ::kill(pid, 0) != 0; }, 5s));
  EXPECT_TRUE(test::wait_until([&] { return !std::filesystem::exists(pid_file); }, 2s));
}

}  // namespace
}  // namespace mtasts
