// A partition and its healing on a real replicated Redis (issue 19): a primary, two replicas
// and three redis-sentinels on loopback with the shipped ACL file, two real fetchers and a real
// mta-sts-tlsmap (the MTA side), all finding the primary through the sentinels.
//
// Policies are written to the primary after its replicas were cut off (their links closed and
// the replication user refused there), so they exist on the old primary only; the MTA reads
// them from there. The primary is then frozen (SIGSTOP, cut off from everyone while it keeps
// its data and believes it is the primary), the sentinels promote a replica; then the old primary comes back (SIGCONT), is made a replica of
// the new one, and what only it had is discarded. After that:
// - no policy written only to the old primary is lost for good: the MTA keeps applying what
//   it read (enforce stays enforced), and each such domain is fetched again onto the new
//   primary;
// - no two fetchers fetched one domain at once once the new primary was in charge (every
//   fetch is in the HTTPS server's access log with its end time and duration).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/tlsmap/harness.hpp"
#include "tests/support/fetcher.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_fleet.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kNowhere = "127.0.0.1:1";  // the programs must use the sentinels

std::string secure(const std::string& d) { return "OK secure match=mail." + d + " servername=hostname"; }
std::string entry_key(const std::string& d) { return "mta-sts:v1:e:" + d; }

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// One policy fetch from the access log: [begin, end] in seconds since the epoch.
struct Fetch {
  double begin = 0, end = 0;
};

std::map<std::string, std::vector<Fetch>> fetches(const std::filesystem::path& access_log) {
  std::map<std::string, std::vector<Fetch>> out;
  std::ifstream in(access_log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" /.well-known/mta-sts.txt ") == std::string::npos) continue;
    std::istringstream f(line);
    std::string sni, host;
    f >> sni >> host;
    const auto quote = line.rfind('"');
    if (quote == std::string::npos) continue;
    std::istringstream tail(line.substr(quote + 1));
    double end = 0, took = 0;
    if (!(tail >> end >> took)) continue;
    out[host.substr(std::string("mta-sts.").size())].push_back({end - took, end});
  }
  return out;
}

class PartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < kHeld; ++i) add(held(i), Behaviour::serve);
    add("before.example", Behaviour::serve);
    // A fetch of ~5 s: in progress (claimed on the old primary) when the primary freezes.
    add("slow.example", Behaviour::sluggish);
    world.start();
  }
  void add(const std::string& d, Behaviour b) {
    DomainSpec s;
    s.txt = {"v=STSv1; id=id1;"};
    s.policy = World::policy("enforce", {"mail." + d}, 86400);
    s.behaviour = b;
    world.add_domain(d, s);
  }
  static std::string held(int i) { return "held" + std::to_string(i) + ".example"; }

  std::unique_ptr<Process> start_fetcher(const std::string& id) {
    std::vector<std::string> redis{"address = " + std::string(kNowhere)};
    for (const auto& l : fleet->redis_lines("mta-sts-cached")) redis.push_back(l);
    return test::start_fetcher(dir.path(), id, fetcher_config(world, redis, id));
  }
  std::string logs() const {
    return test::fetcher_log(dir.path(), "f1") + test::fetcher_log(dir.path(), "f2") + (tlsmap ? tlsmap->log() : "");
  }
  std::string query(const std::string& d) {
    SocketmapClient c(tlsmap->listen());
    return c.query("postfix " + d);
  }

  // The whole run; `server_lines` for every Redis server.
  // `refuses`: the servers refuse writes without a replica (min-replicas-to-write), so that the
  // cut-off primary takes none.
  void run_partition(const std::string& server_lines, bool refuses);

  static constexpr int kHeld = 6;
  World world{};
  TempDir dir{"mtasts-partition"};
  std::unique_ptr<RedisFleet> fleet;
  std::unique_ptr<TlsmapDaemon> tlsmap;
};

void PartitionTest::run_partition(const std::string& server_lines, bool refuses) {
  fleet = std::make_unique<RedisFleet>(2, server_lines);
  const int old_primary = fleet->primary_port();
  auto f1 = start_fetcher("f1");
  auto f2 = start_fetcher("f2");
  std::filesystem::create_directories(dir / "tlsmap");
  TlsmapOptions to;
  to.redis_address = kNowhere;
  to.redis_lines = fleet->redis_lines("mta-sts-tlsmap");
  // Re-read Redis each second (the default is a minute), so that the run is short.
  to.tlsmap_lines = {"dane = no", "local-cache-ttl = 1s"};
  tlsmap = std::make_unique<TlsmapDaemon>(dir / "tlsmap", to);

  // Before: a domain fetched and replicated everywhere.
  ASSERT_TRUE(wait_until([&] { return query("before.example") == secure("before.example"); }, 20s)) << logs();
  for (int r : fleet->replica_ports())
    ASSERT_TRUE(wait_until([&] { return !fleet->cli(r, {"GET", entry_key("before.example")}).empty(); }, 5s));

  // The primary's replicas are cut off (their user refused, their links closed): what is
  // written now is on the old primary only. The MTA asks for new domains; the fetchers fetch
  // them onto the old primary, and the MTA reads them from there.
  ASSERT_EQ(fleet->cli(old_primary, {"ACL", "SETUSER", "mta-sts-replication", "off"}), "OK");
  fleet->cli(old_primary, {"CLIENT", "KILL", "USER", "mta-sts-replication"});
  ASSERT_TRUE(wait_until([&] {
    return fleet->cli(old_primary, {"INFO", "replication"}).find("connected_slaves:0") != std::string::npos;
  }, 5s));
  if (refuses) {
    // Nothing is taken there: the misses are refused (-NOREPLICAS), and said so.
    for (int i = 0; i < kHeld; ++i) EXPECT_EQ(query(held(i)), "NOTFOUND ");
    EXPECT_TRUE(tlsmap->wait_log("NOREPLICAS", 5s)) << tlsmap->log();
  } else {
    for (int i = 0; i < kHeld; ++i)
      ASSERT_TRUE(wait_until([&] { return query(held(i)) == secure(held(i)); }, 20s)) << held(i) << logs();
    query("slow.example");
    ASSERT_TRUE(
        wait_until([&] { return !fleet->cli(old_primary, {"GET", "mta-sts:v1:lock:slow.example"}).empty(); }, 10s))
        << logs();
  }
  for (int r : fleet->replica_ports())
    for (int i = 0; i < kHeld; ++i)
      ASSERT_EQ(fleet->cli(r, {"GET", entry_key(held(i))}), "") << "replication was not cut";

  // The partition: the primary freezes, the sentinels promote a replica.
  fleet->pause_primary();
  const double paused_at = wall_now();
  const int new_primary = fleet->wait_promoted(30s);
  ASSERT_NE(new_primary, 0) << "Sentinel did not promote a replica";
  std::printf("paused at %.3f, promoted 127.0.0.1:%d after %.1f s\n", paused_at, new_primary, wall_now() - paused_at);
  // While the old primary is cut off, the MTA still applies what it read from it.
  if (!refuses) {
    for (int i = 0; i < kHeld; ++i) EXPECT_EQ(query(held(i)), secure(held(i))) << "during the partition\n" << tlsmap->log();
  }

  // Healing: the old primary comes back and the sentinels make it a replica of the new one,
  // which discards what only it had.
  fleet->resume_primary();
  ASSERT_TRUE(wait_until(
      [&] {
        return fleet->cli(old_primary, {"ROLE"}).starts_with("slave") &&
               fleet->cli(old_primary, {"INFO", "replication"}).find("master_link_status:up") != std::string::npos;
      },
      30s))
      << "the old primary was not made a replica: " << fleet->cli(old_primary, {"ROLE"});
  const double healed_at = wall_now();
  int lost = 0;
  for (int i = 0; i < kHeld; ++i)
    if (fleet->cli(new_primary, {"GET", entry_key(held(i))}).empty()) ++lost;
  std::printf("healed after %.1f s; %d of %d domains asked for while the primary was cut off are not on the new primary yet\n",
              healed_at - paused_at, lost, kHeld);

  // After: each is fetched again onto the new primary; the MTA keeps enforcing what it read
  // (slow.example it never read: its fetch ran across the freeze, under a claim taken on the
  // old primary, so its write was refused; the MTA's next lookups ask for it again).
  std::vector<std::string> all{"before.example"};
  for (int i = 0; i < kHeld; ++i) all.push_back(held(i));
  for (const auto& d : all) {
    bool ok = wait_until(
        [&] {
          const std::string answer = query(d);
          if (!refuses) {
            EXPECT_EQ(answer, secure(d)) << "after healing";
          }
          return answer == secure(d) && !fleet->cli(new_primary, {"GET", entry_key(d)}).empty();
        },
        30s);
    EXPECT_TRUE(ok) << d << " is not on the new primary: written only to the old one and never fetched again\n"
                    << logs();
  }
  EXPECT_TRUE(wait_until([&] { return query("slow.example") == secure("slow.example"); }, 30s)) << logs();
  EXPECT_NE(fleet->cli(new_primary, {"GET", entry_key("slow.example")}), "");

  // No two fetches of one domain overlapped once the old primary was frozen (a fetch under a
  // claim taken on the old primary may still run then; one begun after must not meet it).
  const auto by_domain = fetches(world.https().access_log());
  int overlaps = 0;
  for (const auto& [domain, list] : by_domain) {
    std::string times;
    for (std::size_t a = 0; a < list.size(); ++a) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " [%+.3f,%+.3f]", list[a].begin - paused_at, list[a].end - paused_at);
      times += buf;
      for (std::size_t b = a + 1; b < list.size(); ++b) {
        const Fetch& x = list[a];
        const Fetch& y = list[b];
        if (x.begin < paused_at && y.begin < paused_at) continue;
        if (x.begin < y.end && y.begin < x.end) ++overlaps;
      }
    }
    std::printf("%s: %zu fetches%s\n", domain.c_str(), list.size(), times.c_str());
  }
  EXPECT_EQ(overlaps, 0) << "two fetchers fetched one domain at once";
  EXPECT_TRUE(f1->running());
  EXPECT_TRUE(f2->running());
  EXPECT_TRUE(tlsmap->process().running());
}

// The servers as shipped by Redis (no min-replicas-to-write).
TEST_F(PartitionTest, PoliciesWrittenOnlyToAnIsolatedPrimaryAreFetchedAgainAndNeverTwiceAtOnce) {
  run_partition("", false);
}

// As mta-sts.conf(5), FLEET DEPLOYMENT, recommends: a primary without a replica refuses
// writes (-NOREPLICAS), so that nothing is written to it alone; what the MTA asked for then is
// fetched onto the new primary.
TEST_F(PartitionTest, WithMinReplicasToWriteAsRecommended) {
  run_partition("min-replicas-to-write 1\nmin-replicas-max-lag 10\n", true);
}

}  // namespace
}  // namespace mtasts::test
