// The Redis client layer over hiredis 0.14 (Debian 12).
//
// Contexts are non-blocking and every wait is our own poll() against a deadline, so that no
// call (connect, AUTH, a command, a pipeline) blocks past its timeout, whatever the server
// does: SO_RCVTIMEO would only bound each read(), not the whole exchange. All hiredis errors
// become RedisError in translate(); a connection that saw an io, timeout, protocol or EOF
// error may be out of sync with the server and is never used again. One wait is not bounded
// by us: hiredis resolves a host name with getaddrinfo(); use an IP address or a unix socket
// where that matters (the milter).
#include "common/fleet/redis.hpp"

#include "common/util/log.hpp"

#include <hiredis/hiredis.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <csignal>
#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <poll.h>
#include <pthread.h>
#include <random>
#include <thread>
#include <sys/socket.h>
#include <time.h>

namespace mtasts {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// The one place where hiredis error codes (and the errno behind REDIS_ERR_IO) become ours.
RedisError translate(int hiredis_err, int errno_value, const std::string& detail) {
  using K = RedisError::Kind;
  switch (hiredis_err) {
    case REDIS_ERR_IO:
      if (errno_value == EAGAIN || errno_value == EWOULDBLOCK || errno_value == ETIMEDOUT ||
          errno_value == EINPROGRESS)
        return RedisError(K::timeout, "redis: timeout: " + detail);
      if (errno_value == EPIPE || errno_value == ECONNRESET)
        return RedisError(K::closed, "redis: connection closed: " + detail);
      return RedisError(K::io, "redis: I/O error: " + detail);
    case REDIS_ERR_EOF:
      return RedisError(K::closed, "redis: connection closed: " + detail);
    case REDIS_ERR_PROTOCOL:
      return RedisError(K::protocol, "redis: protocol error: " + detail);
    case REDIS_ERR_OOM:
      return RedisError(K::io, "redis: out of memory: " + detail);
    default:  // REDIS_ERR_OTHER: name resolution, bad address, ...
      return RedisError(K::io, "redis: " + detail);
  }
}

// A server error reply: the connection is still in sync. Authentication and ACL refusals get
// their own kind so that callers can say "check the credentials" rather than "retry".
RedisError reply_error(std::string_view text) {
  const bool auth = text.starts_with("NOAUTH") || text.starts_with("WRONGPASS") ||
                    text.starts_with("NOPERM") || text.starts_with("ERR invalid password") ||
                    text.starts_with("ERR AUTH");
  return RedisError(auth ? RedisError::Kind::auth : RedisError::Kind::reply,
                    "redis: " + std::string(text));
}

// Finds an error in a reply or one level down (EXEC returns its commands' errors as elements).
const redisReply* find_error(const redisReply* r) noexcept {
  if (r->type == REDIS_REPLY_ERROR) return r;
  if (r->type == REDIS_REPLY_ARRAY)
    for (std::size_t i = 0; i < r->elements; ++i)
      if (r->element[i] && r->element[i]->type == REDIS_REPLY_ERROR) return r->element[i];
  return nullptr;
}

bool error_says(const redisReply* x, std::string_view what) noexcept {
  return x && x->type == REDIS_REPLY_ERROR && x->str && std::string_view(x->str, x->len).starts_with(what);
}

bool any_error_says(const redisReply* r, std::string_view what) noexcept {
  if (error_says(r, what)) return true;
  if (r->type == REDIS_REPLY_ARRAY)
    for (std::size_t i = 0; i < r->elements; ++i)
      if (error_says(r->element[i], what)) return true;
  return false;
}

// -READONLY (a write reached a replica: after a failover the server this connection reaches
// was demoted), alone or inside EXEC's answer, or EXECABORT caused by it.
bool readonly(const redisReply* r) noexcept {
  if (any_error_says(r, "READONLY")) return true;
  return error_says(r, "EXECABORT") && r->str &&
         std::string_view(r->str, r->len).find("READONLY") != std::string_view::npos;
}

// -NOREPLICAS: a primary that has fewer good replicas than its min-replicas-to-write (cut
// off from them: what it would take could be discarded when a partition heals). The
// connection is left, so that the next one asks the sentinels again; said at most every 10 s.
bool noreplicas(const redisReply* r) noexcept { return any_error_says(r, "NOREPLICAS"); }
void log_noreplicas(const std::string& address) {
  static std::atomic<std::int64_t> last{0};
  const std::int64_t now = std::chrono::duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
  std::int64_t seen = last.load();
  if (now - seen < 10'000 && seen != 0) return;
  if (!last.compare_exchange_strong(seen, now)) return;
  log::warning("redis primary refuses writes: fewer replicas than its min-replicas-to-write (cut off from them?); "
               "looking the primary up again",
               {{"address", address}});
}

// -LOADING (a replica loading its data after a full resync, a server loading at start) or
// -MASTERDOWN (a replica cut from its primary, replica-serve-stale-data no): this server
// cannot answer for a while.
bool unavailable(const redisReply* r) noexcept {
  return any_error_says(r, "LOADING") || any_error_says(r, "MASTERDOWN");
}

// Servers that answered -LOADING or -MASTERDOWN, or a fixed replica that could not be
// reached: new connections that would read from them go elsewhere for a while.
constexpr milliseconds kAvoidFor{5000};
class AvoidedServers {
 public:
  void add(const std::string& address) {
    std::lock_guard lk(mu_);
    if (until_.size() > 1000) until_.clear();  // bounded; these are a handful of servers
    until_[address] = steady_clock::now() + kAvoidFor;
  }
  bool has(const std::string& address) {
    std::lock_guard lk(mu_);
    const auto it = until_.find(address);
    if (it == until_.end()) return false;
    if (steady_clock::now() < it->second) return true;
    until_.erase(it);
    return false;
  }

 private:
  std::mutex mu_;
  std::map<std::string, steady_clock::time_point> until_;
};
AvoidedServers& avoided() {
  static AvoidedServers a;
  return a;
}

int remaining_ms(steady_clock::time_point deadline) noexcept {
  const auto left = std::chrono::ceil<milliseconds>(deadline - steady_clock::now()).count();
  if (left <= 0) return 0;
  return left > INT_MAX ? INT_MAX : static_cast<int>(left);
}

// Waits for `events` on fd until the deadline. Returns revents, 0 on timeout, -1 on error.
int wait_fd(int fd, short events, steady_clock::time_point deadline) noexcept {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return p.revents;
    if (n == 0) {
      if (steady_clock::now() >= deadline) return 0;
      continue;
    }
    if (errno != EINTR) return -1;
  }
}

// hiredis writes with write(2): a peer that went away would raise SIGPIPE and kill the
// process. Block it in this thread for the write and swallow one raised by us.
class SigpipeGuard {
 public:
  SigpipeGuard() noexcept {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        while (sigtimedwait(&pipe_, nullptr, &zero) == -1 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
};

std::string ms_text(milliseconds d) { return std::to_string(d.count()) + " ms"; }

thread_local std::optional<steady_clock::time_point> t_deadline;

// The step's own deadline, cut to the thread's RedisDeadline; a step that would begin after
// that deadline fails at once: the lookup's budget is spent.
steady_clock::time_point bounded(steady_clock::time_point own, const char* step) {
  if (!t_deadline) return own;
  if (steady_clock::now() >= *t_deadline)
    throw RedisError(RedisError::Kind::timeout, std::string("redis: budget spent before ") + step);
  return std::min(own, *t_deadline);
}

}  // namespace

RedisDeadline::RedisDeadline(milliseconds budget) : RedisDeadline(steady_clock::now() + budget) {}

RedisDeadline::RedisDeadline(TimePoint at) : previous_(t_deadline) {
  t_deadline = previous_ ? std::min(*previous_, at) : at;
}

RedisDeadline::~RedisDeadline() { t_deadline = previous_; }

std::optional<RedisDeadline::TimePoint> RedisDeadline::current() noexcept { return t_deadline; }
RedisTrouble classify(const RedisError& e) noexcept {
  using K = RedisError::Kind;
  switch (e.kind()) {
    case K::io:
    case K::timeout:
    case K::closed:
    case K::protocol:
      return RedisTrouble::unreachable;
    case K::auth:
    case K::reply:
      break;
  }
  // Server error replies keep their first word after our "redis: " prefix.
  const std::string_view what = e.what();
  if (what.find("NOPERM") != std::string_view::npos) return RedisTrouble::noperm;
  if (what.find("WRONGPASS") != std::string_view::npos || what.find("NOAUTH") != std::string_view::npos ||
      e.kind() == K::auth)
    return RedisTrouble::wrongpass;
  return RedisTrouble::other;
}

RedisTrouble classify_text(std::string_view what) noexcept {
  if (what.find("NOPERM") != std::string_view::npos) return RedisTrouble::noperm;
  if (what.find("WRONGPASS") != std::string_view::npos || what.find("NOAUTH") != std::string_view::npos ||
      what.find("invalid password") != std::string_view::npos)
    return RedisTrouble::wrongpass;
  return RedisTrouble::unreachable;
}

const char* to_string(RedisTrouble t) noexcept {
  switch (t) {
    case RedisTrouble::unreachable: return "unreachable";
    case RedisTrouble::wrongpass: return "WRONGPASS";
    case RedisTrouble::noperm: return "NOPERM";
    case RedisTrouble::other: return "error";
  }
  return "error";
}

// ---- address ----------------------------------------------------------------------------
std::optional<RedisAddress> parse_redis_address(std::string_view text, std::string* error) {
  auto bad = [error](std::string why) -> std::optional<RedisAddress> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  RedisAddress a;
  const bool unix_prefix = text.starts_with("unix:");
  if (unix_prefix) text.remove_prefix(5);
  if (unix_prefix && !text.starts_with("/")) return bad("a unix socket needs an absolute path");
  if (text.starts_with("/")) {
    if (text.size() >= 108) return bad("unix socket path too long");
    a.path = std::string(text);
    return a;
  }
  if (text.empty()) return bad("empty address");
  std::string_view host = text;
  std::string_view port;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("expected ':PORT' after ']'");
      port = rest.substr(1);
      if (port.empty()) return bad("empty port");
    }
  } else if (const auto colon = text.find(':'); colon != std::string_view::npos) {
    if (text.find(':', colon + 1) != std::string_view::npos)
      return bad("an IPv6 address needs brackets: [ADDR]:PORT");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (port.empty()) return bad("empty port");
  }
  if (host.empty()) return bad("empty host");
  for (char c : host)
    if (c == ' ' || c == '/' || static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e)
      return bad("bad character in host");
  if (!port.empty()) {
    int p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535)
      return bad("bad port");
    a.port = p;
  }
  a.host = std::string(host);
  return a;
}

// ---- replies ----------------------------------------------------------------------------
void ReplyDeleter::operator()(redisReply* r) const noexcept { freeReplyObject(r); }
void ContextDeleter::operator()(redisContext* c) const noexcept { redisFree(c); }

namespace {
bool r_is_nil(const redisReply* r) noexcept { return !r || r->type == REDIS_REPLY_NIL; }
bool r_is_string(const redisReply* r) noexcept {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}
bool r_is_integer(const redisReply* r) noexcept { return r && r->type == REDIS_REPLY_INTEGER; }
bool r_is_array(const redisReply* r) noexcept { return r && r->type == REDIS_REPLY_ARRAY; }
std::string_view r_str(const redisReply* r) {
  if (!r_is_string(r)) throw RedisError(RedisError::Kind::protocol, "redis: reply is not a string");
  return {r->str, r->len};
}
std::int64_t r_integer(const redisReply* r) {
  if (!r_is_integer(r)) throw RedisError(RedisError::Kind::protocol, "redis: reply is not an integer");
  return r->integer;
}
std::size_t r_size(const redisReply* r) noexcept { return r_is_array(r) ? r->elements : 0; }
const redisReply* r_at(const redisReply* r, std::size_t i) {
  if (!r_is_array(r)) throw RedisError(RedisError::Kind::protocol, "redis: reply is not an array");
  if (i >= r->elements) throw RedisError(RedisError::Kind::protocol, "redis: reply array too short");
  return r->element[i];
}
}  // namespace

bool Reply::is_nil() const noexcept { return r_is_nil(r_.get()); }
bool Reply::is_string() const noexcept { return r_is_string(r_.get()); }
bool Reply::is_integer() const noexcept { return r_is_integer(r_.get()); }
bool Reply::is_array() const noexcept { return r_is_array(r_.get()); }
std::string_view Reply::str() const { return r_str(r_.get()); }
std::int64_t Reply::integer() const { return r_integer(r_.get()); }
std::size_t Reply::size() const noexcept { return r_size(r_.get()); }
Reply::View Reply::at(std::size_t i) const { return View(r_at(r_.get(), i)); }

bool Reply::View::is_nil() const noexcept { return r_is_nil(r_); }
bool Reply::View::is_string() const noexcept { return r_is_string(r_); }
bool Reply::View::is_integer() const noexcept { return r_is_integer(r_); }
std::string_view Reply::View::str() const { return r_str(r_); }
std::int64_t Reply::View::integer() const { return r_integer(r_); }
std::size_t Reply::View::size() const noexcept { return r_size(r_); }
Reply::View Reply::View::at(std::size_t i) const { return View(r_at(r_, i)); }

// ---- connection -------------------------------------------------------------------------
void Connection::fail(int hiredis_err, int errno_value, const std::string& detail) {
  broken_ = true;
  throw translate(hiredis_err, errno_value, address_.empty() ? detail : detail + " (" + address_ + ")");
}

void Connection::fail_from_context(int errno_value) {
  fail(ctx_->err, errno_value, ctx_->errstr[0] ? std::string(ctx_->errstr) : std::string("unknown error"));
}

void Connection::check_usable() const {
  if (!ctx_) throw RedisError(RedisError::Kind::closed, "redis: connection moved from");
  if (broken_) throw RedisError(RedisError::Kind::closed, "redis: connection is broken");
}

void Connection::append(const std::vector<std::string_view>& argv) {
  if (argv.empty() || argv.size() > INT_MAX)
    throw RedisError(RedisError::Kind::protocol, "redis: bad command (no arguments)");
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (auto a : argv) {
    ptrs.push_back(a.data() ? a.data() : "");
    lens.push_back(a.size());
  }
  if (redisAppendCommandArgv(ctx_.get(), static_cast<int>(argv.size()), ptrs.data(), lens.data()) != REDIS_OK)
    fail_from_context(errno);
}

void Connection::flush(Deadline deadline) {
  SigpipeGuard guard;
  for (;;) {
    int done = 0;
    if (redisBufferWrite(ctx_.get(), &done) != REDIS_OK) fail_from_context(errno);
    if (done) return;
    const int rev = wait_fd(ctx_->fd, POLLOUT, deadline);
    if (rev == 0) fail(REDIS_ERR_IO, ETIMEDOUT, "write timed out");
    if (rev < 0) fail(REDIS_ERR_IO, errno, std::strerror(errno));
  }
}

redisReply* Connection::next_reply(Deadline deadline) {
  for (;;) {
    void* r = nullptr;
    if (redisGetReplyFromReader(ctx_.get(), &r) != REDIS_OK) fail_from_context(errno);
    if (r) return static_cast<redisReply*>(r);
    const int rev = wait_fd(ctx_->fd, POLLIN, deadline);
    if (rev == 0) return nullptr;
    if (rev < 0) fail(REDIS_ERR_IO, errno, std::strerror(errno));
    if (redisBufferRead(ctx_.get()) != REDIS_OK) fail_from_context(errno);
  }
}

// ---- Sentinel -----------------------------------------------------------------------------
namespace {

// "HOST:PORT" from a sentinel's answer; an IPv6 host gets brackets. Empty when the answer is
// not a plausible address (untrusted input: it is validated like a configured address).
std::string address_from(std::string_view host, std::string_view port) {
  if (host.empty() || host.size() > 255 || port.empty() || port.size() > 5) return {};
  const std::string a = host.find(':') != std::string_view::npos
                            ? "[" + std::string(host) + "]:" + std::string(port)
                            : std::string(host) + ":" + std::string(port);
  return parse_redis_address(a, nullptr) ? a : std::string{};
}

// The value of `key` in a flat key/value array (one entry of SENTINEL replicas).
std::string_view field(const Reply::View& kv, std::string_view key) {
  for (std::size_t i = 0; i + 1 < kv.size(); i += 2)
    if (kv.at(i).is_string() && kv.at(i).str() == key && kv.at(i + 1).is_string()) return kv.at(i + 1).str();
  return {};
}

// Where the sentinels say the server of `want_replica`'s role is, best first. Sentinels are
// asked in an order that starts at a random one (so that one stale or wedged sentinel does
// not steer every connection of the fleet); for the primary, answers are collected until a
// majority of the configured sentinels agree (or all were asked), and the addresses are
// ranked by how many named them. Each sentinel gets an equal share of the connect timeout;
// the caller's RedisDeadline bounds the whole.
std::vector<std::string> ask_sentinels_ranked(const RedisOptions& opts, bool want_replica) {
  if (opts.master_name.empty())
    throw RedisError(RedisError::Kind::io, "redis: sentinel given without master-name");
  RedisOptions so;
  so.connect_timeout = std::max(milliseconds{1}, opts.connect_timeout / static_cast<int>(opts.sentinels.size()));
  so.command_timeout = so.connect_timeout;
  thread_local std::minstd_rand pick{std::random_device{}()};
  const std::size_t n = opts.sentinels.size();
  const std::size_t first = std::uniform_int_distribution<std::size_t>(0, n - 1)(pick);
  const std::size_t majority = n / 2 + 1;
  std::vector<std::pair<std::string, std::size_t>> votes;  // in the order first named
  std::string errors;
  for (std::size_t k = 0; k < n; ++k) {
    const std::string& sentinel = opts.sentinels[(first + k) % n];
    try {
      Connection c = Connection::open_at(so, sentinel);
      if (want_replica) {
        Reply r = c.command({"SENTINEL", "replicas", opts.master_name});
        std::vector<std::string> healthy;
        for (std::size_t i = 0; r.is_array() && i < r.size(); ++i) {
          const Reply::View kv = r.at(i);
          const std::string_view flags = field(kv, "flags");
          if (flags.find("s_down") != std::string_view::npos || flags.find("o_down") != std::string_view::npos ||
              flags.find("disconnected") != std::string_view::npos || field(kv, "master-link-status") != "ok")
            continue;
          std::string a = address_from(field(kv, "ip"), field(kv, "port"));
          if (!a.empty() && !avoided().has(a)) healthy.push_back(std::move(a));
        }
        // Spread the fleet's readers over the replicas (a read needs no agreement).
        if (!healthy.empty()) return {healthy[std::uniform_int_distribution<std::size_t>(0, healthy.size() - 1)(pick)]};
        // No usable replica: read from the primary rather than not at all.
      }
      Reply r = c.command({"SENTINEL", "get-master-addr-by-name", opts.master_name});
      std::string a;
      if (r.is_array() && r.size() == 2 && r.at(0).is_string() && r.at(1).is_string())
        a = address_from(r.at(0).str(), r.at(1).str());
      if (a.empty()) {
        errors += (errors.empty() ? "" : "; ") + sentinel + ": no usable address for '" + opts.master_name + "'";
        continue;
      }
      if (want_replica) return {a};
      auto it = std::find_if(votes.begin(), votes.end(), [&](const auto& v) { return v.first == a; });
      if (it == votes.end()) it = votes.insert(votes.end(), {a, 0});
      if (++it->second >= majority) break;
    } catch (const RedisError& e) {
      errors += (errors.empty() ? "" : "; ") + sentinel + ": " + e.what();
    }
  }
  if (votes.empty())
    throw RedisError(RedisError::Kind::io, "redis: no sentinel named the " +
                                               std::string(want_replica ? "replica" : "primary") + " (" + errors + ")");
  std::stable_sort(votes.begin(), votes.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
  std::vector<std::string> ranked;
  for (auto& v : votes) ranked.push_back(std::move(v.first));
  return ranked;
}

std::string ask_sentinels(const RedisOptions& opts, bool want_replica) {
  return ask_sentinels_ranked(opts, want_replica).front();
}

// A server a sentinel named as the primary must say so itself (ROLE): a stale or lying
// sentinel, or one on the wrong side of a partition, must not send writes to a replica.
// An ACL without ROLE (a file older than this check) cannot be asked: logged once, accepted.
bool says_primary(Connection& c) {
  try {
    Reply r = c.command({"ROLE"});
    return r.is_array() && r.size() >= 1 && r.at(0).is_string() && r.at(0).str() == "master";
  } catch (const RedisError& e) {
    if (classify(e) != RedisTrouble::noperm) throw;
    static std::atomic<bool> logged{false};
    if (!logged.exchange(true))
      log::warning("redis ACL user may not run ROLE: the primary the sentinels name is not checked; add +role",
                   {{"error", e.what()}});
    return true;
  }
}

}  // namespace

std::string resolve_redis_address(const RedisOptions& opts) {
  const bool replica = opts.role == RedisOptions::Role::replica;
  // A fixed replica that is down or cannot answer: the sentinels' replicas, else the primary.
  if (replica && !opts.replica_address.empty() && !avoided().has(opts.replica_address)) return opts.replica_address;
  if (opts.sentinels.empty()) return opts.address;
  return ask_sentinels(opts, replica);
}

Connection Connection::open(const RedisOptions& opts) {
  const bool fixed_replica = opts.role == RedisOptions::Role::replica && !opts.replica_address.empty();
  if (opts.sentinels.empty() && !fixed_replica) return open_at(opts, opts.address);
  // The look-up and the connect share one connect-timeout.
  RedisDeadline whole(opts.connect_timeout);
  if (fixed_replica && !avoided().has(opts.replica_address)) {
    // Half the time for the fixed replica, so that the fallback has the rest.
    RedisOptions first = opts;
    first.connect_timeout = std::max(milliseconds{1}, opts.connect_timeout / 2);
    try {
      return open_at(first, opts.replica_address);
    } catch (const RedisError& e) {
      if (e.kind() == RedisError::Kind::auth) throw;  // a configuration error: say so
      avoided().add(opts.replica_address);
      log::warning("redis replica unusable, reading from the primary meanwhile",
                   {{"replica", opts.replica_address}, {"error", e.what()}});
    }
  }
  const bool primary = opts.role == RedisOptions::Role::primary;
  if (opts.sentinels.empty() || !primary) return open_at(opts, resolve_redis_address(opts));
  // The primary: the address most sentinels agree on that says it is the primary.
  std::string errors;
  for (const std::string& address : ask_sentinels_ranked(opts, false)) {
    try {
      Connection c = open_at(opts, address);
      if (says_primary(c)) return c;
      errors += (errors.empty() ? "" : "; ") + address + ": not the primary (ROLE)";
    } catch (const RedisError& e) {
      if (e.kind() == RedisError::Kind::auth) throw;
      errors += (errors.empty() ? "" : "; ") + address + ": " + e.what();
    }
  }
  throw RedisError(RedisError::Kind::io, "redis: no primary where the sentinels said (" + errors + ")");
}

Connection Connection::open_at(const RedisOptions& opts, const std::string& address) {
  std::string why;
  auto addr = parse_redis_address(address, &why);
  if (!addr) throw RedisError(RedisError::Kind::io, "redis: bad address '" + address + "': " + why);
  const Deadline deadline = bounded(steady_clock::now() + opts.connect_timeout, "connect");
  const std::string where = " (" + address + ")";

  Connection c;
  c.command_timeout_ = opts.command_timeout;
  c.address_ = address;
  redisContext* raw = addr->is_unix() ? redisConnectUnixNonBlock(addr->path.c_str())
                                      : redisConnectNonBlock(addr->host.c_str(), addr->port);
  const int connect_errno = errno;
  if (!raw) throw RedisError(RedisError::Kind::io, "redis: cannot allocate a connection");
  c.ctx_.reset(raw);
  if (raw->err) c.fail(raw->err, connect_errno, std::string("connect: ") + raw->errstr);

  const int rev = wait_fd(raw->fd, POLLOUT, deadline);
  if (rev == 0) c.fail(REDIS_ERR_IO, ETIMEDOUT, "connect timed out after " + ms_text(opts.connect_timeout));
  if (rev < 0) c.fail(REDIS_ERR_IO, errno, std::string("connect: ") + std::strerror(errno));
  int so_error = 0;
  socklen_t len = sizeof so_error;
  if (getsockopt(raw->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
  if (so_error != 0) c.fail(REDIS_ERR_IO, so_error, std::string("connect: ") + std::strerror(so_error));

  // The handshake shares the connect deadline: "reachable" means usable, not just accepted.
  auto handshake = [&](const std::vector<std::string_view>& argv, const char* what) {
    c.append(argv);
    c.flush(deadline);
    std::unique_ptr<redisReply, ReplyDeleter> r(c.next_reply(deadline));
    if (!r) c.fail(REDIS_ERR_IO, ETIMEDOUT, std::string(what) + " timed out after " + ms_text(opts.connect_timeout));
    if (r->type == REDIS_REPLY_ERROR) {
      RedisError e = reply_error({r->str, r->len});
      c.broken_ = true;
      if (unavailable(r.get())) avoided().add(address);
      throw RedisError(std::string_view(what) == "AUTH" ? RedisError::Kind::auth : e.kind(),
                       std::string(e.what()) + where);
    }
  };
  if (!opts.user.empty())
    handshake({"AUTH", opts.user, opts.password}, "AUTH");
  else if (!opts.password.empty())
    handshake({"AUTH", opts.password}, "AUTH");
  if (opts.db != 0) {
    const std::string db = std::to_string(opts.db);
    handshake({"SELECT", db}, "SELECT");
  }
  // A listener that accepts but never answers (a stopped or wedged server) is not reachable.
  if (opts.user.empty() && opts.password.empty() && opts.db == 0) handshake({"PING"}, "PING");
  return c;
}

Reply Connection::command(const std::vector<std::string_view>& argv) {
  check_usable();
  const Deadline deadline = bounded(steady_clock::now() + command_timeout_, "a command");
  append(argv);
  flush(deadline);
  Reply r(next_reply(deadline));
  if (!r.raw()) fail(REDIS_ERR_IO, ETIMEDOUT, "no reply within " + ms_text(command_timeout_));
  if (const redisReply* e = find_error(r.raw())) {
    // The next connection looks the server up again (and avoids one that cannot answer).
    if (readonly(r.raw())) broken_ = true;
    if (noreplicas(r.raw())) {
      broken_ = true;
      log_noreplicas(address_);
    }
    if (unavailable(r.raw())) {
      broken_ = true;
      avoided().add(address_);
    }
    throw reply_error({e->str, e->len});
  }
  return r;
}

std::vector<Reply> Connection::pipeline(const std::vector<std::vector<std::string_view>>& cmds) {
  check_usable();
  std::vector<Reply> out;
  if (cmds.empty()) return out;
  const Deadline deadline = bounded(steady_clock::now() + command_timeout_, "a pipeline");
  for (const auto& argv : cmds) append(argv);
  flush(deadline);
  out.reserve(cmds.size());
  std::optional<RedisError> first_error;
  for (std::size_t i = 0; i < cmds.size(); ++i) {
    Reply r(next_reply(deadline));
    if (!r.raw())
      fail(REDIS_ERR_IO, ETIMEDOUT, "pipeline: no reply within " + ms_text(command_timeout_));
    if (const redisReply* e = find_error(r.raw()); e && !first_error) first_error = reply_error({e->str, e->len});
    if (readonly(r.raw())) broken_ = true;
    if (noreplicas(r.raw())) {
      broken_ = true;
      log_noreplicas(address_);
    }
    if (unavailable(r.raw())) {
      broken_ = true;
      avoided().add(address_);
    }
    out.push_back(std::move(r));
  }
  if (first_error) throw *first_error;
  return out;
}

void Connection::send(const std::vector<std::string_view>& argv) {
  check_usable();
  dirty_ = true;
  append(argv);
  flush(steady_clock::now() + command_timeout_);
}

std::optional<Reply> Connection::read(std::chrono::milliseconds timeout) {
  check_usable();
  Reply r(next_reply(steady_clock::now() + timeout));
  // A timeout here only means "nothing pushed yet": any partial reply stays in the reader.
  if (!r.raw()) return std::nullopt;
  if (const redisReply* e = find_error(r.raw())) throw reply_error({e->str, e->len});
  return r;
}

// ---- +switch-master ------------------------------------------------------------------------
// One subscription to a sentinel's `+switch-master` per master name and set of sentinels in
// the process. Its count of failovers (the epoch) tells the pools which connections were
// opened before the last one. A sentinel that stops answering (a PING each second, none
// answered for 3 s) or goes away is replaced by the next one; what was announced meanwhile is
// unknown, so a resubscription counts as a failover (the pools reconnect once).
class SwitchWatch {
 public:
  explicit SwitchWatch(const RedisOptions& opts) : sentinels_(opts.sentinels), master_(opts.master_name) {
    timeout_ = std::max(milliseconds{100}, opts.connect_timeout);
    // With every signal blocked: the first lease may come before the program blocked its own
    // (libmilter's signal thread must be the one to take SIGTERM).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    try {
      thread_ = std::thread([this] { run(); });
    } catch (...) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      throw;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  ~SwitchWatch() {
    stop_ = true;
    thread_.join();
  }
  SwitchWatch(const SwitchWatch&) = delete;
  SwitchWatch& operator=(const SwitchWatch&) = delete;
  std::uint64_t epoch() const noexcept { return epoch_.load(); }

  static std::shared_ptr<SwitchWatch> of(const RedisOptions& opts) {
    static std::mutex mu;
    static std::map<std::string, std::weak_ptr<SwitchWatch>> watches;
    std::string key = opts.master_name;
    for (const auto& s : opts.sentinels) key += " " + s;
    std::lock_guard lk(mu);
    if (auto w = watches[key].lock()) return w;
    auto w = std::make_shared<SwitchWatch>(opts);
    watches[key] = w;
    return w;
  }

 private:
  void run() {
    thread_local std::minstd_rand pick{std::random_device{}()};
    std::size_t next = std::uniform_int_distribution<std::size_t>(0, sentinels_.size() - 1)(pick);
    bool first = true;
    while (!stop_) {
      const std::string& sentinel = sentinels_[next++ % sentinels_.size()];
      try {
        RedisOptions so;
        so.connect_timeout = timeout_;
        so.command_timeout = timeout_;
        Connection c = Connection::open_at(so, sentinel);
        c.send({"SUBSCRIBE", "+switch-master"});
        if (!first) ++epoch_;
        first = false;
        auto heard = steady_clock::now();
        auto pinged = heard;
        while (!stop_) {
          if (std::optional<Reply> r = c.read(milliseconds{100})) {
            heard = steady_clock::now();
            on_message(*r);
          }
          const auto now = steady_clock::now();
          if (now - pinged >= milliseconds{1000}) {
            c.send({"PING"});
            pinged = now;
          }
          if (now - heard > milliseconds{3000})
            throw RedisError(RedisError::Kind::timeout, "redis: sentinel silent for 3 s");
        }
      } catch (const RedisError& e) {
        log::debug("sentinel subscription lost, trying the next sentinel", {{"sentinel", sentinel}, {"error", e.what()}});
        for (int i = 0; i < 5 && !stop_; ++i) std::this_thread::sleep_for(milliseconds{100});
      }
    }
  }
  // ["message", "+switch-master", "<name> <old ip> <old port> <new ip> <new port>"]
  void on_message(const Reply& r) {
    if (!r.is_array() || r.size() != 3 || !r.at(0).is_string() || r.at(0).str() != "message" || !r.at(2).is_string())
      return;
    const std::string_view text = r.at(2).str();
    if (!text.starts_with(master_ + " ")) return;
    ++epoch_;
    log::notice("sentinel announced a failover: pooled connections to the old primary are closed",
                {{"master", master_}, {"switch", std::string(text.substr(0, 300))}});
  }

  std::vector<std::string> sentinels_;
  std::string master_;
  milliseconds timeout_{};
  std::atomic<std::uint64_t> epoch_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// ---- pool -------------------------------------------------------------------------------
Pool::Pool(RedisOptions opts) : opts_(std::move(opts)) {}

std::uint64_t Pool::epoch() {
  if (opts_.sentinels.empty() || opts_.master_name.empty() || opts_.role != RedisOptions::Role::primary) return 0;
  std::call_once(watch_once_, [this] { watch_ = SwitchWatch::of(opts_); });
  return watch_->epoch();
}

Pool::Lease::Lease(Lease&& o) noexcept : pool_(o.pool_), conn_(std::move(o.conn_)) { o.pool_ = nullptr; }

Pool::Lease::~Lease() {
  if (pool_ && conn_) pool_->give_back(std::move(conn_));
}

namespace {
// An idle connection should have nothing to read: readable means EOF (the server restarted
// or closed an idle client) or stray data, and either way it must not serve a command.
bool idle_connection_alive(const Connection& c) noexcept {
  if (!c.poolable() || c.raw()->err) return false;
  pollfd p{c.raw()->fd, POLLIN, 0};
  int n;
  do n = ::poll(&p, 1, 0);
  while (n < 0 && errno == EINTR);
  return n == 0;
}
}  // namespace

Pool::Lease Pool::lease() {
  const auto deadline = bounded(steady_clock::now() + opts_.connect_timeout, "a connection came free");
  const std::uint64_t epoch_now = epoch();
  std::vector<std::unique_ptr<Connection>> stale;  // declared first: closed after the unlock
  std::unique_lock lock(mu_);
  for (;;) {
    while (!idle_.empty()) {
      std::unique_ptr<Connection> c = std::move(idle_.back());
      idle_.pop_back();
      if (c->epoch_ == epoch_now && idle_connection_alive(*c)) return Lease(this, std::move(c));
      stale.push_back(std::move(c));
      --open_;
    }
    if (open_ < opts_.pool_size) break;
    if (freed_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= opts_.pool_size)
      throw RedisError(RedisError::Kind::timeout, "redis: all " + std::to_string(opts_.pool_size) +
                                                      " connections busy for " + ms_text(opts_.connect_timeout) +
                                                      " (" + opts_.address + ")");
  }
  ++open_;
  lock.unlock();
  try {
    auto c = std::make_unique<Connection>(Connection::open(opts_));
    c->epoch_ = epoch_now;  // a failover during the open: left at the next lease
    return Lease(this, std::move(c));
  } catch (...) {
    {
      std::lock_guard relock(mu_);
      --open_;
    }
    freed_.notify_one();
    throw;
  }
}

void Pool::give_back(std::unique_ptr<Connection> c) noexcept {
  const bool reusable = c && c->poolable() && !c->raw()->err;
  if (reusable) c->set_command_timeout(opts_.command_timeout);
  {
    std::lock_guard lock(mu_);
    if (reusable) {
      try {
        idle_.push_back(std::move(c));
      } catch (...) {
        --open_;  // out of memory: the connection is closed (by c's destructor, after the unlock)
      }
    } else {
      --open_;
    }
  }
  freed_.notify_one();
  // A connection that is not kept is closed here, outside the lock.
}

}  // namespace mtasts
