// The Redis client when a server goes away or cannot answer (issue 19, defect 5), with real
// redis-server processes and the real mta-sts-tlsmap: the fixed replica it reads from is
// killed, or comes back loading its data (-LOADING), and lookups go on from the primary; the
// host of its change subscription vanishes without a FIN, and it subscribes anew within a
// bound, so that invalidations reach it again.
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "common/fleet/redis.hpp"
#include "common/fleet/store.hpp"
#include "common/sts/domain.hpp"
#include "tests/fakes/cache_entries.hpp"
#include "tests/integration/tlsmap/harness.hpp"
#include "tests/support/freezable_proxy.hpp"
#include "tests/support/redis_fleet.hpp"
#include "tests/support/redis_server.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;

SysTime now() { return SystemClock().now(); }

std::string secure(const std::string& mx) { return "OK secure match=" + mx + " servername=hostname"; }

class RedisAdversityTest : public ::testing::Test {
 protected:
  // The same entries on `server` (the primary and, for the replica tests, the replica).
  static void put_all(const RedisServer& server, const std::vector<std::string>& domains) {
    RedisOptions ro;
    ro.address = server.address();
    Pool pool(ro);
    PolicyStore store(pool, StoreOptions{});
    for (const auto& d : domains)
      store.put(*Domain::parse(d).domain, policy_entry(Mode::enforce, "p1", {"mail." + d}, now()), now(), true);
  }
  std::unique_ptr<TlsmapDaemon> start(const std::string& address, std::vector<std::string> redis_lines,
                                      std::vector<std::string> tlsmap_lines = {}) {
    TlsmapOptions o;
    o.redis_address = address;
    o.redis_lines = std::move(redis_lines);
    o.tlsmap_lines = std::move(tlsmap_lines);
    o.tlsmap_lines.push_back("dane = no");
    return std::make_unique<TlsmapDaemon>(dir_.path(), o);
  }

  TempDir dir_{"redis-adversity"};
  RedisServer primary_;
};

std::vector<std::string> domains(int n) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) v.push_back("d" + std::to_string(i) + ".test");
  return v;
}

// `replica =` names a replica that is then killed: lookups go on from the primary.
TEST_F(RedisAdversityTest, AFixedReplicaThatIsDownFallsBackToThePrimary) {
  RedisServer replica;
  const auto names = domains(10);
  put_all(primary_, names);
  put_all(replica, names);
  auto d = start(primary_.address(), {"read-from = replica", "replica = " + replica.address()});
  SocketmapClient c(d->listen());
  EXPECT_EQ(c.query("postfix d0.test"), secure("mail.d0.test"));
  replica.kill();
  for (int i = 1; i < 10; ++i) {
    const std::string n = "d" + std::to_string(i) + ".test";
    EXPECT_EQ(c.query("postfix " + n), secure("mail." + n)) << "read from the primary while the replica is down";
  }
}

// The fixed replica comes back loading its data: it answers -LOADING for seconds. The
// connections to it are dropped and lookups go to the primary meanwhile.
TEST_F(RedisAdversityTest, AReplicaAnsweringLoadingIsLeftForThePrimary) {
  const auto names = domains(10);
  put_all(primary_, names);
  // A data file that takes seconds to load (key-load-delay, a Redis 7 test setting).
  const auto data = dir_ / "data";
  std::filesystem::create_directories(data);
  const auto sock = data / "replica.sock";
  {
    Process maker({"redis-server", "--port", "0", "--unixsocket", sock.string(), "--save", "", "--appendonly", "no",
                   "--dir", data.string(), "--enable-debug-command", "yes"},
                  dir_ / "maker.log");
    ASSERT_TRUE(wait_until([&] { return run({"redis-cli", "-s", sock.string(), "PING"}, 5s).out == "PONG\n"; }, 5s));
    ASSERT_EQ(run({"redis-cli", "-s", sock.string(), "DEBUG", "POPULATE", "20000"}, 10s).exit_code, 0);
    ASSERT_EQ(run({"redis-cli", "-s", sock.string(), "SAVE"}, 10s).exit_code, 0);
  }
  std::filesystem::remove(sock);
  Process loading({"redis-server", "--port", "0", "--unixsocket", sock.string(), "--appendonly", "no", "--dir",
                   data.string(), "--key-load-delay", "1000", "--loading-process-events-interval-bytes", "1024"},
                  dir_ / "loading.log");
  ASSERT_TRUE(wait_until([&] { return run({"redis-cli", "-s", sock.string(), "GET", "x"}, 5s).out.find("LOADING") !=
                                      std::string::npos; },
                         5s));
  auto d = start(primary_.address(), {"read-from = replica", "replica = unix:" + sock.string()});
  SocketmapClient c(d->listen());
  for (const auto& n : names) EXPECT_EQ(c.query("postfix " + n), secure("mail." + n));
  EXPECT_NE(run({"redis-cli", "-s", sock.string(), "GET", "x"}, 5s).out.find("LOADING"), std::string::npos)
      << "the replica was loading all along";
}

// The subscriber's Redis host vanishes without a FIN (its connection frozen in a proxy; a
// new connection gets through, as after a failover or a reboot): the subscriber notices by
// itself and subscribes anew, and an announcement after that reaches mta-sts-tlsmap, which
// holds the domain locally for an hour otherwise.
TEST_F(RedisAdversityTest, ASubscriberWhoseHostVanishesSubscribesAnewWithinABound) {
  put_all(primary_, {"x.test"});
  FreezableProxy proxy(dir_ / "proxy.sock", primary_.socket_path());
  auto d = start(proxy.address(), {}, {"local-cache-ttl = 1h"});
  SocketmapClient c(d->listen());
  EXPECT_EQ(c.query("postfix x.test"), secure("mail.x.test"));
  std::this_thread::sleep_for(500ms);  // subscribed (at start-up, through the proxy)
  proxy.freeze();
  const auto t0 = std::chrono::steady_clock::now();
  // The fetcher writes a new policy and announces it, again and again (announcements sent
  // while nobody listens are lost, as in Redis).
  RedisOptions ro;
  ro.address = primary_.address();
  Pool pool(ro);
  PolicyStore store(pool, StoreOptions{});
  const bool seen = wait_until(
      [&] {
        store.put(*Domain::parse("x.test").domain, policy_entry(Mode::enforce, "p2", {"mx2.x.test"}, now()), now(), true);
        return c.query("postfix x.test") == secure("mx2.x.test");
      },
      30s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  std::printf("new policy seen %lld ms after the subscriber's host vanished\n", static_cast<long long>(took.count()));
  EXPECT_TRUE(seen) << d->log();
  EXPECT_LT(took, 20s);
}

// Issue 19, defect 6: a fleet whose configuration lists, first, a sentinel that names the
// replica as the primary (stale, or on the wrong side of a partition). The client asks the
// sentinels in a varying order, prefers what most of them say, and checks ROLE: every miss
// signal (a write) reaches the real primary.
TEST_F(RedisAdversityTest, AStaleSentinelCannotSendWritesToAReplica) {
  RedisFleet fleet;
  // A lone sentinel (quorum 1) watching the replica under the fleet's master name: it keeps
  // naming it (a primary that reports itself a replica is only "unreachable" to Sentinel).
  TempDir sdir("stale-sentinel");
  const int port = static_cast<int>(free_tcp_port());
  const auto conf = sdir.path() / "sentinel.conf";
  write_file(conf, "bind 127.0.0.1\nport " + std::to_string(port) + "\ndir " + sdir.path().string() +
                       "\nsentinel monitor " + RedisFleet::kMasterName + " 127.0.0.1 " +
                       std::to_string(fleet.replica_port()) + " 1\nsentinel down-after-milliseconds " +
                       RedisFleet::kMasterName + " 60000\nsentinel auth-user " + RedisFleet::kMasterName +
                       " mta-sts-sentinel\nsentinel auth-pass " + RedisFleet::kMasterName + " " +
                       RedisFleet::password_of("mta-sts-sentinel") + "\n");
  Process stale({"redis-sentinel", conf.string()}, sdir.path() / "sentinel.log");
  const std::string stale_addr = "127.0.0.1:" + std::to_string(port);
  ASSERT_TRUE(wait_until(
      [&] {
        return run({"redis-cli", "-p", std::to_string(port), "SENTINEL", "get-master-addr-by-name",
                    RedisFleet::kMasterName},
                   5s)
                   .out.find(std::to_string(fleet.replica_port())) != std::string::npos;
      },
      10s));
  std::vector<std::string> lines{"sentinel = " + stale_addr};
  for (const auto& l : fleet.redis_lines("mta-sts-tlsmap")) lines.push_back(l);
  TlsmapOptions o;
  o.redis_address = "127.0.0.1:1";  // unused with sentinels
  o.redis_lines = lines;
  o.tlsmap_lines = {"dane = no"};
  TlsmapDaemon d(dir_.path(), o);
  constexpr int kLookups = 12;
  for (int i = 0; i < kLookups; ++i) {
    SocketmapClient c(d.listen());
    c.query("postfix new" + std::to_string(i) + ".test");  // unknown: a miss signal (ZADD) to the primary
  }
  int signalled = 0;
  for (int i = 0; i < kLookups; ++i)
    if (!fleet.cli(fleet.primary_port(), {"ZSCORE", "mta-sts:v1:misses", "new" + std::to_string(i) + ".test"}).empty())
      ++signalled;
  std::printf("%d of %d miss signals reached the primary\n", signalled, kLookups);
  EXPECT_EQ(signalled, kLookups) << d.log();
}

// SENTINEL FAILOVER: the sentinels name the replica as the primary at once, but make the old
// primary a replica (and close its clients) only when they next look at it, seconds later;
// meanwhile it still takes writes, which are discarded when it is made a replica. A pool that
// hears `+switch-master` leaves its connections there: a write right after the switch lands
// on the new primary and survives (issue 19, defect 6). Failed before: the pooled connection
// wrote to the old primary ("OK"), and the write was gone once it was made a replica.
TEST_F(RedisAdversityTest, PooledConnectionsLeaveTheOldPrimaryWhenSentinelAnnouncesASwitch) {
  RedisFleet fleet;
  RedisOptions ro;
  ro.sentinels = fleet.sentinel_addresses();
  ro.master_name = RedisFleet::kMasterName;
  ro.user = "mta-sts-cached";
  ro.password = RedisFleet::password_of("mta-sts-cached");
  ro.connect_timeout = 1000ms;
  ro.pool_size = 2;
  Pool pool(ro);
  {
    auto a = pool.lease();
    auto b = pool.lease();  // two pooled connections to the primary
    a->command({"SET", "mta-sts:v1:probe", "before"});
    b->command({"GET", "mta-sts:v1:probe"});
  }
  std::this_thread::sleep_for(500ms);  // the watch's subscription is up (real sentinels: no fake clock)
  const std::string sentinel = fleet.sentinel_addresses()[0];
  ASSERT_EQ(fleet.cli(std::stoi(sentinel.substr(sentinel.rfind(':') + 1)), {"SENTINEL", "FAILOVER", RedisFleet::kMasterName}),
            "OK");
  ASSERT_TRUE(fleet.wait_failover(30s));
  const std::string old_role = fleet.cli(fleet.primary_port(), {"ROLE"});
  std::printf("the old primary at the write: %s\n", old_role.substr(0, old_role.find('\n')).c_str());
  for (int i = 0; i < 2; ++i) {
    auto l = pool.lease();
    EXPECT_NO_THROW(l->command({"SET", "mta-sts:v1:probe", "after" + std::to_string(i)})) << "write " << i;
  }
  // Once the old primary is a replica of the new one, the write is still there.
  ASSERT_TRUE(wait_until([&] {
    return fleet.cli(fleet.primary_port(), {"ROLE"}).starts_with("slave") &&
           fleet.cli(fleet.primary_port(), {"INFO", "replication"}).find("master_link_status:up") != std::string::npos;
  }, 30s));
  EXPECT_EQ(fleet.cli(fleet.replica_port(), {"GET", "mta-sts:v1:probe"}), "after1") << "a write after the switch was lost";
}

// A primary with fewer replicas than its min-replicas-to-write answers writes with
// -NOREPLICAS: the connection is left (the next one looks the primary up again, through the
// sentinels where there are some) and the client says why. Failed before: the same connection
// was handed out again.
TEST_F(RedisAdversityTest, ANoReplicasReplyLeavesTheConnection) {
  ASSERT_EQ(primary_.cli({"CONFIG", "SET", "min-replicas-to-write", "1"}), "OK");
  RedisOptions ro;
  ro.address = primary_.address();
  ro.pool_size = 1;
  Pool pool(ro);
  std::int64_t first = 0;
  {
    auto l = pool.lease();
    first = l->command({"CLIENT", "ID"}).integer();
    EXPECT_THROW(l->command({"SET", "k", "v"}), RedisError);
  }
  auto l = pool.lease();
  EXPECT_NE(l->command({"CLIENT", "ID"}).integer(), first) << "a connection that met -NOREPLICAS was pooled again";
}

}  // namespace
}  // namespace mtasts::test
