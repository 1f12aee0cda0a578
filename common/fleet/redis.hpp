// The Redis client layer over hiredis: a move-only connection that owns its context, a small
// pool with an RAII lease, timeouts on connect and on every command, one function that turns
// hiredis errors into RedisError, and reconnect after failure (a broken connection is never
// returned to the pool; the next lease opens a fresh one, outside the pool lock).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;
struct redisReply;

namespace mtasts {

struct RedisOptions {
  // "unix:/path/to/sock", "/path/to/sock", "host:port", "[v6addr]:port" or "host" (port 6379)
  std::string address = "127.0.0.1:6379";
  std::string user;      // ACL user; empty: no AUTH unless password set (then default user)
  std::string password;
  int db = 0;
  std::chrono::milliseconds connect_timeout{200};
  std::chrono::milliseconds command_timeout{250};
  std::size_t pool_size = 8;
  // Redis Sentinel: when `sentinels` (HOST:PORT each) is not empty, `address` is not used and
  // every new connection asks the sentinels, from a random one on, where the server of `role`
  // is now, so that a connection opened after a failover reaches the promoted primary. For
  // the primary, answers are gathered until a majority agrees, and the server must say
  // `master` to ROLE. Asking costs a short connection to one or a few sentinels per new Redis
  // connection; pooled connections are reused.
  std::vector<std::string> sentinels;
  std::string master_name;
  // Which server this pool talks to. `replica`: a healthy replica of master_name (SENTINEL
  // replicas), or `replica_address` when set, or the primary when no replica is usable (so
  // reads go on while the replicas are down).
  enum class Role { primary, replica };
  Role role = Role::primary;
  std::string replica_address;
};

// Where a new connection of `opts` goes now: `address`, `replica_address`, or what the
// sentinels say (see RedisOptions::sentinels). Throws RedisError(io) when no sentinel answers
// with a usable address before the connect deadline.
std::string resolve_redis_address(const RedisOptions& opts);

// A parsed RedisOptions::address: a unix socket path, or a host (name, IPv4 or IPv6) and port.
struct RedisAddress {
  std::string path;  // set for unix sockets
  std::string host;
  int port = 6379;
  bool is_unix() const noexcept { return !path.empty(); }
};
// nullopt with *error set when `text` is not one of the forms documented in RedisOptions.
std::optional<RedisAddress> parse_redis_address(std::string_view text, std::string* error);

// One deadline for every Redis step this thread takes while the scope lives (a lookup's
// redis-budget): the wait for a pooled connection, the connect and its handshake, each
// command, and any retry of them. Every step keeps its own timeout; the earlier of the two
// applies, and a step begun after the deadline fails at once with RedisError(timeout), so
// that a lookup's Redis work as a whole, not each step, is bounded. Scopes nest (the
// earliest deadline wins) and are per thread.
class RedisDeadline {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  explicit RedisDeadline(std::chrono::milliseconds budget);
  explicit RedisDeadline(TimePoint at);
  ~RedisDeadline();
  RedisDeadline(const RedisDeadline&) = delete;
  RedisDeadline& operator=(const RedisDeadline&) = delete;
  // The deadline in force on this thread, if any.
  static std::optional<TimePoint> current() noexcept;

 private:
  std::optional<TimePoint> previous_;
};

class RedisError : public std::runtime_error {
 public:
  enum class Kind { io, timeout, protocol, reply, auth, closed };
  RedisError(Kind k, const std::string& what) : std::runtime_error(what), kind_(k) {}
  Kind kind() const noexcept { return kind_; }
 private:
  Kind kind_;
};

// What an operator must do about a RedisError: the three cases have different fixes (start
// or reach Redis; fix the user or password; fix the ACL), so logs and checks name them.
enum class RedisTrouble {
  unreachable,  // no connection, timeout, connection lost
  wrongpass,    // WRONGPASS, NOAUTH, invalid password: the credentials are refused
  noperm,       // NOPERM: the ACL user may not run a command or touch a key or channel
  other,        // any other error reply (WRONGTYPE, OOM, ...)
};
RedisTrouble classify(const RedisError& e) noexcept;
// The same from an error's text alone (RedisError::what() passed on as a string): a server
// refusal is named in it; anything else counts as unreachable.
RedisTrouble classify_text(std::string_view what) noexcept;
// "unreachable", "WRONGPASS", "NOPERM" or "error".
const char* to_string(RedisTrouble t) noexcept;

struct ReplyDeleter { void operator()(redisReply* r) const noexcept; };

// An owned reply. Error replies from the server are turned into RedisError(reply) by
// Connection::command, so a Reply is never of error type.
class Reply {
 public:
  Reply() = default;
  explicit Reply(redisReply* r) : r_(r) {}
  bool is_nil() const noexcept;
  bool is_string() const noexcept;   // bulk or status string
  bool is_integer() const noexcept;
  bool is_array() const noexcept;
  std::string_view str() const;      // throws RedisError(protocol) if not a string
  std::int64_t integer() const;      // throws if not an integer
  std::size_t size() const noexcept; // elements of an array
  // Element i of an array, as a non-owning view wrapped in a Reply-like accessor.
  class View;
  View at(std::size_t i) const;
  redisReply* raw() const noexcept { return r_.get(); }
 private:
  std::unique_ptr<redisReply, ReplyDeleter> r_;
};

class Reply::View {
 public:
  explicit View(const redisReply* r) : r_(r) {}
  bool is_nil() const noexcept;
  bool is_string() const noexcept;
  bool is_integer() const noexcept;
  std::string_view str() const;
  std::int64_t integer() const;
  std::size_t size() const noexcept;
  View at(std::size_t i) const;
 private:
  const redisReply* r_;
};

struct ContextDeleter { void operator()(redisContext* c) const noexcept; };

class Connection {
 public:
  // Connects (to the address resolve_redis_address gives), authenticates, selects db, sets
  // the command timeout. Throws RedisError.
  static Connection open(const RedisOptions& opts);
  // The same at a fixed address (no Sentinel look-up).
  static Connection open_at(const RedisOptions& opts, const std::string& address);

  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&&) noexcept = default;

  // One command, binary-safe arguments. Throws RedisError (and marks itself broken on
  // io/timeout/protocol errors, on -READONLY, which means the server it reaches is no longer
  // the primary, and on -NOREPLICAS, a primary with fewer replicas than its
  // min-replicas-to-write: cut off from them, perhaps replaced on the other side of a
  // partition; so that the next connection looks the primary up again; any other server
  // error reply leaves the connection usable). An array
  // reply with an error element (EXEC whose command failed) is an error reply too.
  Reply command(const std::vector<std::string_view>& argv);
  // Several commands in one round trip; replies in order. Server error replies become
  // RedisError after all replies are read (the connection stays in sync).
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string_view>>& cmds);

  // Subscriber use: send without reading, and read the next pushed message with a timeout
  // (nullopt on timeout; the connection stays usable).
  void send(const std::vector<std::string_view>& argv);
  std::optional<Reply> read(std::chrono::milliseconds timeout);

  bool broken() const noexcept { return broken_; }
  redisContext* raw() const noexcept { return ctx_.get(); }
  // Changes the deadline of later commands (e.g. a per-lookup budget).
  void set_command_timeout(std::chrono::milliseconds t) noexcept { command_timeout_ = t; }
  std::chrono::milliseconds command_timeout() const noexcept { return command_timeout_; }
  // False once send() was used (replies may be pending, or the connection is subscribed):
  // such a connection is never returned to a pool.
  bool poolable() const noexcept { return !broken_ && !dirty_ && ctx_; }

 private:
  using Deadline = std::chrono::steady_clock::time_point;
  Connection() = default;
  void append(const std::vector<std::string_view>& argv);
  void flush(Deadline deadline);
  redisReply* next_reply(Deadline deadline);  // nullptr when the deadline passed first
  [[noreturn]] void fail(int hiredis_err, int errno_value, const std::string& detail);
  [[noreturn]] void fail_from_context(int errno_value);
  void check_usable() const;
  std::unique_ptr<redisContext, ContextDeleter> ctx_;
  std::chrono::milliseconds command_timeout_{250};
  std::string address_;  // for error messages
  bool broken_ = false;
  bool dirty_ = false;
  std::uint64_t epoch_ = 0;  // the pool's failover count when it was opened (see Pool)
  friend class Pool;
};

class SwitchWatch;

class Pool {
 public:
  explicit Pool(RedisOptions opts);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  class Lease {
   public:
    Lease(Lease&&) noexcept;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Connection* operator->() noexcept { return conn_.get(); }
    Connection& operator*() noexcept { return *conn_; }
   private:
    friend class Pool;
    Lease(Pool* p, std::unique_ptr<Connection> c) : pool_(p), conn_(std::move(c)) {}
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  // A connection for one command or pipeline: an idle one, else a new one while fewer than
  // pool_size are open, else the first one given back (the connect happens outside the lock).
  // At most pool_size connections are ever open, so that a burst of lookups queues for a
  // few microseconds instead of opening (and then closing) connections to a shared Redis.
  // Throws RedisError when Redis cannot be reached, or no connection comes free, within
  // connect_timeout. With sentinels, the pool of the primary listens to one sentinel for
  // `+switch-master` (a thread of its own, shared by every such pool of the process, started
  // at the first lease): after a failover, connections opened before it are closed instead of
  // being handed out, so that writes go to the new primary at once instead of to the old one
  // (which takes them until the sentinels demote it, and then discards them).
  Lease lease();
  const RedisOptions& options() const noexcept { return opts_; }

 private:
  void give_back(std::unique_ptr<Connection> c) noexcept;
  std::uint64_t epoch();  // 0 without a watch
  RedisOptions opts_;
  std::once_flag watch_once_;
  std::shared_ptr<SwitchWatch> watch_;
  std::mutex mu_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;  // idle plus leased
};

}  // namespace mtasts
