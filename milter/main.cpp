// mta-sts-milter: start-up and shutdown around libmilter's main loop.
//
// Order matters: configuration (and --check) first; then detach and pid file; the listening
// socket is opened while still root (so it may live in a root-owned directory), given its mode
// and owner, and only then are privileges dropped; Redis is reached last, as the unprivileged
// user, so that a start-up check proves what the running filter can do.
//
// Signals: libmilter's own signal thread owns SIGHUP, SIGINT and SIGTERM (all three end
// smfi_main); they are blocked here before any thread starts so that no other thread takes
// them. A configuration reload is therefore a restart (systemd: ExecReload is not set; use
// `systemctl restart`). After smfi_main returns, open connections get a bounded time to end.
#include <libmilter/mfapi.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

#include "common/config.hpp"
#include "common/daemon.hpp"
#include "common/log.hpp"
#include "milter/milter.hpp"
#include "milter/socket_spec.hpp"

namespace {

using namespace mtasts;
using namespace mtasts::milter;

constexpr int kExitConfig = 2;   // bad configuration or usage
constexpr int kExitRuntime = 1;  // could not start, or libmilter failed

// Is something listening on this unix socket? (connect() succeeds only then)
bool unix_socket_alive(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  const int r = ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
  ::close(fd);
  return r == 0;
}

// A leftover socket from a crash is removed; a live one (another instance) or a file that is
// not a socket is an error.
void clear_stale_socket(const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path + " exists and is not a socket");
  if (unix_socket_alive(path)) throw std::runtime_error("another process is listening on " + path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw std::runtime_error("cannot remove stale socket " + path + ": " + std::strerror(errno));
  log::notice("removed stale socket", {{"path", path}});
}

void open_socket(const SocketSpec& spec, const MilterConfig& cfg) {
  static std::string conn;  // libmilter keeps the pointer
  conn = spec.libmilter();
  if (smfi_setconn(conn.data()) != MI_SUCCESS) throw std::runtime_error("smfi_setconn failed for " + conn);
  if (spec.kind == SocketSpec::Kind::unix_path) clear_stale_socket(spec.path);
  // The socket is born with the configured mode (no window with a wider one).
  const mode_t old = ::umask(static_cast<mode_t>(~cfg.socket_mode & 0777));
  const int r = smfi_opensocket(false);
  ::umask(old);
  if (r != MI_SUCCESS) throw std::runtime_error("cannot open milter socket " + conn);
  if (spec.kind != SocketSpec::Kind::unix_path) return;
  if (::chmod(spec.path.c_str(), static_cast<mode_t>(cfg.socket_mode)) != 0)
    throw std::runtime_error("chmod " + spec.path + ": " + std::strerror(errno));
  // Owned by the user we run as, so that `socket-mode` group bits let the MTA's user in.
  if (!cfg.daemon.user.empty() && ::geteuid() == 0) {
    const passwd* pw = ::getpwnam(cfg.daemon.user.c_str());
    if (!pw) throw std::runtime_error("unknown user " + cfg.daemon.user);
    gid_t gid = pw->pw_gid;
    if (!cfg.daemon.group.empty()) {
      const group* gr = ::getgrnam(cfg.daemon.group.c_str());
      if (!gr) throw std::runtime_error("unknown group " + cfg.daemon.group);
      gid = gr->gr_gid;
    }
    if (::chown(spec.path.c_str(), pw->pw_uid, gid) != 0)
      throw std::runtime_error("chown " + spec.path + ": " + std::strerror(errno));
  }
}

std::shared_ptr<Runtime> build_runtime(const Config& c) {
  auto rt = std::make_shared<Runtime>();
  rt->cfg = c.milter;
  rt->decision = DecisionOptions{c.milter.on_unknown, c.milter.on_redis_error};
  rt->message = MessageOptions{c.milter.header_name, c.milter.honor_tls_required};
  // Every Redis call on the mail path is bounded by the budget.
  RedisOptions ro = c.redis.redis;
  ro.command_timeout = c.milter.redis_budget;
  ro.connect_timeout = std::min(ro.connect_timeout, c.milter.redis_budget);
  rt->pool = std::make_unique<Pool>(ro);
  rt->source = std::make_unique<RedisPolicySource>(*rt->pool, c.redis.store);
  LookupOptions lo;
  lo.local_ttl = c.milter.local_cache_ttl;
  lo.local_cache_size = c.milter.local_cache_size;
  lo.miss_wait = c.milter.miss_wait;
  rt->lookup = std::make_unique<PolicyLookup>(*rt->source, rt->clock, lo, &rt->stats);
  return rt;
}

void check_redis(Pool& pool, const std::string& address) {
  try {
    auto lease = pool.lease();
    lease->command({"PING"});
    log::info("redis reachable", {{"address", address}});
  } catch (const std::exception& e) {
    // Not fatal: mail flows per on-redis-error until Redis is back.
    log::warning("redis not reachable at start-up", {{"address", address}, {"error", e.what()}});
  }
}

int run(const Config& c, const SocketSpec& spec) {
  daemon::init_logging(c.milter.daemon, "mta-sts-milter");
  daemon::detach(c.milter.daemon);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const std::string& pid_file = c.milter.daemon.pid_file;
  if (!pid_file.empty()) {
    std::string err;
    if (!daemon::write_pid_file(pid_file, &err)) {
      log::error("cannot write pid file", {{"path", pid_file}, {"error", err}});
      return kExitRuntime;
    }
  }
  struct PidFileGuard {
    const std::string& path;
    ~PidFileGuard() {
      if (!path.empty()) daemon::remove_pid_file(path);
    }
  } pid_guard{pid_file};

  try {
    if (register_filter() != MI_SUCCESS) throw std::runtime_error("smfi_register failed");
    smfi_settimeout(static_cast<int>(c.milter.milter_timeout));
    open_socket(spec, c.milter);
    daemon::drop_privileges(c.milter.daemon);
  } catch (const std::exception& e) {
    log::error("cannot start", {{"error", e.what()}});
    return kExitRuntime;
  }

  std::shared_ptr<Runtime> rt = build_runtime(c);
  check_redis(*rt->pool, c.redis.redis.address);
  PolicyLookup* lookup = rt->lookup.get();
  // Its own connection with the configured (not the budget) timeouts: it is off the mail path.
  ChangeSubscriber subscriber(
      c.redis.redis, PolicyStore(*rt->pool, c.redis.store).changed_channel(),
      [lookup](std::string_view domain) { lookup->invalidate(domain); }, [lookup] { lookup->resync(); });
  subscriber.start();
  set_runtime(rt);

  log::notice("started", {{"socket", spec.libmilter()}, {"version", MTASTS_VERSION}});
  daemon::notify("READY=1");
  const int r = smfi_main();
  daemon::notify("STOPPING=1");

  // smfi_main has stopped accepting; let open connections finish their transaction.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (open_sessions() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  subscriber.stop();
  log::notice("stopped", {{"open_sessions", std::to_string(open_sessions())}, {"stats", rt->stats.summary()}});
  if (spec.kind == SocketSpec::Kind::unix_path) ::unlink(spec.path.c_str());
  return r == MI_SUCCESS ? 0 : kExitRuntime;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CommandLine cl;
  try {
    cfg = load_config(Program::milter, argc, argv, &cl);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "mta-sts-milter: %s\n", e.what());
    return kExitConfig;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mta-sts-milter: %s\n", e.what());
    return kExitConfig;
  }
  if (cl.help) {
    std::fputs(usage(Program::milter).c_str(), stdout);
    return 0;
  }
  if (cl.version) {
    std::printf("mta-sts-milter %s\n", MTASTS_VERSION);
    return 0;
  }
  const SocketSpec spec = parse_socket_spec(cfg.milter.socket);
  if (!spec.ok()) {
    std::fprintf(stderr, "mta-sts-milter: %s%ssocket %s: %s\n", cfg.path.c_str(), cfg.path.empty() ? "" : ": ",
                 cfg.milter.socket.c_str(), spec.error.c_str());
    return kExitConfig;
  }
  if (cl.check) {
    std::printf("mta-sts-milter: configuration OK%s%s\n", cfg.path.empty() ? "" : " (",
                cfg.path.empty() ? "" : (cfg.path + ")").c_str());
    return 0;
  }
  try {
    return run(cfg, spec);
  } catch (const std::exception& e) {
    log::error("fatal", {{"error", e.what()}});
    std::fprintf(stderr, "mta-sts-milter: %s\n", e.what());
    return kExitRuntime;
  }
}
