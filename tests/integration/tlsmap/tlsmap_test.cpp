// mta-sts-tlsmap, the real binary, against a real redis-server and a real DNS (dnsmasq for MX
// records), queried by our own socketmap client and by Postfix's own (postmap -q ...
// socketmap:...:postfix). Redis outages, idle timeout, oversized netstrings, unknown names,
// 1000+ connections at once, reload, shutdown and --check.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <thread>

#include "common/sts/domain.hpp"
#include "common/fleet/redis.hpp"
#include "common/fleet/store.hpp"
#include "tests/fakes/cache_entries.hpp"
#include "tests/integration/tlsmap/harness.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/slow_redis.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

SysTime now() { return SystemClock().now(); }

class TlsmapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dns_ = std::make_unique<DnsServer>("127.0.0.1", static_cast<std::uint16_t>(free_tcp_port()), dir_.path());
    dns_->add_mx("enforce.test", "mx1.enforce.test", 10);
    dns_->add_mx("enforce.test", "mx2.enforce.test", 20);
    dns_->add_mx("enforce.test", "a.b.enforce.test", 30);  // two labels below: never allowed
    dns_->add_host("mx1.enforce.test", "127.0.0.1");
    dns_->add_mx("exact.test", "mail.exact.test", 10);
    dns_->add_mx("testing.test", "mx.testing.test", 10);
    dns_->set_failure("dnsdown.test", DnsFailure::servfail);
    dns_->start();
    RedisOptions ro;
    ro.address = redis_.address();
    pool_ = std::make_unique<Pool>(ro);
    store_ = std::make_unique<PolicyStore>(*pool_, StoreOptions{});
    put("enforce.test", policy_entry(Mode::enforce, "e1", {"*.enforce.test"}, now()));
    put("exact.test", policy_entry(Mode::enforce, "x1", {"mail.exact.test"}, now()));
    put("testing.test", policy_entry(Mode::testing, "t1", {"mx.testing.test"}, now()));
    put("none.test", policy_entry(Mode::none, "n1", {}, now()));
    put("nopolicy.test", negative_entry(now()));
    put("dnsdown.test", policy_entry(Mode::enforce, "d1", {"*.dnsdown.test"}, now()));
  }

  void put(const std::string& domain, const CacheEntry& e) {
    store_->put(*Domain::parse(domain).domain, e, now(), false);
  }
  bool miss_signalled(const std::string& domain) {
    return !redis_.cli({"ZSCORE", "mta-sts:v1:misses", domain}).empty();
  }
  std::unique_ptr<TlsmapDaemon> start(std::vector<std::string> lines = {}, std::string listen = "") {
    TlsmapOptions o;
    o.redis_address = redis_.address();
    o.tlsmap_lines = std::move(lines);
    o.tlsmap_lines.push_back("resolver = " + dns_->resolver());
    o.listen = std::move(listen);
    return std::make_unique<TlsmapDaemon>(dir_.path(), o);
  }
  // Postfix's own socketmap client.
  RunResult postmap(const TlsmapDaemon& d, const std::string& key, const std::string& name = "postfix") {
    const fs::path conf = dir_ / "postfix";
    fs::create_directories(conf);
    write_file(conf / "main.cf", "compatibility_level = 3.6\nmaillog_file = /dev/stdout\n");
    return run({"postmap", "-c", conf.string(), "-q", key, "socketmap:" + d.postfix_address() + ":" + name}, 30s);
  }

  TempDir dir_{"tlsmap-test"};
  RedisServer redis_;
  std::unique_ptr<DnsServer> dns_;
  std::unique_ptr<Pool> pool_;
  std::unique_ptr<PolicyStore> store_;
};

// redis-budget bounds each lookup as a whole, not each Redis step. Against a Redis that
// answers every command in 90 ms (each step within the 100 ms budget), a lookup of an unknown
// domain is a GET and a miss signal: 180 ms and more with a timeout per step, at most the
// budget with one deadline; then on-unknown answers.
TEST_F(TlsmapTest, EachLookupStaysWithinTheBudgetAsAWhole) {
  SlowRedis slow(dir_.path() / "slow.sock", 90ms);
  TlsmapOptions o;
  o.redis_address = slow.address();
  o.tlsmap_lines = {"redis-budget = 100ms", "local-cache-ttl = 0", "resolver = " + dns_->resolver()};
  TlsmapDaemon d(dir_.path(), o);
  SocketmapClient c(d.listen());
  for (const char* domain : {"unknown1.test", "unknown2.test", "unknown3.test"}) {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(c.query(std::string("postfix ") + domain), "NOTFOUND ");
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    EXPECT_LT(took, 100ms + 60ms) << domain << ": " << took.count() << " ms";
  }
}

TEST_F(TlsmapTest, AnswersEveryKindOfDomain) {
  auto d = start();
  SocketmapClient c(d->listen());
  // The wildcard lists the current MX hosts one label below, in MX preference order.
  EXPECT_EQ(c.query("postfix enforce.test"), "OK secure match=mx1.enforce.test:mx2.enforce.test servername=hostname");
  EXPECT_EQ(c.query("postfix EXACT.test."), "OK secure match=mail.exact.test servername=hostname");
  EXPECT_EQ(c.query("sts exact.test"), "OK secure match=mail.exact.test servername=hostname");
  EXPECT_EQ(c.query("postfix-tlsrpt exact.test"),
            "OK secure match=mail.exact.test servername=hostname policy_type=sts policy_domain=exact.test"
            " mx_host_pattern=mail.exact.test { policy_string = version: STSv1 } { policy_string = mode: enforce }"
            " { policy_string = mx: mail.exact.test } { policy_string = max_age: 86400 }");
  for (const char* nf : {"testing.test", "none.test", "nopolicy.test", "[mx1.enforce.test]", "[mx1.enforce.test]:25",
                         "mx1.enforce.test:25", ".enforce.test", "127.0.0.1", "bad..name"})
    EXPECT_EQ(c.query(std::string("postfix ") + nf), "NOTFOUND ") << nf;
  EXPECT_EQ(c.query("tlspolicy enforce.test").rfind("PERM ", 0), 0u);
  // The MX set cannot be had: `.suffix`, and a log line says why.
  EXPECT_EQ(c.query("postfix dnsdown.test"), "OK secure match=.dnsdown.test servername=hostname");
  EXPECT_TRUE(d->wait_log("MX set unavailable", 5s));
}

TEST_F(TlsmapTest, PostfixOwnClientReadsTheReplies) {
  auto d = start();
  RunResult r = postmap(*d, "enforce.test");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "secure match=mx1.enforce.test:mx2.enforce.test servername=hostname\n");
  r = postmap(*d, "testing.test");
  EXPECT_EQ(r.exit_code, 1) << "NOTFOUND: postmap finds nothing; " << r.out << r.err;
  r = postmap(*d, "enforce.test", "nosuchmap");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
}

TEST_F(TlsmapTest, UnknownDomainSignalsAMissAndFollowsOnUnknown) {
  auto d = start({"on-unknown = defer"});
  SocketmapClient c(d->listen());
  EXPECT_EQ(c.query("postfix fresh.test"), "TEMP MTA-STS policy not yet known");
  EXPECT_TRUE(miss_signalled("fresh.test"));
  EXPECT_FALSE(miss_signalled("[fresh.test]"));
  c.query("postfix [other.test]");
  c.query("postfix .other.test");
  EXPECT_FALSE(miss_signalled("other.test")) << "a key that is not a policy domain is never a miss";
  // The fetcher fills it: the next lookup sees it (unknown is never cached locally).
  put("fresh.test", policy_entry(Mode::testing, "f1", {"mx.fresh.test"}, now()));
  EXPECT_EQ(c.query("postfix fresh.test"), "NOTFOUND ");
}

TEST_F(TlsmapTest, MissWaitAnswersOnceTheFetcherFilledIt) {
  auto d = start({"on-unknown = defer", "miss-wait = 5s"});
  std::thread fetcher([&] {
    wait_until([&] { return miss_signalled("late.test"); }, 5s);
    put("late.test", policy_entry(Mode::enforce, "l1", {"mx.late.test"}, now()));
  });
  SocketmapClient c(d->listen());
  EXPECT_EQ(c.query("postfix late.test"), "OK secure match=mx.late.test servername=hostname");
  fetcher.join();
}

TEST_F(TlsmapTest, RedisDownUsesEntriesHeldLocallyElseOnRedisError) {
  auto d = start({"on-redis-error = defer", "local-cache-ttl = 1s"});
  SocketmapClient c(d->listen());
  EXPECT_EQ(c.query("postfix exact.test"), "OK secure match=mail.exact.test servername=hostname");
  redis_.kill();
  // Past local-cache-ttl a fresh read is due; it fails, and the policy held locally (not
  // expired) still answers.
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(c.query("postfix exact.test"), "OK secure match=mail.exact.test servername=hostname");
  EXPECT_EQ(c.query("postfix enforce.test"), "TEMP MTA-STS policy cache unavailable") << "never read before";
  EXPECT_EQ(c.query("postfix [mx.test]"), "NOTFOUND ") << "no Redis needed";
  redis_.start();
  put("enforce.test", policy_entry(Mode::enforce, "e1", {"*.enforce.test"}, now()));
  EXPECT_TRUE(wait_until([&] { return c.query("postfix enforce.test").rfind("OK secure", 0) == 0; }, 10s));
}

TEST_F(TlsmapTest, RedisDownAcceptsByDefault) {
  auto d = start();
  redis_.kill();
  SocketmapClient c(d->listen());
  EXPECT_EQ(c.query("sts enforce.test"), "NOTFOUND ");
}

TEST_F(TlsmapTest, IdleConnectionsAreClosed) {
  auto d = start({"idle-timeout = 1s"});
  SocketmapClient idle(d->listen());
  SocketmapClient busy(d->listen());
  EXPECT_EQ(busy.query("postfix none.test"), "NOTFOUND ");
  EXPECT_TRUE(idle.wait_closed(5s));
}

TEST_F(TlsmapTest, OversizedNetstringClosesTheConnection) {
  auto d = start();
  SocketmapClient c(d->listen());
  c.send_raw("10001:" + std::string(10001, 'a') + ",");
  EXPECT_TRUE(c.wait_closed(5s));
  SocketmapClient next(d->listen());
  EXPECT_EQ(next.query("postfix exact.test").rfind("OK secure", 0), 0u) << "the server itself carries on";
}

TEST_F(TlsmapTest, ThousandsOfConnectionsAtOnce) {
  // The test process needs as many descriptors as it opens.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 8192);
  setrlimit(RLIMIT_NOFILE, &rl);
  ASSERT_GE(rl.rlim_cur, 2200u);
  auto d = start();
  constexpr int kConns = 1500;
  std::vector<std::unique_ptr<SocketmapClient>> clients;
  for (int i = 0; i < kConns; ++i) clients.push_back(std::make_unique<SocketmapClient>(d->listen()));
  // Every connection asks before any reads: all of them are open at once.
  for (int i = 0; i < kConns; ++i) clients[i]->send(i % 2 ? "postfix exact.test" : "postfix none.test");
  for (int i = 0; i < kConns; ++i) {
    const std::string r = clients[i]->receive();
    ASSERT_EQ(r, i % 2 ? "OK secure match=mail.exact.test servername=hostname" : "NOTFOUND ") << i;
  }
}

TEST_F(TlsmapTest, UnixSocketWithItsMode) {
  const std::string path = (dir_ / "tlsmap.sock").string();
  auto d = start({"socket-mode = 0660"}, "unix:" + path);
  struct stat st{};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  SocketmapClient c("unix:" + path);
  EXPECT_EQ(c.query("postfix exact.test"), "OK secure match=mail.exact.test servername=hostname");
  RunResult r = postmap(*d, "exact.test");
  EXPECT_EQ(r.out, "secure match=mail.exact.test servername=hostname\n") << r.err;
  d->stop();
  EXPECT_FALSE(fs::exists(path)) << "the socket is removed at exit";
}

TEST_F(TlsmapTest, SighupReloadsPolicySettings) {
  auto d = start();
  SocketmapClient c(d->listen());
  EXPECT_EQ(c.query("postfix unknown1.test"), "NOTFOUND ");
  std::string conf = read_file(d->config_path());
  write_file(d->config_path(), conf + "on-unknown = defer\n");
  d->process().signal(SIGHUP);
  ASSERT_TRUE(d->wait_log("configuration reloaded", 10s)) << d->log();
  EXPECT_EQ(c.query("postfix unknown2.test"), "TEMP MTA-STS policy not yet known") << "the open connection too";
  // A broken file changes nothing.
  write_file(d->config_path(), conf + "on-unknown = maybe\n");
  d->process().signal(SIGHUP);
  ASSERT_TRUE(d->wait_log("reload failed", 10s));
  EXPECT_EQ(c.query("postfix unknown3.test"), "TEMP MTA-STS policy not yet known");
}

TEST_F(TlsmapTest, SigtermStopsCleanly) {
  auto d = start();
  SocketmapClient c(d->listen());
  EXPECT_EQ(c.query("postfix none.test"), "NOTFOUND ");
  const int status = d->stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << d->log();
  EXPECT_NE(d->log().find("stopped"), std::string::npos);
}

TEST_F(TlsmapTest, CheckValidatesTheConfiguration) {
  write_file(dir_ / "good.conf", "[tlsmap]\nlisten = inet:127.0.0.1:5461\nlisten = unix:/run/t.sock\n");
  RunResult r = run({tlsmap_binary().string(), "-c", (dir_ / "good.conf").string(), "--check"}, 10s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  write_file(dir_ / "bad.conf", "[tlsmap]\nlisten = inet:localhost:5461\n");
  r = run({tlsmap_binary().string(), "-c", (dir_ / "bad.conf").string(), "--check"}, 10s);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad.conf:2"), std::string::npos) << r.err;
}

TEST_F(TlsmapTest, PidFileAndBusyPort) {
  auto d = start({"pid-file = " + (dir_ / "t.pid").string()});
  EXPECT_EQ(read_file(dir_ / "t.pid"), std::to_string(d->process().pid()) + "\n");
  // A second instance on the same port fails to start with a clear error.
  write_file(dir_ / "second.conf", "[redis]\naddress = " + redis_.address() + "\n[tlsmap]\nlog = stderr\nlisten = " +
                                       d->listen() + "\n");
  RunResult r = run({tlsmap_binary().string(), "-c", (dir_ / "second.conf").string()}, 10s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot start"), std::string::npos) << r.err;
}


TEST_F(TlsmapTest, AClientThatNeverReadsIsNotBufferedWithoutBound) {
  // Requests keep coming and replies are never read: once its unsent replies pass the bound
  // the server stops reading that client (the kernel buffers fill and sends stall), its
  // memory stays small, and other clients are served meanwhile. Each request is a local-cache
  // hit whose reply is 2.7 times its size, so that unbounded the replies would pile up in
  // the server far beyond what the kernel buffers hold.
  auto d = start();
  SocketmapClient greedy(d->listen());
  ASSERT_EQ(greedy.query("postfix exact.test"), "OK secure match=mail.exact.test servername=hostname");
  const int fl = ::fcntl(greedy.fd(), F_GETFL);
  ::fcntl(greedy.fd(), F_SETFL, fl | O_NONBLOCK);
  std::string burst;
  for (int i = 0; i < 1000; ++i) burst += "18:postfix exact.test,";
  std::size_t sent = 0;
  auto last_progress = std::chrono::steady_clock::now();
  while (sent < (32u << 20) && std::chrono::steady_clock::now() - last_progress < 2s) {
    // The stream stays well-formed across partial sends: continue where the last one ended.
    const std::size_t pos = sent % burst.size();
    const ssize_t n = ::send(greedy.fd(), burst.data() + pos, burst.size() - pos, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      last_progress = std::chrono::steady_clock::now();
    } else {
      std::this_thread::sleep_for(5ms);
    }
  }
  // Bounded: kernel buffers (a few MiB each way) plus 256 KiB of replies.
  EXPECT_LT(sent, 32u << 20) << "the server kept reading a client that never reads";
  EXPECT_GT(sent, 1u << 20) << "the server stopped reading too early";
  EXPECT_EQ(d->log().find("protocol error"), std::string::npos) << "the stream was well-formed";
  std::ifstream status("/proc/" + std::to_string(d->process().pid()) + "/status");
  long rss_kib = -1;
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) rss_kib = std::stol(line.substr(6));
  EXPECT_GT(rss_kib, 0);
  EXPECT_LT(rss_kib, 64 * 1024) << "kB";
  SocketmapClient other(d->listen());
  EXPECT_EQ(other.query("postfix none.test"), "NOTFOUND ");
}

}  // namespace
}  // namespace mtasts::test
