// The claim keeper against a real redis-server: a claim held by a task outlives its lock-ttl
// for as long as the task works, and expires by itself once the task stops renewing it; a
// claim found taken over is marked lost and never taken back.
#include "cached/claims.hpp"

#include <gtest/gtest.h>

#include <iostream>

#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"

namespace mtasts::worker {
namespace {

using namespace std::chrono_literals;
using test::RedisServer;

Domain dom(std::string_view s) { return *Domain::parse(s).domain; }

class ClaimKeeperTest : public ::testing::Test {
 protected:
  static RedisOptions options_for(const RedisServer& s) {
    RedisOptions o;
    o.address = s.address();
    o.connect_timeout = 1s;
    o.command_timeout = 1s;
    return o;
  }
  RedisServer server_;
  Pool pool_{options_for(server_)};
  std::shared_ptr<PolicyStore> store_ = std::make_shared<PolicyStore>(pool_, StoreOptions{});
};

TEST_F(ClaimKeeperTest, AClaimOutlivesItsTtlWhileHeldAndExpiresOnceDropped) {
  const Domain d = dom("slow.example");
  ClaimKeeper keeper;
  ASSERT_TRUE(store_->claim(d, "mine", 300ms));
  keeper.hold(d, "mine", store_, 300ms);
  // Four lock lives later, the claim is still ours: another fetcher cannot take the domain.
  std::this_thread::sleep_for(1200ms);
  EXPECT_FALSE(store_->claim(d, "other", 30s));
  EXPECT_EQ(server_.cli({"GET", "mta-sts:v1:lock:slow.example"}), "mine");
  EXPECT_GE(keeper.renewals(), 3);
  EXPECT_FALSE(keeper.lost(d));
  keeper.drop(d);
  // No longer renewed: Redis expires it within its ttl, and another fetcher may take it.
  EXPECT_TRUE(test::wait_until([&] { return store_->claim(d, "other", 30s); }, 2s));
  EXPECT_EQ(keeper.held(), 0u);
}

TEST_F(ClaimKeeperTest, AClaimTakenOverIsMarkedLostAndNotTakenBack) {
  const Domain d = dom("contested.example");
  ClaimKeeper keeper;
  ASSERT_TRUE(store_->claim(d, "mine", 300ms));
  keeper.hold(d, "mine", store_, 300ms);
  // Our lock vanished (e.g. Redis restarted without persistence) and another fetcher took it.
  server_.cli({"SET", "mta-sts:v1:lock:contested.example", "theirs", "PX", "30000"});
  EXPECT_TRUE(test::wait_until([&] { return keeper.lost(d); }, 2s));
  EXPECT_EQ(keeper.losses(), 1);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(server_.cli({"GET", "mta-sts:v1:lock:contested.example"}), "theirs");
  EXPECT_GT(std::stoll(server_.cli({"PTTL", "mta-sts:v1:lock:contested.example"})), 20000)
      << "the other fetcher's claim is not shortened to our ttl";
}

TEST_F(ClaimKeeperTest, RedisDownIsNotALoss) {
  const Domain d = dom("outage.example");
  ClaimKeeper keeper;
  ASSERT_TRUE(store_->claim(d, "mine", 3s));
  keeper.hold(d, "mine", store_, 300ms);  // renewals every 100 ms
  server_.kill();
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(keeper.lost(d)) << "a failed renewal is retried, not taken for a loss";
}

// Redis stopped during a long discovery (issue 19): each failed renewal used to be retried at
// once (100,000 in 4 s, each a new connection: with Sentinel, a new sentinel connection too).
// Retries back off, doubling up to the renewal period, so a few a second at most.
TEST_F(ClaimKeeperTest, RenewalsBackOffWhileRedisIsDown) {
  const Domain d = dom("outage.example");
  ClaimKeeper keeper;
  ASSERT_TRUE(store_->claim(d, "mine", 3s));
  keeper.hold(d, "mine", store_, 300ms);  // renewals every 100 ms
  server_.kill();
  std::this_thread::sleep_for(2s);
  const long long failed = keeper.failures();
  std::cout << "failed renewals in 2 s with Redis down: " << failed << "\n";
  EXPECT_GE(failed, 2) << "still retried";
  EXPECT_LE(failed, 25) << "at most the renewal rate (every 100 ms), backing off";
  EXPECT_FALSE(keeper.lost(d));
  // Back up (empty: the lock is gone): the keeper, its backoff capped at the renewal period,
  // asks again soon and finds the claim lost.
  server_.start();
  EXPECT_TRUE(test::wait_until([&] { return keeper.lost(d); }, 1s));
}

}  // namespace
}  // namespace mtasts::worker
