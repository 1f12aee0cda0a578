// The real fetcher when Redis stops in the middle of a long discovery (issue 19, defect 4):
// the claim keeper used to retry a failed renewal at once, about 100,000 times in 4 s (each a
// new connection; with Sentinel, a new sentinel connection too, while the sentinels fail the
// primary over). Its retries now back off, so that a dead Redis sees a few a second.
#include <gtest/gtest.h>

#include <iostream>
#include <string>

#include "common/fleet/store.hpp"
#include "common/util/clock.hpp"
#include "tests/support/fetcher.hpp"
#include "tests/support/process.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;

std::size_t count_of(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) ++n;
  return n;
}

TEST(RedisOutage, RenewalsPerSecondStaySmallWhileRedisIsDownDuringALongDiscovery) {
  World world(WorldOptions{.redis = true});
  DomainSpec s;
  s.txt = {"v=STSv1; id=slow1;"};
  s.policy = World::policy("enforce", {"mx.slow.example"}, 86400);
  s.behaviour = Behaviour::sluggish;  // about 5 s of transfer
  world.add_domain("slow.example", s);
  world.start();
  TempDir dir{"mtasts-outage"};
  // lock-ttl 3 s: renewals every second while it works.
  auto fetcher = start_fetcher(dir.path(), "outage",
                               fetcher_config(world, {"address = " + world.redis().address()}, "outage", "lock-ttl = 3s"));
  {
    RedisOptions o;
    o.address = world.redis().address();
    Pool pool(o);
    PolicyStore(pool, StoreOptions{}).signal_miss(*Domain::parse("slow.example").domain, SystemClock().now());
  }
  ASSERT_TRUE(wait_until([&] { return !world.redis().cli({"GET", "mta-sts:v1:lock:slow.example"}).empty(); }, 5s))
      << fetcher_log(dir.path(), "outage");
  world.redis().kill();
  std::this_thread::sleep_for(3s);  // the discovery goes on; every renewal fails
  const std::size_t failed = count_of(fetcher_log(dir.path(), "outage"), "claims not renewed");
  std::cout << "failed renewal rounds in 3 s with Redis down: " << failed << "\n";
  EXPECT_GE(failed, 1u) << fetcher_log(dir.path(), "outage").substr(0, 4000);
  EXPECT_LE(failed, 30u) << "a few a second at most";
  EXPECT_TRUE(fetcher->running());
}

}  // namespace
}  // namespace mtasts::test
