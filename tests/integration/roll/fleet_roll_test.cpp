// A rolling fleet (issue 19, defect 2): today's real mta-sts-cached beside the next version's
// (mta-sts-next-cached: the same sources built with the codec one version up) on one real
// redis-server, with a policy whose entry the next version wrote and that today's fetcher can
// read. Today's fetcher must not fetch what its fenced write would discard, nor move the
// schedule past the entry's own next refresh: the next fetcher then refreshes it before it
// expires. Before: today's fetcher fetched, its result was dropped, and the schedule went to its
// own next refresh a day later, past the policy's expiry: the domain turned unknown.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/fleet/store.hpp"
#include "common/sts/cache_entry.hpp"
#include "common/util/clock.hpp"
#include "tests/fakes/cache_entries.hpp"
#include "tests/support/fetcher.hpp"
#include "tests/support/process.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;

std::string unix_text(SysTime t) { return std::to_string(t.time_since_epoch().count()); }

std::size_t count_of(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) ++n;
  return n;
}

class RollingFleet : public ::testing::Test {
 protected:
  RollingFleet() : world(WorldOptions{.redis = true}) {}

  void SetUp() override {
    DomainSpec s;
    s.txt = {"v=STSv1; id=new1;"};
    s.policy = World::policy("enforce", {"mx.roll.example"}, 604800);
    world.add_domain("roll.example", s);
    world.start();
    RedisOptions o;
    o.address = world.redis().address();
    pool = std::make_unique<Pool>(o);
    store = std::make_unique<PolicyStore>(*pool, StoreOptions{});
  }

  std::unique_ptr<Process> start(const std::string& id, const std::filesystem::path& binary) {
    const std::string conf = fetcher_config(world, {"address = " + world.redis().address()}, id);
    write_file(dir.path() / (id + ".conf"), conf);
    auto p = std::make_unique<Process>(std::vector<std::string>{binary.string(), "-c", (dir.path() / (id + ".conf")).string()},
                                       dir.path() / (id + ".log"));
    if (!wait_until([&] { return log(id).find("fetcher running") != std::string::npos; }, 10s))
      throw std::runtime_error(id + " did not start:\n" + log(id));
    return p;
  }
  std::string log(const std::string& id) const { return fetcher_log(dir.path(), id); }

  std::string raw() {
    Reply r = pool->lease()->command({"GET", "mta-sts:v1:e:roll.example"});
    return r.is_nil() ? std::string() : std::string(r.str());
  }
  long long scheduled_at() {
    Reply r = pool->lease()->command({"ZSCORE", "mta-sts:v1:schedule", "roll.example"});
    return r.is_nil() ? -1 : std::stoll(std::string(r.str()));
  }

  World world;
  TempDir dir{"mtasts-rolling"};
  std::unique_ptr<Pool> pool;
  std::unique_ptr<PolicyStore> store;
};

TEST_F(RollingFleet, NoPolicyExpiresWhileTheNextFetcherCouldRefreshIt) {
  // The next version's entry: an enforce policy that expires in 25 s, due for its refresh in 2 s.
  const SysTime now = SystemClock().now();
  const Seconds life{604800};
  CacheEntry e = policy_entry(Mode::enforce, "old1", {"mx.roll.example"}, now + Seconds{25} - life, life);
  e.checked_at = now - Seconds{60};
  e.next_refresh = now + Seconds{2};
  const RunResult enc = run({MTASTS_NEXT_CODEC_BIN, "encode"}, 10s, encode(e));
  ASSERT_EQ(enc.exit_code, 0) << enc.err;
  ASSERT_TRUE(enc.out.starts_with("v=2\nreader=1\n")) << enc.out;
  pool->lease()->command({"SET", "mta-sts:v1:e:roll.example", enc.out, "EX", "604800"});
  pool->lease()->command({"ZADD", "mta-sts:v1:schedule", unix_text(e.next_refresh), "roll.example"});
  pool->lease()->command({"ZADD", "mta-sts:v1:wanted", unix_text(now), "roll.example"});
  const SysTime expires = e.policy->expires_at;

  // Today's fetcher alone first: it takes the domain when due and leaves it to the next one.
  auto today = start("today", fetcher_binary());
  ASSERT_TRUE(wait_until([&] { return log("today").find("entry of a newer format kept") != std::string::npos; }, 10s))
      << log("today");
  EXPECT_EQ(world.https().requests("mta-sts.roll.example"), 0u) << "a discovery whose result is discarded\n"
                                                                 << log("today");
  EXPECT_LE(scheduled_at(), e.next_refresh.time_since_epoch().count())
      << "moved past the entry's own next refresh\n" << log("today");
  EXPECT_EQ(raw(), enc.out);
  // Not taken again at every poll (20 ms) while it stays due.
  const std::size_t kept = count_of(log("today"), "entry of a newer format kept");
  std::this_thread::sleep_for(1s);
  EXPECT_LE(count_of(log("today"), "entry of a newer format kept"), kept + 1) << log("today");

  // The next fetcher joins: it finds the domain due and refreshes it before it expires; the
  // policy stays usable for today's readers all along.
  auto next = start("next", std::filesystem::path(MTASTS_NEXT_CACHED_BIN));
  bool refreshed = false;
  while (SystemClock().now() < expires + Seconds{3}) {
    const std::string bytes = raw();
    const DecodeResult dr = decode(bytes);
    ASSERT_TRUE(dr.entry) << dr.error << "\n" << bytes;
    const SysTime t = SystemClock().now();
    ASSERT_EQ(verdict(*dr.entry, t), Verdict::enforce)
        << "expired at " << unix_text(t) << " while a fetcher could refresh it\n"
        << log("today") << log("next");
    if (dr.entry->policy->id == "new1") {
      refreshed = true;
      EXPECT_TRUE(bytes.starts_with("v=2\n")) << "written by the next fetcher";
      break;
    }
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_TRUE(refreshed) << log("today") << log("next");
  EXPECT_EQ(log("next").find("entry of a newer format kept"), std::string::npos);
  EXPECT_TRUE(today->running());
  EXPECT_TRUE(next->running());
}

}  // namespace
}  // namespace mtasts::test
