// The server over loopback sockets with a scripted handler: replies in request order however
// workers finish, inline answers never overtake earlier requests, a full worker queue answers
// TEMP at once, protocol errors close only their connection, max-connections holds. Nothing
// waits on wall time: workers are released by the test, and reads block until data arrives
// (with a generous safety timeout so that a bug fails instead of hanging).
#include "tlsmap/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ctime>

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tlsmap/listen.hpp"

namespace mtasts::tlsmap {
namespace {

// "fast X" is answered inline; "slow X" by a worker once the test releases X.
class ScriptedHandler final : public Handler {
 public:
  std::optional<std::string> answer_fast(std::string_view req) override {
    if (req.starts_with("fast ")) return "OK " + std::string(req.substr(5));
    return std::nullopt;
  }
  std::string answer(std::string_view req) override {
    const std::string name(req.substr(5));
    std::unique_lock lk(mu_);
    started_.insert(name);
    cv_.notify_all();
    cv_.wait(lk, [&] { return released_.count(name) > 0; });
    return "OK " + name;
  }
  // "dns X": a lookup worker hands the rest to a DNS worker, which waits until X is released.
  StagedAnswer answer_staged(std::string_view req) override {
    if (!req.starts_with("dns ")) return {answer(req), {}};
    const std::string name(req.substr(4));
    return {{}, [this, name] { return answer("slow " + name); }};
  }
  void release(const std::string& name) {
    std::lock_guard lk(mu_);
    released_.insert(name);
    cv_.notify_all();
  }
  void wait_started(const std::string& name) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return started_.count(name) > 0; });
  }
  // Waits until `n` of `names` have started (in whatever order workers took them).
  void wait_started_some(const std::set<std::string>& names, std::size_t n) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] {
      std::size_t k = 0;
      for (const auto& x : names) k += started_.count(x);
      return k >= n;
    });
  }
  void release_all() {
    std::lock_guard lk(mu_);
    for (int i = 0; i < 100; ++i) released_.insert("s" + std::to_string(i));
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> released_, started_;
};

class Client {
 public:
  explicit Client(unsigned port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("connect");
  }
  ~Client() { ::close(fd_); }
  void send_raw(const std::string& s) { ASSERT_EQ(::send(fd_, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size())); }
  void send(const std::string& req) { send_raw(netstring(req)); }
  // The next reply payload; "" with *eof set when the server closed the connection.
  std::string recv(bool* eof = nullptr) {
    NetstringReader r(200000);
    for (;;) {
      while (off_ < buf_.size()) {
        off_ += r.feed(std::string_view(buf_).substr(off_));
        if (r.state() == NetstringReader::State::complete) return r.take();
        if (r.state() == NetstringReader::State::error) return "bad reply: " + r.error();
      }
      buf_.clear();
      off_ = 0;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20000) != 1) return "timeout";
      char tmp[4096];
      const ssize_t n = ::read(fd_, tmp, sizeof tmp);
      if (n <= 0) {
        if (eof) *eof = true;
        return "";
      }
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  bool closed_by_server() {
    bool eof = false;
    recv(&eof);
    return eof;
  }

 private:
  int fd_;
  std::string buf_;
  std::size_t off_ = 0;
};

class ServerTest : public ::testing::Test {
 protected:
  void start(ServerOptions o = {}) {
    server_ = std::make_unique<Server>(handler_, o);
    UniqueFd l = open_listener("inet:127.0.0.1:0", 0666, DaemonConfig{});
    port_ = bound_port(l.get());
    server_->add_listener(std::move(l));
    thread_ = std::thread([this] { server_->run(); });
  }
  void TearDown() override {
    handler_.release_all();
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  ScriptedHandler handler_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  unsigned port_ = 0;
};

TEST_F(ServerTest, PipelinedRepliesComeInRequestOrder) {
  ServerOptions o;
  o.workers = 3;
  start(o);
  Client c(port_);
  // One write, four requests; the workers finish in the reverse order.
  c.send_raw(netstring("slow s1") + netstring("fast f2") + netstring("slow s3") + netstring("slow s4"));
  handler_.wait_started("s4");
  handler_.wait_started("s3");
  handler_.release("s4");
  handler_.release("s3");
  handler_.wait_started("s1");
  handler_.release("s1");
  EXPECT_EQ(c.recv(), "OK s1");
  EXPECT_EQ(c.recv(), "OK f2");
  EXPECT_EQ(c.recv(), "OK s3");
  EXPECT_EQ(c.recv(), "OK s4");
  // The connection carries on.
  c.send("fast again");
  EXPECT_EQ(c.recv(), "OK again");
}

TEST_F(ServerTest, ManyPipelinedRequestsBeyondTheInFlightBound) {
  ServerOptions o;
  o.max_pipeline = 4;
  start(o);
  Client c(port_);
  std::string all;
  for (int i = 0; i < 500; ++i) all += netstring("fast " + std::to_string(i));
  c.send_raw(all);
  for (int i = 0; i < 500; ++i) ASSERT_EQ(c.recv(), "OK " + std::to_string(i));
}

TEST_F(ServerTest, FullQueueAnswersTempAtOnce) {
  ServerOptions o;
  o.workers = 1;
  o.queue_size = 1;
  start(o);
  Client c(port_);
  c.send("slow s1");
  handler_.wait_started("s1");  // the worker holds s1; the queue is empty
  c.send("slow s2");            // queued
  c.send("slow s3");            // queue full
  c.send("fast f4");
  // s1 stays held until the server has taken all four in (else s2 could leave the queue
  // and make room for s3): wait for the busy count, polling, bounded.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (server_->counters().requests.load() < 4 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  handler_.release("s1");
  handler_.release("s2");
  EXPECT_EQ(c.recv(), "OK s1");
  EXPECT_EQ(c.recv(), "OK s2");
  EXPECT_EQ(c.recv(), "TEMP server busy");
  EXPECT_EQ(c.recv(), "OK f4");
  EXPECT_EQ(server_->counters().busy.load(), 1u);
}

TEST_F(ServerTest, OversizedNetstringClosesOnlyThatConnection) {
  start();
  Client bad(port_), good(port_);
  bad.send_raw("10001:");
  EXPECT_TRUE(bad.closed_by_server());
  good.send("fast still-here");
  EXPECT_EQ(good.recv(), "OK still-here");
  EXPECT_EQ(server_->counters().protocol_errors.load(), 1u);
}

TEST_F(ServerTest, GarbageClosesTheConnection) {
  start();
  Client c(port_);
  c.send_raw("GET / HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(ServerTest, RepliesBeforeAProtocolErrorAreSent) {
  start();
  Client c(port_);
  c.send_raw(netstring("fast a") + "3:abcd");
  EXPECT_EQ(c.recv(), "OK a");
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(ServerTest, MaxConnectionsGivesUpTheLeastActiveForANewOne) {
  // Slots full of connections that do nothing (or dribble a request): a new client still gets
  // a slot, and the one that made progress least recently is the one closed.
  ServerOptions o;
  o.max_connections = 2;
  start(o);
  Client a(port_), b(port_);
  a.send_raw("6:fast");  // a request begun, never finished: no progress since it connected
  b.send("fast b");
  EXPECT_EQ(b.recv(), "OK b");
  Client extra(port_);
  extra.send("fast c");
  EXPECT_EQ(extra.recv(), "OK c");
  EXPECT_TRUE(a.closed_by_server());
  b.send("fast b2");
  EXPECT_EQ(b.recv(), "OK b2") << "the more recently active one stays";
  EXPECT_EQ(server_->counters().evicted.load(), 1u);
}

TEST_F(ServerTest, MaxConnectionsRefusesOnlyWhenEveryConnectionIsBusy) {
  ServerOptions o;
  o.max_connections = 2;
  start(o);
  Client a(port_), b(port_);
  a.send("slow s1");
  b.send("slow s2");
  handler_.wait_started("s1");
  handler_.wait_started("s2");
  Client extra(port_);
  extra.send("fast c");
  EXPECT_TRUE(extra.closed_by_server()) << "requests at workers are never given up";
  handler_.release("s1");
  handler_.release("s2");
  EXPECT_EQ(a.recv(), "OK s1");
  EXPECT_EQ(b.recv(), "OK s2");
}

TEST_F(ServerTest, LookupsNeverWaitBehindTheDnsPart) {
  // Every DNS worker waits on DNS that does not answer, with more DNS work queued behind: a
  // lookup that needs no DNS is answered by a lookup worker meanwhile.
  ServerOptions o;
  o.workers = 2;
  o.dns_workers = 2;
  start(o);
  Client stuck(port_);
  stuck.send_raw(netstring("dns s1") + netstring("dns s2") + netstring("dns s3") + netstring("dns s4"));
  handler_.wait_started_some({"s1", "s2", "s3", "s4"}, 2);  // both DNS workers busy, two queued
  Client other(port_);
  other.send("slow s5");
  handler_.release("s5");
  EXPECT_EQ(other.recv(), "OK s5");
  for (const char* n : {"s1", "s2", "s3", "s4"}) handler_.release(n);
  for (const char* r : {"OK s1", "OK s2", "OK s3", "OK s4"}) EXPECT_EQ(stuck.recv(), r);
}

// Out of descriptors: accept() fails with EMFILE while the listener stays readable.
class OutOfDescriptors {
 public:
  OutOfDescriptors() {
    for (int fd; (fd = ::dup(0)) >= 0;) fds_.push_back(fd);
  }
  ~OutOfDescriptors() { give_back(); }
  void free_one() {
    ::close(fds_.back());
    fds_.pop_back();
  }
  void give_back() {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
  }

 private:
  std::vector<int> fds_;
};

class LowDescriptorLimit {
 public:
  LowDescriptorLimit() {
    getrlimit(RLIMIT_NOFILE, &old_);
    rlimit low = old_;
    low.rlim_cur = 256;
    setrlimit(RLIMIT_NOFILE, &low);
  }
  ~LowDescriptorLimit() { setrlimit(RLIMIT_NOFILE, &old_); }

 private:
  rlimit old_{};
};

std::chrono::nanoseconds cpu_time(std::thread& t) {
  clockid_t id{};
  pthread_getcpuclockid(t.native_handle(), &id);
  timespec ts{};
  clock_gettime(id, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

TEST_F(ServerTest, OutOfDescriptorsAnIdleConnectionMakesRoom) {
  LowDescriptorLimit limit;
  start();
  Client idle(port_);
  idle.send("fast a");
  EXPECT_EQ(idle.recv(), "OK a");
  OutOfDescriptors none;
  none.free_one();  // for the new client's own socket
  Client extra(port_);
  extra.send("fast b");
  EXPECT_EQ(extra.recv(), "OK b") << server_->counters().summary();
  EXPECT_TRUE(idle.closed_by_server());
}

TEST_F(ServerTest, OutOfDescriptorsWithEveryConnectionBusyNeverSpins) {
  // No connection can be given up (each has a lookup under way) and accept() has no
  // descriptor: the event loop waits instead of retrying at once, forever.
  LowDescriptorLimit limit;
  ServerOptions o;
  o.workers = 2;
  start(o);
  Client a(port_), b(port_);
  a.send("slow s1");
  b.send("slow s2");
  handler_.wait_started("s1");
  handler_.wait_started("s2");
  std::optional<Client> extra;
  {
    OutOfDescriptors none;
    none.free_one();
    extra.emplace(port_);  // the kernel completes the connection; accept() cannot take it
    const auto cpu0 = cpu_time(thread_);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const auto used = std::chrono::duration_cast<std::chrono::milliseconds>(cpu_time(thread_) - cpu0);
    std::printf("event loop CPU while out of descriptors: %lld ms in 500 ms\n", static_cast<long long>(used.count()));
    EXPECT_LT(used.count(), 200);
  }
  // Descriptors back: the waiting connection is taken and served.
  handler_.release("s1");
  handler_.release("s2");
  EXPECT_EQ(a.recv(), "OK s1");
  EXPECT_EQ(b.recv(), "OK s2");
  extra->send("fast c");
  EXPECT_EQ(extra->recv(), "OK c");
}

TEST_F(ServerTest, ClientClosingWithRequestsInFlightIsHarmless) {
  start();
  {
    Client c(port_);
    c.send("slow s1");
    handler_.wait_started("s1");
  }  // closed before its reply
  handler_.release("s1");
  Client d(port_);
  d.send("fast ok");
  EXPECT_EQ(d.recv(), "OK ok");
}

TEST_F(ServerTest, StopAnswersRequestsInFlight) {
  start();
  Client c(port_);
  c.send("slow s1");
  handler_.wait_started("s1");
  server_->stop();
  handler_.release("s1");
  EXPECT_EQ(c.recv(), "OK s1");
  thread_.join();
}


TEST_F(ServerTest, HalfClosedClientStillGetsEveryReply) {
  // A client that sends many pipelined requests and shuts down its side at once: every
  // request is answered before the server closes (more than max_pipeline of them).
  ServerOptions o;
  o.max_pipeline = 4;
  start(o);
  Client c(port_);
  std::string all;
  for (int i = 0; i < 100; ++i) all += netstring("fast " + std::to_string(i));
  c.send_raw(all);
  c.shutdown_write();
  for (int i = 0; i < 100; ++i) ASSERT_EQ(c.recv(), "OK " + std::to_string(i));
  EXPECT_TRUE(c.closed_by_server());
}

}  // namespace
}  // namespace mtasts::tlsmap
