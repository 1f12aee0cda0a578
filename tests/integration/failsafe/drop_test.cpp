// An operator's drop wins (issue 19, defect 3), with the real programs: the real mta-sts-cached
// refreshes a policy whose body nginx sends slowly, and `mta-sts-ctl cache drop` runs while
// that fetch is in progress. The fetch's write comes after the drop and must not bring the
// dropped policy back (the drop revoked the fetch's claim, so its fenced write refuses).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "tests/integration/milter/harness.hpp"
#include "tests/support/fetcher.hpp"
#include "tests/support/process.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;

std::filesystem::path ctl_binary() { return MTASTS_CTL_BIN; }

TEST(OperatorDrop, ADropDuringASlowRefreshStaysDropped) {
  World world(WorldOptions{.redis = true});
  DomainSpec s;
  s.txt = {"v=STSv1; id=fresh2;"};  // a new id: the refresh fetches the body
  s.policy = World::policy("enforce", {"mx.slowdrop.example"}, 86400);
  s.behaviour = Behaviour::sluggish;  // ~5 s for the body
  world.add_domain("slowdrop.example", s);
  world.start();

  // The policy the operator wants gone, due for a refresh now.
  CacheFiller cache(world.redis().address());
  CacheEntry old = make_policy(Mode::enforce, "old1", {"mx.slowdrop.example"});
  old.next_refresh = old.checked_at;
  cache.put("slowdrop.example", old);

  TempDir dir{"mtasts-drop"};
  auto fetcher = start_fetcher(dir.path(), "drop",
                               fetcher_config(world, {"address = " + world.redis().address()}, "drop",
                                              "fetch-timeout = 30s"));
  // The refresh is under way: its claim is taken and nginx has not finished the body.
  const std::string lock = "mta-sts:v1:lock:slowdrop.example";
  ASSERT_TRUE(wait_until([&] { return !world.redis().cli({"GET", lock}).empty(); }, 10s)) << fetcher_log(dir.path(), "drop");
  ASSERT_EQ(world.https().requests("mta-sts.slowdrop.example"), 0u) << "the body is still on its way";

  const std::filesystem::path conf = dir / "ctl.conf";
  {
    std::ofstream f(conf);
    f << "[redis]\naddress = " << world.redis().address() << "\n";
  }
  const RunResult r = run({ctl_binary().string(), "-c", conf.string(), "cache", "drop", "slowdrop.example"}, 10s);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  // The fetch completes (nginx logs a request when it is done) and its result is refused.
  ASSERT_TRUE(wait_until([&] { return world.https().requests("mta-sts.slowdrop.example") == 1; }, 30s));
  EXPECT_TRUE(wait_until([&] { return fetcher_log(dir.path(), "drop").find("claim lost") != std::string::npos; }, 10s))
      << fetcher_log(dir.path(), "drop");
  std::this_thread::sleep_for(1s);  // the worker's write, had it been allowed, is done by now
  const std::string entry = world.redis().cli({"GET", "mta-sts:v1:e:slowdrop.example"});
  EXPECT_TRUE(entry.empty()) << "written back: " << entry.substr(0, 200) << "\n" << fetcher_log(dir.path(), "drop");
  EXPECT_NE(world.redis().cli({"GET", "mta-sts:v1:dropped:slowdrop.example"}), "") << "the drop mark stays";
}

}  // namespace
}  // namespace mtasts::test
