// Redis server settings that put the fleet's data at risk (issue 19, defect 11), with real
// redis-servers and the real programs:
// - `mta-sts-cached --check-redis`, as the shipped fetcher user, warns about a maxmemory-policy
//   other than noeviction and about a server without persistence, and is quiet (exit 0 either
//   way) on a safe one;
// - Redis at maxmemory with noeviction: the fetcher's writes fail, and it says OOM (not "redis
//   unreachable"); mta-sts-tlsmap goes on answering from what Redis holds; once memory is
//   freed, the fetcher writes again.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/daemon/redis_check.hpp"
#include "common/fleet/store.hpp"
#include "common/util/clock.hpp"
#include "tests/integration/tlsmap/harness.hpp"
#include "tests/support/fetcher.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_acl.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::size_t count_lines(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) ++n;
  return n;
}

std::string acl_conf() {
  return acl_user_lines(source_dir() / "etc/redis-acl.conf", [](const std::string& who) { return "pw-" + who; }, false);
}

// `mta-sts-cached --check-redis` as the shipped fetcher user against a server with `settings`.
RunResult check_cached(const std::string& settings) {
  RedisServer redis{acl_conf() + settings};
  TempDir dir{"mtasts-settings"};
  write_file(dir.path() / "cached.password", "pw-cached\n");
  const fs::path conf = dir.path() / "mta-sts.conf";
  write_file(conf, "[redis]\naddress = " + redis.address() +
                       "\n[cached]\nredis-acl-user = mta-sts-cached\nredis-acl-password-file = " +
                       (dir.path() / "cached.password").string() + "\n");
  return run({fetcher_binary().string(), "-c", conf.string(), "--check-redis"}, 30s);
}

TEST(RedisServerSettings, CheckRedisWarnsAboutAnEvictionPolicyOtherThanNoeviction) {
  for (const char* policy : {"volatile-lru", "allkeys-lru", "volatile-ttl"}) {
    const RunResult r = check_cached(std::string("appendonly yes\nmaxmemory-policy ") + policy + "\n");
    EXPECT_EQ(r.exit_code, 0) << policy << ": " << r.out << r.err;
    EXPECT_NE(r.err.find(std::string("redis warning: maxmemory-policy is ") + policy), std::string::npos)
        << policy << ": " << r.err;
  }
}

TEST(RedisServerSettings, CheckRedisWarnsAboutNoPersistenceAndIsQuietOnASafeServer) {
  const RunResult bare = check_cached("maxmemory-policy noeviction\n");  // the harness: save "", appendonly no
  EXPECT_EQ(bare.exit_code, 0) << bare.out << bare.err;
  EXPECT_NE(bare.err.find("redis warning: no persistence"), std::string::npos) << bare.err;
  EXPECT_EQ(bare.err.find("maxmemory-policy"), std::string::npos) << bare.err;
  const RunResult safe = check_cached("maxmemory-policy noeviction\nappendonly yes\n");
  EXPECT_EQ(safe.exit_code, 0) << safe.out << safe.err;
  EXPECT_EQ(safe.err.find("warning"), std::string::npos) << safe.err;
}

// A fetcher user from an ACL written before INFO was asked for: the check still passes, and
// says what it could not check.
TEST(RedisServerSettings, AnAclWithoutInfoLosesTheWarningsNotTheCheck) {
  std::string acl = acl_conf();
  const auto p = acl.find(" +info");
  ASSERT_NE(p, std::string::npos);
  acl.erase(p, 6);
  RedisServer redis{acl + "maxmemory-policy allkeys-lru\n"};
  TempDir dir{"mtasts-settings"};
  write_file(dir.path() / "cached.password", "pw-cached\n");
  const fs::path conf = dir.path() / "mta-sts.conf";
  write_file(conf, "[redis]\naddress = " + redis.address() +
                       "\n[cached]\nredis-acl-user = mta-sts-cached\nredis-acl-password-file = " +
                       (dir.path() / "cached.password").string() + "\n");
  const RunResult r = run({fetcher_binary().string(), "-c", conf.string(), "--check-redis"}, 30s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("server settings not checked"), std::string::npos) << r.err;
}

TEST(RedisServerWarnings, ParsedFromInfoText) {
  EXPECT_TRUE(server_warnings("# Memory\r\nmaxmemory_policy:noeviction\r\n# Persistence\r\naof_enabled:1\r\n").empty());
  EXPECT_EQ(server_warnings("maxmemory_policy:allkeys-lru\r\naof_enabled:1\r\n").size(), 1u);
  EXPECT_EQ(server_warnings("maxmemory_policy:noeviction\r\naof_enabled:0\r\nrdb_saves:0\r\n").size(), 1u);
  EXPECT_TRUE(server_warnings("maxmemory_policy:noeviction\r\naof_enabled:0\r\nrdb_saves:3\r\n").empty());
  EXPECT_TRUE(server_warnings("").empty()) << "nothing known, nothing said";
}

class FullRedis : public ::testing::Test {
 protected:
  FullRedis() : world(WorldOptions{.redis = true}) {}
  void SetUp() override {
    for (const std::string d : {"held.example", "later.example"}) {
      DomainSpec s;
      s.txt = {"v=STSv1; id=" + d.substr(0, 4) + "1;"};
      s.policy = World::policy("enforce", {"mx." + d}, 604800);
      world.add_domain(d, s);
    }
    world.start();
    RedisOptions o;
    o.address = world.redis().address();
    pool = std::make_unique<Pool>(o);
    store = std::make_unique<PolicyStore>(*pool, StoreOptions{});
  }
  std::string log() const { return fetcher_log(dir.path(), "full"); }

  World world;
  TempDir dir{"mtasts-full-redis"};
  std::unique_ptr<Pool> pool;
  std::unique_ptr<PolicyStore> store;
};

TEST_F(FullRedis, WritesFailWithAClearOomAndLookupsGoOnFromWhatIsHeld) {
  auto fetcher = start_fetcher(dir.path(), "full", fetcher_config(world, {"address = " + world.redis().address()}, "full"));
  store->signal_miss(*Domain::parse("held.example").domain, SystemClock().now());
  ASSERT_TRUE(wait_until([&] { return store->get(*Domain::parse("held.example").domain).has_value(); }, 10s)) << log();
  fs::create_directories(dir.path() / "tlsmap");
  TlsmapOptions o;
  o.redis_address = world.redis().address();
  o.tlsmap_lines = {"resolver = " + world.resolver(), "on-unknown = defer"};
  TlsmapDaemon tlsmap(dir.path() / "tlsmap", o);
  SocketmapClient client(tlsmap.listen());
  ASSERT_EQ(client.query("postfix held.example"), "OK secure match=mx.held.example servername=hostname");

  // Work for the fetcher in 2 s, then Redis is full.
  const std::string due = std::to_string((SystemClock().now() + Seconds{2}).time_since_epoch().count());
  world.redis().cli({"ZADD", "mta-sts:v1:schedule", due, "later.example"});
  world.redis().cli({"CONFIG", "SET", "maxmemory-policy", "noeviction"});
  world.redis().cli({"CONFIG", "SET", "maxmemory", "1"});
  EXPECT_TRUE(wait_until([&] { return log().find("redis is out of memory (OOM)") != std::string::npos; }, 10s)) << log();
  EXPECT_EQ(log().find("redis unreachable"), std::string::npos) << "a full Redis is not an outage\n" << log();
  // Mail keeps flowing from what is held (a new tlsmap connection reads Redis again).
  SocketmapClient again(tlsmap.listen());
  EXPECT_EQ(again.query("postfix held.example"), "OK secure match=mx.held.example servername=hostname");
  EXPECT_FALSE(store->get(*Domain::parse("later.example").domain).has_value());
  EXPECT_EQ(count_lines(log(), "redis is out of memory"), 1u) << "once, not at every pass\n" << log();

  // Memory back: the fetcher writes again.
  world.redis().cli({"CONFIG", "SET", "maxmemory", "0"});
  EXPECT_TRUE(wait_until([&] { return store->get(*Domain::parse("later.example").domain).has_value(); }, 10s)) << log();
  EXPECT_TRUE(fetcher->running());
}

}  // namespace
}  // namespace mtasts::test
