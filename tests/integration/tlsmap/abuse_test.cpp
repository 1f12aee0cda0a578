// mta-sts-tlsmap, the real binary, against clients that misbehave (issue 18, defects 9 and 10):
// any local user can connect to it. Slowloris clients (a byte every few seconds) and clients
// that pipeline requests without reading the replies fill max-connections, yet a Postfix-like
// client (connect, ask, read) still gets its answers and the server's memory stays bounded;
// such clients are closed after request-timeout. And one domain whose DNS never answers
// does not hold back the lookups that Redis alone answers (the p99 is printed).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/resource.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <stdexcept>
#include <memory>
#include <thread>

#include "common/fleet/redis.hpp"
#include "common/fleet/store.hpp"
#include "common/sts/domain.hpp"
#include "tests/fakes/cache_entries.hpp"
#include "tests/integration/tlsmap/harness.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;
using Ms = std::chrono::milliseconds;

SysTime now() { return SystemClock().now(); }

constexpr const char* kExactReply = "OK secure match=mail.exact.test servername=hostname";

long rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

Ms since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<Ms>(std::chrono::steady_clock::now() - t0);
}

Ms percentile(std::vector<Ms> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// A client socket with small kernel buffers, made non-blocking: what it does not read stops
// the server's sends after a few KiB instead of the megabytes loopback would buffer.
class GreedyClient {
 public:
  explicit GreedyClient(unsigned port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int small = 4096;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("connect");
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~GreedyClient() { ::close(fd_); }
  GreedyClient(const GreedyClient&) = delete;
  GreedyClient& operator=(const GreedyClient&) = delete;
  // Pipelines requests, never reading, until the server stops taking them for `quiet`.
  std::size_t pipeline(Ms quiet) {
    static const std::string burst = [] {
      std::string b;
      for (int i = 0; i < 1000; ++i) b += "18:postfix exact.test,";
      return b;
    }();
    auto last_progress = std::chrono::steady_clock::now();
    while (sent_ < (32u << 20) && since(last_progress) < quiet) {
      // The stream stays well-formed across partial sends: go on where the last one ended.
      const std::size_t pos = sent_ % burst.size();
      const ssize_t n = ::send(fd_, burst.data() + pos, burst.size() - pos, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent_ += static_cast<std::size_t>(n);
        last_progress = std::chrono::steady_clock::now();
      } else {
        pollfd p{fd_, POLLOUT, 0};
        ::poll(&p, 1, 10);
      }
    }
    return sent_;
  }
  // Waits for the server to close the connection, without reading (which would let it go on).
  bool wait_closed(Ms timeout) {
    pollfd p{fd_, POLLRDHUP, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 && (p.revents & (POLLERR | POLLHUP | POLLRDHUP)) != 0;
  }

 private:
  int fd_ = -1;
  std::size_t sent_ = 0;
};

class TlsmapAbuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 8192);
    setrlimit(RLIMIT_NOFILE, &rl);
    dns_ = std::make_unique<DnsServer>("127.0.0.1", static_cast<std::uint16_t>(free_tcp_port()), dir_.path());
    dns_->add_mx("exact.test", "mail.exact.test", 10);
    RedisOptions ro;
    ro.address = redis_.address();
    pool_ = std::make_unique<Pool>(ro);
    store_ = std::make_unique<PolicyStore>(*pool_, StoreOptions{});
    put("exact.test", policy_entry(Mode::enforce, "x1", {"mail.exact.test"}, now()));
  }
  void put(const std::string& domain, const CacheEntry& e) {
    store_->put(*Domain::parse(domain).domain, e, now(), false);
  }
  std::unique_ptr<TlsmapDaemon> start(std::vector<std::string> lines) {
    dns_->start();
    TlsmapOptions o;
    o.redis_address = redis_.address();
    o.tlsmap_lines = std::move(lines);
    o.tlsmap_lines.push_back("resolver = " + dns_->resolver());
    o.tlsmap_lines.push_back("log-level = info");  // a line per reply would be the test's cost
    return std::make_unique<TlsmapDaemon>(dir_.path(), o);
  }
  // What Postfix's smtp does: a new connection, one request, read the reply. Returns the reply
  // and how long it took; "" when the server closed the connection.
  std::pair<std::string, Ms> postfix_like(const TlsmapDaemon& d, const std::string& domain) {
    const auto t0 = std::chrono::steady_clock::now();
    SocketmapClient c(d.listen());
    std::string r = c.query("postfix " + domain);
    return {r, since(t0)};
  }

  TempDir dir_{"tlsmap-abuse"};
  RedisServer redis_;
  std::unique_ptr<DnsServer> dns_;
  std::unique_ptr<Pool> pool_;
  std::unique_ptr<PolicyStore> store_;
};

// Slowloris: every slot is taken by a client that sends a byte every 2 s and never finishes
// its request. Postfix-like clients still get their answers, one after another.
TEST_F(TlsmapAbuseTest, SlowlorisClientsCannotTakeTheSlotsPostfixNeeds) {
  constexpr int kSlots = 20;
  auto d = start({"max-connections = " + std::to_string(kSlots), "request-timeout = 60s"});
  std::vector<std::unique_ptr<SocketmapClient>> loris;
  for (int i = 0; i < kSlots; ++i) {
    loris.push_back(std::make_unique<SocketmapClient>(d->listen()));
    loris.back()->send_raw("9");
  }
  std::atomic<bool> done{false};
  std::thread dribble([&] {
    const std::string body = "999:postfix slow.test";
    for (std::size_t i = 0; !done.load(); ++i) {
      for (auto& c : loris) try {
          c->send_raw(std::string(1, body[i % body.size()]));
        } catch (const std::exception&) {  // closed by the server: that is allowed
        }
      for (int k = 0; k < 20 && !done.load(); ++k) std::this_thread::sleep_for(100ms);
    }
  });
  std::this_thread::sleep_for(2500ms);  // every slot taken, each has dribbled
  std::vector<Ms> took;
  for (int i = 0; i < 30; ++i) {
    const auto [reply, t] = postfix_like(*d, "exact.test");
    EXPECT_EQ(reply, kExactReply) << "request " << i;
    took.push_back(t);
  }
  done = true;
  dribble.join();
  std::printf("postfix-like clients beside %d slowloris clients: p50 %lld ms, max %lld ms\n", kSlots,
              static_cast<long long>(percentile(took, 0.5).count()), static_cast<long long>(percentile(took, 1.0).count()));
  EXPECT_LT(percentile(took, 1.0), 5s);
}

// A client that pipelines requests and never reads: each of max-connections such clients is
// stopped at a bound, the server's memory stays small, and Postfix-like clients are answered.
TEST_F(TlsmapAbuseTest, UnreadPipelinesCannotTakeTheSlotsNorTheMemory) {
  constexpr int kSlots = 6;
  auto d = start({"max-connections = " + std::to_string(kSlots), "request-timeout = 60s"});
  const long rss_before = rss_kib(d->process().pid());
  std::vector<std::unique_ptr<GreedyClient>> greedy;
  std::size_t total = 0;
  for (int i = 0; i < kSlots; ++i) {
    greedy.push_back(std::make_unique<GreedyClient>(d->port()));
    const std::size_t sent = greedy.back()->pipeline(1s);
    EXPECT_LT(sent, 32u << 20) << "the server kept reading a client that never reads";
    total += sent;
  }
  const long rss_after = rss_kib(d->process().pid());
  std::printf("%d unread pipelines: %zu bytes of requests taken in all; server RSS %ld -> %ld KiB\n", kSlots, total,
              rss_before, rss_after);
  EXPECT_LT(rss_after - rss_before, 48 * 1024) << "KiB";
  std::vector<Ms> took;
  for (int i = 0; i < 10; ++i) {
    const auto [reply, t] = postfix_like(*d, "exact.test");
    EXPECT_EQ(reply, kExactReply) << "request " << i;
    took.push_back(t);
  }
  std::printf("postfix-like clients beside them: max %lld ms\n", static_cast<long long>(percentile(took, 1.0).count()));
  EXPECT_LT(percentile(took, 1.0), 5s);
}

// Without anyone else wanting a slot: a request dribbled a byte at a time, and a pipeline whose
// replies are never read, are closed after request-timeout.
TEST_F(TlsmapAbuseTest, SlowRequestsAndUnreadRepliesAreClosedAfterRequestTimeout) {
  auto d = start({"request-timeout = 2s"});
  SocketmapClient loris(d->listen());
  GreedyClient greedy(d->port());
  greedy.pipeline(500ms);
  const auto t0 = std::chrono::steady_clock::now();
  bool loris_closed = false;
  loris.send_raw("9999:postfix ");  // a byte at a time from here: never whole within the test
  while (since(t0) < 15s && !loris_closed) {
    try {
      loris.send_raw("a");
    } catch (const std::exception&) {
      loris_closed = true;
    }
    if (!loris_closed && loris.receive(300ms).empty() && loris.closed()) loris_closed = true;
  }
  EXPECT_TRUE(loris_closed) << "a request dribbled a byte at a time for " << since(t0).count() << " ms";
  EXPECT_TRUE(d->wait_log("took past request-timeout", 10s));
  EXPECT_TRUE(greedy.wait_closed(10s)) << "a client that never reads its replies";
  const auto [reply, t] = postfix_like(*d, "exact.test");
  EXPECT_EQ(reply, kExactReply);
}

// Issue 18 defect 9: lookups for many domains whose DNS never answers keep every worker that
// DNS may use busy; lookups that Redis alone answers keep their latency meanwhile.
TEST_F(TlsmapAbuseTest, RedisLookupsKeepTheirLatencyWhileDnsHangs) {
  constexpr int kHanging = 200;
  for (int i = 0; i < kHanging; ++i) {
    const std::string name = "hang" + std::to_string(i) + ".test";
    put(name, policy_entry(Mode::enforce, "h1", {"*." + name}, now()));  // needs the MX set
    dns_->set_failure(name, DnsFailure::timeout);
  }
  constexpr int kFast = 400;
  for (int i = 0; i < kFast; ++i) {
    const std::string name = "r" + std::to_string(i) + ".test";
    put(name, policy_entry(Mode::enforce, "r1", {"mail." + name}, now()));  // needs no DNS (dane = no)
  }
  auto d = start({"dane = no", "dns-timeout = 2000ms", "dns-retries = 1", "workers = 8", "dns-workers = 8"});
  std::atomic<bool> done{false};
  std::atomic<int> next_hang{0};
  std::vector<std::thread> slow;
  for (int k = 0; k < 16; ++k)
    slow.emplace_back([&] {
      SocketmapClient c(d->listen());
      while (!done.load()) {
        const int i = next_hang.fetch_add(1) % kHanging;
        c.send("postfix hang" + std::to_string(i) + ".test");
        c.receive(30s);
      }
    });
  std::this_thread::sleep_for(500ms);  // the DNS lookups are under way
  SocketmapClient c(d->listen());
  std::vector<Ms> took;
  const auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < kFast && since(begin) < 30s; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string name = "r" + std::to_string(i) + ".test";
    EXPECT_EQ(c.query("postfix " + name), "OK secure match=mail." + name + " servername=hostname");
    took.push_back(since(t0));
  }
  done = true;
  std::printf("Redis lookups while %d domains' DNS hangs: p50 %lld ms, p99 %lld ms, max %lld ms (%d lookups)\n",
              kHanging, static_cast<long long>(percentile(took, 0.5).count()),
              static_cast<long long>(percentile(took, 0.99).count()),
              static_cast<long long>(percentile(took, 1.0).count()), static_cast<int>(took.size()));
  // Generous: a shared, loaded test machine. Behind the DNS lookups they wait seconds.
  EXPECT_LT(percentile(took, 0.99), 1000ms);
  for (auto& t : slow) t.join();
}

}  // namespace
}  // namespace mtasts::test
