// The fleet on a real replicated Redis: a primary, a replica and three real redis-sentinels on
// loopback (tests/support/redis_fleet), the real fetcher, milter and mta-sts-tlsmap configured
// with `sentinel` and `master-name` only (their `address` points nowhere). The primary is
// SIGKILLed while mail flows; Sentinel promotes the replica; the daemons follow it without a
// restart, and a domain first seen after the failover is fetched and reaches the milter. A
// milter reading from a replica (read-from = replica) signals its misses to the primary.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/integration/milter/harness.hpp"
#include "tests/integration/tlsmap/harness.hpp"
#include "tests/support/fetcher.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_fleet.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;

// Nothing listens there: the programs must find Redis through the sentinels.
constexpr const char* kNowhere = "127.0.0.1:1";

std::string field_of(const std::string& d, const std::string& id) {
  return d + "; mode=enforce; id=" + id + "; mx=mail." + d;
}

// "clock skew skew=+0.001s ..." or "-0.000s": under a second either way.
bool small_skew_logged(const std::string& log) {
  const std::string key = "clock skew skew=";
  const auto at = log.find(key);
  if (at == std::string::npos || at + key.size() + 3 > log.size()) return false;
  const std::string v = log.substr(at + key.size(), 3);
  return v == "+0." || v == "-0.";
}

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const std::string d : {"before.example", "after.example", "viareplica.example"}) {
      DomainSpec s;
      s.txt = {"v=STSv1; id=" + id_of(d) + ";"};
      s.policy = World::policy("enforce", {"mail." + d}, 86400);
      world.add_domain(d, s);
    }
    world.start();
  }
  static std::string id_of(const std::string& d) { return "id" + std::to_string(d.size()); }

  std::unique_ptr<Process> start_fetcher() {
    std::vector<std::string> redis{"address = " + std::string(kNowhere)};
    for (const auto& l : fleet.redis_lines("mta-sts-cached")) redis.push_back(l);
    return test::start_fetcher(dir.path(), "cached", fetcher_config(world, redis, "fleet"));
  }
  std::string fetcher_log() const { return test::fetcher_log(dir.path(), "cached"); }
  MilterOptions milter_options(bool from_replica) const {
    MilterOptions o;
    o.redis_address = kNowhere;
    o.redis_lines = fleet.redis_lines("mta-sts-milter");
    if (from_replica) o.redis_lines.push_back("read-from = replica");
    return o;
  }
  // One message to `rcpt`; true when the milter added exactly `want` (empty: any outcome
  // but a refusal or an error).
  bool tagged(MilterDaemon& m, const std::string& rcpt, const std::string& want) {
    std::vector<std::string> d{"rcpt=<" + rcpt + ">"};
    if (!want.empty()) d.push_back("want=" + want);
    last = run_miltertest("fleet.lua", m.socket(), d);
    return last.exit_code == 0;
  }

  World world{};
  RedisFleet fleet{};
  TempDir dir{"mtasts-fleet"};
  RunResult last;
};

TEST_F(FleetTest, DaemonsFollowAFailoverWithoutARestartAndNewDomainsAreStillFetched) {
  auto fetcher = start_fetcher();
  std::filesystem::create_directories(dir / "milter");
  MilterDaemon milter(dir / "milter", milter_options(false));
  std::filesystem::create_directories(dir / "tlsmap");
  TlsmapOptions to;
  to.redis_address = kNowhere;
  to.redis_lines = fleet.redis_lines("mta-sts-tlsmap");
  to.tlsmap_lines = {"resolver = " + world.resolver()};
  TlsmapDaemon tlsmap(dir / "tlsmap", to);
  SocketmapClient client(tlsmap.listen());

  // Before: the first mail signals the miss, the fetcher fills it, later mail is tagged.
  const std::string before = field_of("before.example", id_of("before.example"));
  ASSERT_TRUE(wait_until([&] { return tagged(milter, "a@before.example", before); }, 15s))
      << last.out << last.err << milter.log() << fetcher_log();
  EXPECT_EQ(client.query("postfix before.example"), "OK secure match=mail.before.example servername=hostname");
  // The milter holds it locally now (a read that raced with the change subscriber's first
  // resync is not cached, so wait for a tag that came from the local cache).
  ASSERT_TRUE(wait_until([&] {
    return tagged(milter, "a@before.example", before) &&
           milter.log().find("before.example:enforce:policy:local") != std::string::npos;
  }, 10s)) << milter.log();

  // Each daemon measured its clock against the primary's (TIME, found through the sentinels)
  // and logged the skew at start: one host, one clock, so it is near zero.
  EXPECT_TRUE(wait_until([&] { return small_skew_logged(milter.log()); }, 5s)) << milter.log();
  EXPECT_TRUE(wait_until([&] { return small_skew_logged(tlsmap.log()); }, 5s)) << tlsmap.log();
  EXPECT_TRUE(small_skew_logged(fetcher_log())) << fetcher_log();

  // The primary dies. Mail keeps flowing through the failover (known domains from the local
  // caches, the rest as on-redis-error = accept says), and nothing crashes.
  fleet.kill_primary();
  const auto t0 = std::chrono::steady_clock::now();
  int messages = 0;
  bool promoted = false;
  while (!promoted && std::chrono::steady_clock::now() - t0 < 20s) {
    ASSERT_TRUE(tagged(milter, "b@before.example", before)) << last.out << last.err << milter.log();
    EXPECT_EQ(client.query("postfix before.example"), "OK secure match=mail.before.example servername=hostname");
    ++messages;
    promoted = fleet.wait_failover(200ms);
  }
  ASSERT_TRUE(promoted) << "Sentinel did not promote the replica";
  EXPECT_GT(messages, 3);

  // After: a domain nobody asked for before reaches the new primary as a miss, the same
  // fetcher (not restarted) fills it there, and the same milter tags it.
  const std::string after = field_of("after.example", id_of("after.example"));
  EXPECT_TRUE(wait_until([&] { return tagged(milter, "c@after.example", after); }, 20s))
      << last.out << last.err << milter.log() << fetcher_log();
  EXPECT_TRUE(wait_until([&] {
    return client.query("postfix after.example") == "OK secure match=mail.after.example servername=hostname";
  }, 10s)) << tlsmap.log();
  EXPECT_NE(fleet.cli(fleet.replica_port(), {"GET", "mta-sts:v1:e:after.example"}), "");

  EXPECT_TRUE(milter.process().running());
  EXPECT_TRUE(tlsmap.process().running());
  EXPECT_TRUE(fetcher->running());
}

TEST_F(FleetTest, AMilterReadingFromAReplicaSignalsMissesToThePrimary) {
  auto fetcher = start_fetcher();
  std::filesystem::create_directories(dir / "milter");
  MilterDaemon milter(dir / "milter", milter_options(true));

  const std::string want = field_of("viareplica.example", id_of("viareplica.example"));
  ASSERT_TRUE(wait_until([&] { return tagged(milter, "a@viareplica.example", want); }, 15s))
      << last.out << last.err << milter.log() << fetcher_log();
  // The miss went to the primary (a replica refuses writes) and was fetched: the entry is on
  // the primary, replicated to the replica, and the milter did not log a refused write.
  EXPECT_NE(fleet.cli(fleet.primary_port(), {"GET", "mta-sts:v1:e:viareplica.example"}), "");
  EXPECT_EQ(milter.log().find("READONLY"), std::string::npos) << milter.log();
  // The milter's lookups were answered by the replica: its clients there ran MGET (the entry
  // and its drop mark).
  EXPECT_NE(fleet.cli(fleet.replica_port(), {"CLIENT", "LIST"}).find("cmd=mget"), std::string::npos)
      << fleet.cli(fleet.replica_port(), {"CLIENT", "LIST"});
}

}  // namespace
}  // namespace mtasts::test
