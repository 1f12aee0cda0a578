// The Redis client layer against a real redis-server on a private unix socket: commands,
// pipelines, binary safety, error replies, a server killed and restarted, a stopped server
// (every call returns within its timeout), ACL authentication, database selection, pub/sub.
#include "common/fleet/redis.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <thread>

#include "tests/support/redis_server.hpp"

namespace mtasts {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using test::RedisServer;

RedisOptions options_for(const RedisServer& s) {
  RedisOptions o;
  o.address = s.address();
  o.connect_timeout = 500ms;
  o.command_timeout = 500ms;
  o.pool_size = 4;
  return o;
}

// `threads` threads each running INCR counter `each` times through the pool; the number of
// commands that failed.
int incr_from_threads(Pool& pool, int threads, int each) {
  std::atomic<int> errors{0};
  std::vector<std::thread> running;
  for (int t = 0; t < threads; ++t) {
    running.emplace_back([&] {
      for (int i = 0; i < each; ++i) {
        try {
          pool.lease()->command({"INCR", "counter"});
        } catch (const RedisError&) {
          ++errors;
        }
      }
    });
  }
  for (auto& th : running) th.join();
  return errors.load();
}

// SIGSTOP for the life of the object: the server accepts connections (the kernel does) but
// never answers. SIGCONT on every exit path, so that the server can be torn down.
class Stopped {
 public:
  explicit Stopped(pid_t pid) : pid_(pid) { ::kill(pid_, SIGSTOP); }
  ~Stopped() { ::kill(pid_, SIGCONT); }
  Stopped(const Stopped&) = delete;
  Stopped& operator=(const Stopped&) = delete;
 private:
  pid_t pid_;
};

long long elapsed_ms(steady_clock::time_point since) {
  return std::chrono::duration_cast<milliseconds>(steady_clock::now() - since).count();
}

// Runs f, which must throw RedisError; returns it.
template <class F>
RedisError expect_redis_error(F f) {
  try {
    f();
  } catch (const RedisError& e) {
    return e;
  }
  ADD_FAILURE() << "no RedisError";
  return RedisError(RedisError::Kind::io, "none");
}

const char* kind_name(RedisError::Kind k) {
  switch (k) {
    case RedisError::Kind::io: return "io";
    case RedisError::Kind::timeout: return "timeout";
    case RedisError::Kind::protocol: return "protocol";
    case RedisError::Kind::reply: return "reply";
    case RedisError::Kind::auth: return "auth";
    case RedisError::Kind::closed: return "closed";
  }
  return "?";
}

class RedisTest : public ::testing::Test {
 protected:
  RedisServer server_;
};

TEST_F(RedisTest, CommandsAndReplyTypes) {
  Connection c = Connection::open(options_for(server_));
  Reply ok = c.command({"SET", "k", "v"});
  EXPECT_TRUE(ok.is_string());
  EXPECT_EQ(ok.str(), "OK");
  EXPECT_EQ(c.command({"GET", "k"}).str(), "v");
  EXPECT_TRUE(c.command({"GET", "missing"}).is_nil());
  Reply n = c.command({"INCRBY", "n", "41"});
  ASSERT_TRUE(n.is_integer());
  EXPECT_EQ(n.integer(), 41);
  c.command({"RPUSH", "l", "a", "b", "c"});
  Reply l = c.command({"LRANGE", "l", "0", "-1"});
  ASSERT_TRUE(l.is_array());
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l.at(2).str(), "c");
  EXPECT_THROW(l.at(3), RedisError);
  EXPECT_THROW((void)n.str(), RedisError);
  EXPECT_THROW((void)ok.integer(), RedisError);
  EXPECT_FALSE(c.broken());
  EXPECT_EQ(server_.cli({"GET", "k"}), "v");
}

TEST_F(RedisTest, PipelineKeepsOrder) {
  Connection c = Connection::open(options_for(server_));
  std::vector<std::string> keys, values;
  for (int i = 0; i < 200; ++i) {
    keys.push_back("p" + std::to_string(i));
    values.push_back(std::string(static_cast<std::size_t>(i), 'x'));
  }
  std::vector<std::vector<std::string_view>> cmds;
  for (int i = 0; i < 200; ++i) cmds.push_back({"SET", keys[i], values[i]});
  for (int i = 0; i < 200; ++i) cmds.push_back({"STRLEN", keys[i]});
  auto replies = c.pipeline(cmds);
  ASSERT_EQ(replies.size(), 400u);
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(replies[i].str(), "OK");
    EXPECT_EQ(replies[200 + i].integer(), i);
  }
  EXPECT_TRUE(c.pipeline({}).empty());
}

TEST_F(RedisTest, BinarySafeKeysAndValues) {
  Connection c = Connection::open(options_for(server_));
  const std::string key = std::string("key with spaces\r\n and \0 nul", 27);
  std::string value;
  for (int i = 0; i < 256; ++i) value.push_back(static_cast<char>(i));
  value += "\r\n$3\r\nfoo\r\n*1\r\n";  // protocol-looking bytes inside a value
  c.command({"SET", key, value});
  EXPECT_EQ(c.command({"GET", key}).str(), value);
  const std::string big(1 << 20, '\xab');
  c.command({"SET", "big", big});
  EXPECT_EQ(c.command({"GET", "big"}).str(), big);
  EXPECT_EQ(c.command({"SET", "empty", ""}).str(), "OK");
  EXPECT_EQ(c.command({"GET", "empty"}).str(), "");
  EXPECT_FALSE(c.command({"GET", "empty"}).is_nil());
}

TEST_F(RedisTest, ServerErrorRepliesKeepTheConnectionUsable) {
  Connection c = Connection::open(options_for(server_));
  RedisError e = expect_redis_error([&] { c.command({"NOSUCHCOMMAND", "x"}); });
  EXPECT_EQ(e.kind(), RedisError::Kind::reply);
  EXPECT_NE(std::string(e.what()).find("unknown command"), std::string::npos) << e.what();
  EXPECT_FALSE(c.broken());
  EXPECT_EQ(c.command({"PING"}).str(), "PONG");

  c.command({"SET", "s", "string"});
  e = expect_redis_error([&] { c.command({"LPUSH", "s", "x"}); });
  EXPECT_NE(std::string(e.what()).find("WRONGTYPE"), std::string::npos);

  // An error in the middle of a pipeline: every reply is read, then the error is thrown, and
  // the next command gets its own reply (not a stale one).
  e = expect_redis_error([&] { c.pipeline({{"SET", "a", "1"}, {"LPUSH", "s", "x"}, {"SET", "b", "2"}}); });
  EXPECT_EQ(e.kind(), RedisError::Kind::reply);
  EXPECT_EQ(c.command({"GET", "b"}).str(), "2");
  EXPECT_EQ(c.command({"ECHO", "in sync"}).str(), "in sync");

  // MULTI/EXEC with a failing command inside: the EXEC array carries the error.
  e = expect_redis_error([&] { c.pipeline({{"MULTI"}, {"SET", "c", "3"}, {"LPUSH", "s", "x"}, {"EXEC"}}); });
  EXPECT_NE(std::string(e.what()).find("WRONGTYPE"), std::string::npos) << e.what();
  EXPECT_EQ(c.command({"GET", "c"}).str(), "3");
  EXPECT_FALSE(c.broken());
}

TEST_F(RedisTest, RedisKilledAndBack) {
  Pool pool(options_for(server_));
  {
    auto lease = pool.lease();
    lease->command({"SET", "before", "1"});
  }
  auto held = pool.lease();  // in use while Redis dies
  held->command({"PING"});

  server_.kill();
  // A command on a connection whose server died: a clear error, and no SIGPIPE kills us
  // (the 1 MiB value makes the write hit the closed socket).
  const std::string big(1 << 20, 'x');
  RedisError e = expect_redis_error([&] { held->command({"SET", "k", big}); });
  EXPECT_TRUE(e.kind() == RedisError::Kind::closed || e.kind() == RedisError::Kind::io) << kind_name(e.kind()) << " " << e.what();
  EXPECT_TRUE(held->broken());
  // New leases fail fast while Redis is down.
  for (int i = 0; i < 3; ++i) {
    const auto t0 = steady_clock::now();
    e = expect_redis_error([&] { pool.lease()->command({"PING"}); });
    EXPECT_LT(elapsed_ms(t0), 600) << e.what();
    EXPECT_NE(std::string(e.what()).find("redis"), std::string::npos) << e.what();
  }

  server_.start();
  // The pool reconnects by itself; the broken connection is not handed out again.
  {
    auto lease = pool.lease();
    EXPECT_EQ(lease->command({"PING"}).str(), "PONG");
    EXPECT_TRUE(lease->command({"GET", "before"}).is_nil()) << "a fresh server";
    lease->command({"SET", "after", "2"});
  }
  { Pool::Lease dropped = std::move(held); }  // a broken connection goes back: it is closed
  for (int i = 0; i < 10; ++i) EXPECT_EQ(pool.lease()->command({"GET", "after"}).str(), "2");
}

TEST_F(RedisTest, IdleConnectionsAreCheckedAfterARestart) {
  Pool pool(options_for(server_));
  {
    auto a = pool.lease();
    auto b = pool.lease();
    a->command({"PING"});
    b->command({"PING"});
  }  // two idle connections, both to the old server
  server_.kill();
  server_.start();
  // The first command after the restart already succeeds: stale idle connections are dropped.
  EXPECT_EQ(pool.lease()->command({"PING"}).str(), "PONG");
  EXPECT_EQ(pool.lease()->command({"PING"}).str(), "PONG");
}

TEST_F(RedisTest, CommandNeverBlocksPastItsTimeout) {
  RedisOptions o = options_for(server_);
  o.command_timeout = 200ms;
  Pool pool(o);
  auto lease = pool.lease();
  lease->command({"PING"});
  const pid_t pid = server_.pid();
  ASSERT_GT(pid, 0);
  {
    Stopped stopped(pid);
    const auto t0 = steady_clock::now();
    RedisError e = expect_redis_error([&] { lease->command({"GET", "k"}); });
    const auto ms = elapsed_ms(t0);
    EXPECT_EQ(e.kind(), RedisError::Kind::timeout) << e.what();
    EXPECT_GE(ms, 190);
    EXPECT_LT(ms, 200 + 150) << "blocked past the command timeout";
    EXPECT_TRUE(lease->broken()) << "a reply may still arrive: the connection is out of sync";
  }
}

TEST_F(RedisTest, PipelineNeverBlocksPastItsTimeout) {
  RedisOptions o = options_for(server_);
  o.command_timeout = 150ms;
  Connection c = Connection::open(o);
  const pid_t pid = server_.pid();
  ASSERT_GT(pid, 0);
  Stopped stopped(pid);
  std::vector<std::vector<std::string_view>> cmds(50, std::vector<std::string_view>{"PING"});
  const auto t0 = steady_clock::now();
  RedisError e = expect_redis_error([&] { c.pipeline(cmds); });
  EXPECT_EQ(e.kind(), RedisError::Kind::timeout) << e.what();
  EXPECT_LT(elapsed_ms(t0), 150 + 150);
  EXPECT_THROW(c.command({"PING"}), RedisError) << "a broken connection refuses further use";
}

TEST_F(RedisTest, ConnectToAStoppedServerIsBounded) {
  RedisOptions o = options_for(server_);
  o.connect_timeout = 250ms;
  const pid_t pid = server_.pid();
  ASSERT_GT(pid, 0);
  Stopped stopped(pid);
  Pool pool(o);
  const auto t0 = steady_clock::now();
  RedisError e = expect_redis_error([&] { pool.lease(); });
  const auto ms = elapsed_ms(t0);
  EXPECT_EQ(e.kind(), RedisError::Kind::timeout) << e.what();
  EXPECT_GE(ms, 240);
  EXPECT_LT(ms, 250 + 150);
  EXPECT_NE(std::string(e.what()).find(server_.address()), std::string::npos) << e.what();
}

TEST(RedisConnect, ListenerThatNeverAcceptsIsBounded) {
  test::TempDir dir("redis-blackhole");
  const std::string path = (dir / "hole.sock").string();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 0), 0);  // never accept()ed
  RedisOptions o;
  o.address = "unix:" + path;
  o.connect_timeout = 200ms;
  for (int i = 0; i < 3; ++i) {  // the first fills the backlog, the next find it full
    const auto t0 = steady_clock::now();
    RedisError e = expect_redis_error([&] { Connection::open(o); });
    EXPECT_EQ(e.kind(), RedisError::Kind::timeout) << i << ": " << e.what();
    EXPECT_LT(elapsed_ms(t0), 200 + 150) << i;
  }
  ::close(fd);
}

TEST(RedisConnect, NothingListeningFailsFast) {
  test::TempDir dir("redis-none");
  RedisOptions o;
  o.address = (dir / "nobody.sock").string();
  RedisError e = expect_redis_error([&] { Connection::open(o); });
  EXPECT_EQ(e.kind(), RedisError::Kind::io) << e.what();
  EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();

  // A closed TCP port on loopback: refused at once.
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(0x7f000001);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&in), sizeof in), 0);
  socklen_t len = sizeof in;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&in), &len);
  ::close(s);  // the port is now closed
  o.address = "127.0.0.1:" + std::to_string(ntohs(in.sin_port));
  const auto t0 = steady_clock::now();
  e = expect_redis_error([&] { Connection::open(o); });
  EXPECT_LT(elapsed_ms(t0), 200);
  EXPECT_NE(std::string(e.what()).find("refused"), std::string::npos) << e.what();
}

TEST(RedisAuth, AclUserAndPassword) {
  RedisServer server("user milter on >milterpw resetkeys ~mta-sts:* resetchannels &mta-sts:* +@all -@dangerous\n"
                     "user default on nopass ~* &* +@all\n");
  RedisOptions o = options_for(server);
  o.user = "milter";
  o.password = "milterpw";
  Connection c = Connection::open(o);
  EXPECT_EQ(c.command({"ACL", "WHOAMI"}).str(), "milter");
  c.command({"SET", "mta-sts:x", "1"});
  RedisError e = expect_redis_error([&] { c.command({"SET", "other:x", "1"}); });
  EXPECT_EQ(e.kind(), RedisError::Kind::auth) << e.what();
  EXPECT_NE(std::string(e.what()).find("NOPERM"), std::string::npos) << e.what();
  EXPECT_FALSE(c.broken());

  o.password = "wrong";
  e = expect_redis_error([&] { Connection::open(o); });
  EXPECT_EQ(e.kind(), RedisError::Kind::auth) << e.what();
  EXPECT_EQ(std::string(e.what()).find("wrong"), std::string::npos) << "the password must not be echoed";

  // Password only: AUTH PASSWORD authenticates the default user.
  server.cli({"ACL", "SETUSER", "default", "resetpass", ">defaultpw"});
  RedisOptions d = options_for(server);
  d.password = "defaultpw";
  Connection dc = Connection::open(d);
  EXPECT_EQ(dc.command({"ACL", "WHOAMI"}).str(), "default");
  d.password = "nope";
  EXPECT_EQ(expect_redis_error([&] { Connection::open(d); }).kind(), RedisError::Kind::auth);
  d.password.clear();
  e = expect_redis_error([&] { Connection::open(d).command({"GET", "x"}); });
  EXPECT_EQ(e.kind(), RedisError::Kind::auth) << e.what();  // NOAUTH
}

TEST_F(RedisTest, SelectsTheDatabase) {
  RedisOptions o = options_for(server_);
  o.db = 5;
  Connection c = Connection::open(o);
  c.command({"SET", "in-db-5", "yes"});
  EXPECT_EQ(server_.cli({"-n", "5", "GET", "in-db-5"}), "yes");
  EXPECT_EQ(server_.cli({"-n", "0", "EXISTS", "in-db-5"}), "0");
  o.db = 99;
  EXPECT_EQ(expect_redis_error([&] { Connection::open(o); }).kind(), RedisError::Kind::reply);
}

TEST_F(RedisTest, SubscriberReadsPublishedMessages) {
  const RedisOptions o = options_for(server_);
  Connection sub = Connection::open(o);
  sub.send({"SUBSCRIBE", "chan"});
  auto confirm = sub.read(2s);
  ASSERT_TRUE(confirm);
  ASSERT_EQ(confirm->size(), 3u);
  EXPECT_EQ(confirm->at(0).str(), "subscribe");
  EXPECT_EQ(confirm->at(1).str(), "chan");

  // Nothing published: a timeout is not an error and the connection stays usable.
  const auto t0 = steady_clock::now();
  EXPECT_FALSE(sub.read(100ms));
  EXPECT_GE(elapsed_ms(t0), 95);
  EXPECT_LT(elapsed_ms(t0), 300);
  EXPECT_FALSE(sub.broken());
  EXPECT_FALSE(sub.poolable()) << "a subscribed connection must never go back to a pool";

  Connection pub = Connection::open(o);
  EXPECT_EQ(pub.command({"PUBLISH", "chan", std::string("exa\0mple.com", 12)}).integer(), 1);
  auto msg = sub.read(2s);
  ASSERT_TRUE(msg);
  ASSERT_EQ(msg->size(), 3u);
  EXPECT_EQ(msg->at(0).str(), "message");
  EXPECT_EQ(msg->at(2).str(), std::string("exa\0mple.com", 12));
}

TEST_F(RedisTest, PoolOpensAtMostPoolSizeConnections) {
  RedisOptions o = options_for(server_);
  o.pool_size = 2;
  o.connect_timeout = 300ms;
  Pool pool(o);
  auto a = std::make_unique<Pool::Lease>(pool.lease());
  auto b = pool.lease();
  const long long a_id = (*a)->command({"CLIENT", "ID"}).integer();
  EXPECT_NE(b->command({"CLIENT", "ID"}).integer(), a_id);
  EXPECT_EQ(server_.info("connected_clients"), 3);  // 2 + redis-cli

  // Both busy: a third lease waits out connect-timeout and fails, opening nothing.
  const auto t0 = std::chrono::steady_clock::now();
  const RedisError busy = expect_redis_error([&] { pool.lease(); });
  EXPECT_EQ(busy.kind(), RedisError::Kind::timeout) << busy.what();
  EXPECT_NE(std::string(busy.what()).find("all 2 connections busy"), std::string::npos) << busy.what();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 250ms);
  EXPECT_EQ(server_.info("connected_clients"), 3);

  // A lease waiting while another thread gives one back gets that very connection.
  std::thread giver([&] {
    std::this_thread::sleep_for(100ms);
    a.reset();
  });
  auto c = pool.lease();
  giver.join();
  EXPECT_EQ(c->command({"CLIENT", "ID"}).integer(), a_id);
}

TEST_F(RedisTest, BurstOfLeasesSharesThePoolsConnections) {
  RedisOptions o = options_for(server_);
  o.pool_size = 2;
  o.connect_timeout = 5s;  // waiting for a free connection, never failing, in this test
  Pool pool(o);
  const long long before = server_.info("total_connections_received");
  EXPECT_EQ(incr_from_threads(pool, 16, 200), 0);
  // The pool's two, plus the redis-cli connection of this second count.
  EXPECT_EQ(server_.info("total_connections_received") - before, 3);
  EXPECT_EQ(server_.cli({"GET", "counter"}), "3200");
}

TEST_F(RedisTest, LeasesFromManyThreads) {
  Pool pool(options_for(server_));
  EXPECT_EQ(incr_from_threads(pool, 8, 250), 0);
  EXPECT_EQ(server_.cli({"GET", "counter"}), "2000");
}

TEST_F(RedisTest, BrokenConnectionIsNotReturnedToThePool) {
  RedisOptions o = options_for(server_);
  o.command_timeout = 100ms;
  Pool pool(o);
  long long first_id = 0;
  {
    auto lease = pool.lease();
    first_id = lease->command({"CLIENT", "ID"}).integer();
    const pid_t pid = server_.pid();
    Stopped stopped(pid);
    EXPECT_THROW(lease->command({"PING"}), RedisError);
  }
  auto lease = pool.lease();
  EXPECT_NE(lease->command({"CLIENT", "ID"}).integer(), first_id);
}

// redis-budget bounds a lookup, not each step: a lookup does a GET, retries it once on a
// fresh connection, then signals the miss, each with a connect and a command timeout. Under
// one RedisDeadline the whole sequence against a stopped server ends within the budget
// (plus scheduling slack); without it the same steps take several times as long, which is
// what this test would see if the deadline did not flow through lease, connect and command.
TEST(RedisDeadlineTest, OneBudgetForLeaseConnectCommandAndRetries) {
  RedisServer server;
  RedisOptions o = options_for(server);
  // Steps longer than the budget, so that "bounded" and "not bounded" are far apart even on a
  // loaded machine: 3 steps of 150 ms without the deadline, 100 ms in all with it.
  o.connect_timeout = 150ms;
  o.command_timeout = 150ms;
  o.pool_size = 1;
  Pool pool(o);
  pool.lease()->command({"PING"});  // one idle pooled connection, as in a running milter
  auto lookup_steps = [&pool] {
    int failures = 0;
    for (int step = 0; step < 3; ++step) {  // GET, its retry, the miss signal
      try {
        pool.lease()->command({"GET", "k"});
      } catch (const RedisError&) {
        ++failures;
      }
    }
    return failures;
  };
  Stopped stopped(server.pid());
  auto t0 = steady_clock::now();
  {
    RedisDeadline budget(100ms);
    EXPECT_EQ(lookup_steps(), 3);
    EXPECT_TRUE(RedisDeadline::current());
  }
  const long long bounded = elapsed_ms(t0);
  EXPECT_FALSE(RedisDeadline::current());
  EXPECT_GE(bounded, 90);
  EXPECT_LT(bounded, 100 + 130) << "the budget did not bound the lookup";
  // The same steps without a deadline: every step spends its own timeout.
  t0 = steady_clock::now();
  EXPECT_EQ(lookup_steps(), 3);
  EXPECT_GE(elapsed_ms(t0), 3 * 150 - 10);
}

TEST(RedisDeadlineTest, NestedScopesKeepTheEarliestDeadline) {
  const auto t = steady_clock::now() + 10s;
  RedisDeadline outer(t);
  {
    RedisDeadline inner(steady_clock::now() + 60s);
    EXPECT_EQ(*RedisDeadline::current(), t);
  }
  {
    RedisDeadline inner(1s);
    EXPECT_LT(*RedisDeadline::current(), t);
  }
  EXPECT_EQ(*RedisDeadline::current(), t);
}

}  // namespace
}  // namespace mtasts
