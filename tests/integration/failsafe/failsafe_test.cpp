// Fail-safe enforcement with the real programs (issue 18, "Tests with the real thing"): a real
// redis-server, the real mta-sts-tlsmap and mta-sts-milter with the DEFAULT on-redis-error and
// on-unknown (accept: NOTFOUND, untagged), local-cache-ttl = 1s. Each test reads an enforce
// domain once through both programs, applies one fault to the shared cache, lets
// local-cache-ttl pass, and checks that the tlsmap still answers the policy (TEMP would be
// acceptable, NOTFOUND never) and that mail through the milter is still tagged.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "common/fleet/redis.hpp"
#include "tests/integration/milter/harness.hpp"
#include "tests/integration/tlsmap/harness.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/slow_redis.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPolicyReply = "OK secure match=mail.enforce.example servername=hostname";
constexpr const char* kField = "enforce.example; mode=enforce; id=failsafe1; mx=mail.enforce.example";
constexpr auto kLocalTtl = 1s;

class FailSafeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_ = std::make_unique<CacheFiller>(redis_.address());
    cache_->put("enforce.example", make_policy(Mode::enforce, "failsafe1", {"mail.enforce.example"}));
    std::filesystem::create_directories(dir_ / "tlsmap");
    std::filesystem::create_directories(dir_ / "milter");
    TlsmapOptions t;
    t.redis_address = redis_.address();
    t.redis_lines = kRedisUser;
    // Defaults for on-redis-error and on-unknown; no DANE (no DNS in this test: the policy's
    // one pattern is exact, so no MX lookup either).
    t.tlsmap_lines = {"local-cache-ttl = 1s", "dane = no"};
    tlsmap_ = std::make_unique<TlsmapDaemon>(dir_ / "tlsmap", t);
    MilterOptions m;
    m.redis_address = redis_.address();
    m.redis_lines = kRedisUser;
    m.milter_lines = {"local-cache-ttl = 1s"};
    milter_ = std::make_unique<MilterDaemon>(dir_ / "milter", m);
    client_ = std::make_unique<SocketmapClient>(tlsmap_->listen());
    // Read once, while all is well.
    ASSERT_EQ(client_->query("postfix enforce.example"), kPolicyReply) << tlsmap_->log();
    expect_tagged("before the fault");
  }

  void expect_tagged(const std::string& when) {
    const RunResult r = run_miltertest("failsafe.lua", milter_->socket(), {std::string("enforce=") + kField});
    EXPECT_EQ(r.exit_code, 0) << when << "\n" << r.out << r.err << milter_->log();
  }
  // The checks after a fault: past local-cache-ttl (so that nothing is served as fresh), the
  // tlsmap answers the policy and the milter tags, twice (the second after the first lookups
  // re-read the cache).
  void expect_still_enforced(const std::string& fault) {
    std::this_thread::sleep_for(kLocalTtl + 200ms);
    for (int round = 0; round < 2; ++round) {
      const std::string reply = client_->query("postfix enforce.example");
      EXPECT_TRUE(reply == kPolicyReply || reply.rfind("TEMP ", 0) == 0)
          << fault << ", round " << round << ": " << reply << "\n" << tlsmap_->log();
      EXPECT_NE(reply.rfind("NOTFOUND", 0), 0u) << fault;
      expect_tagged(fault + ", round " + std::to_string(round));
      std::this_thread::sleep_for(kLocalTtl + 200ms);
    }
  }
  // Both daemons resubscribed after the fault (their held copies were marked for re-reading).
  void wait_resubscribed(std::size_t tlsmap_before, std::size_t milter_before) {
    EXPECT_TRUE(wait_until([&] { return count("change subscription restored", tlsmap_->log()) > tlsmap_before; }, 10s))
        << tlsmap_->log();
    EXPECT_TRUE(wait_until([&] { return count("change subscription restored", milter_->log()) > milter_before; }, 10s))
        << milter_->log();
  }
  static std::size_t count(const std::string& needle, const std::string& hay) {
    std::size_t n = 0;
    for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
    return n;
  }
  // Stops the real Redis and serves its socket with a fake one.
  std::unique_ptr<SlowRedis> replace_redis(std::chrono::milliseconds delay, SlowRedis::Mode mode) {
    redis_.kill();
    std::filesystem::remove(redis_.socket_path());
    return std::make_unique<SlowRedis>(redis_.socket_path(), delay, mode);
  }
  // Waits until the subscriptions went down (seen in the logs) after a kill.
  void wait_subscription_down() {
    EXPECT_TRUE(wait_until([&] { return tlsmap_->log().find("change subscription down") != std::string::npos; }, 10s));
    EXPECT_TRUE(wait_until([&] { return milter_->log().find("change subscription down") != std::string::npos; }, 10s));
  }

  // The daemons log in as a user of their own, as the shipped ACLs have them do (a Redis still
  // loading its data answers AUTH and SUBSCRIBE, and -LOADING to the rest).
  inline static const std::vector<std::string> kRedisUser{"user = failsafe", "password = pw"};
  TempDir dir_{"mtasts-failsafe"};
  RedisServer redis_{"user failsafe on >pw ~* &* +@all\n"};
  std::unique_ptr<CacheFiller> cache_;
  std::unique_ptr<TlsmapDaemon> tlsmap_;
  std::unique_ptr<MilterDaemon> milter_;
  std::unique_ptr<SocketmapClient> client_;
};

TEST_F(FailSafeTest, KeyDeleted) {
  redis_.cli({"DEL", "mta-sts:v1:e:enforce.example"});
  expect_still_enforced("key deleted");
  EXPECT_TRUE(cache_->miss_signalled("enforce.example")) << "the fleet is asked to fetch it again";
}

TEST_F(FailSafeTest, Flushall) {
  redis_.cli({"FLUSHALL"});
  expect_still_enforced("FLUSHALL");
}

TEST_F(FailSafeTest, RedisKilled) {
  redis_.kill();
  wait_subscription_down();
  expect_still_enforced("redis killed");
}

TEST_F(FailSafeTest, RedisKilledThenReload) {
  redis_.kill();
  wait_subscription_down();
  tlsmap_->process().signal(SIGHUP);
  milter_->process().signal(SIGHUP);
  EXPECT_TRUE(tlsmap_->wait_log("configuration reloaded", 10s)) << tlsmap_->log();
  EXPECT_TRUE(milter_->wait_log("configuration reloaded", 10s)) << milter_->log();
  expect_still_enforced("redis killed, then SIGHUP");
}

TEST_F(FailSafeTest, RedisRestartedEmpty) {
  const std::size_t t0 = count("change subscription restored", tlsmap_->log());
  const std::size_t m0 = count("change subscription restored", milter_->log());
  redis_.kill();
  wait_subscription_down();
  redis_.start();  // no persistence: empty
  wait_resubscribed(t0, m0);
  expect_still_enforced("redis restarted empty");
}

TEST_F(FailSafeTest, RedisLoading) {
  const std::size_t t0 = count("change subscription restored", tlsmap_->log());
  const std::size_t m0 = count("change subscription restored", milter_->log());
  auto loading = replace_redis(0ms, SlowRedis::Mode::loading);
  wait_resubscribed(t0, m0);  // SUBSCRIBE works while every read answers -LOADING
  expect_still_enforced("redis answering -LOADING");
}

TEST_F(FailSafeTest, RedisSlowerThanTheBudget) {
  const std::size_t t0 = count("change subscription restored", tlsmap_->log());
  const std::size_t m0 = count("change subscription restored", milter_->log());
  // Past both budgets (milter 50 ms, tlsmap 100 ms), within the subscriber's patience
  // (connect-timeout 200 ms for AUTH, then 1 s for the SUBSCRIBE confirmation).
  auto slow = replace_redis(150ms, SlowRedis::Mode::slow);
  wait_resubscribed(t0, m0);
  expect_still_enforced("redis slow past the budget");
}

TEST_F(FailSafeTest, AnEntryOfANewerUnreadableFormat) {
  redis_.cli({"SET", "mta-sts:v1:e:enforce.example", "v=2\nreader=2\nchecked=1\nend=\n"});
  expect_still_enforced("an entry needing a newer reader");
}

// The one thing besides a newer policy that removes a held copy: an operator's drop. The
// daemons held the policy; after the drop Redis has no entry (which alone would leave the
// held copy answering), but the drop mark read with it says the copy is gone.
TEST_F(FailSafeTest, AnOperatorsDropIsHonoured) {
  ASSERT_TRUE(cache_->store().drop(*Domain::parse("enforce.example").domain));
  std::this_thread::sleep_for(kLocalTtl + 200ms);
  EXPECT_EQ(client_->query("postfix enforce.example"), "NOTFOUND ") << tlsmap_->log();
  const RunResult r = run_miltertest("failsafe.lua", milter_->socket());  // no field expected
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << milter_->log();
}

}  // namespace
}  // namespace mtasts::test
