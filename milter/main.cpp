// mta-sts-milter: start-up and shutdown around libmilter's main loop.
//
// Order matters: configuration (and --check) first; then detach and pid file; the listening
// socket is opened while still root (so it may live in a root-owned directory), given its mode
// and owner, and only then are privileges dropped; Redis is reached last, as the unprivileged
// user, so that a start-up check proves what the running filter can do.
//
// Signals: libmilter's own signal thread owns SIGHUP, SIGINT and SIGTERM (all three end
// smfi_main, so SIGHUP cannot mean "reload" here); they are blocked before any thread starts
// so that no other thread takes them. SIGUSR1 reloads the configuration (the policy settings;
// socket, user and logging need a restart). After smfi_main returns, open connections get a
// bounded time to end.
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
#include <mutex>
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

void open_socket(const SocketSpec& spec, const MilterConfig& cfg) {
  static std::string conn;  // libmilter keeps the pointer
  conn = spec.libmilter();
  if (smfi_setconn(conn.data()) != MI_SUCCESS) throw std::runtime_error("smfi_setconn failed for " + conn);
  if (spec.kind == SocketSpec::Kind::unix_path) daemon::clear_stale_socket(spec.path);
  // The socket is born with the configured mode (no window with a wider one).
  const mode_t old = ::umask(static_cast<mode_t>(~cfg.socket_mode & 0777));
  const int r = smfi_opensocket(false);
  ::umask(old);
  if (r != MI_SUCCESS) throw std::runtime_error("cannot open milter socket " + conn);
  if (spec.kind != SocketSpec::Kind::unix_path) return;
  if (::chmod(spec.path.c_str(), static_cast<mode_t>(cfg.socket_mode)) != 0)
    throw std::runtime_error("chmod " + spec.path + ": " + std::strerror(errno));
  // Owned by the user we run as, so that `socket-mode` group bits let the MTA's user in.
  daemon::chown_socket(spec.path, cfg.daemon);
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

// A runtime and the subscriber that keeps its local cache fresh: what a reload replaces.
struct Generation {
  std::shared_ptr<Runtime> rt;
  std::unique_ptr<ChangeSubscriber> subscriber;
};

Generation start_generation(const Config& c) {
  Generation g;
  g.rt = build_runtime(c);
  check_redis(*g.rt->pool, c.redis.redis.address);
  PolicyLookup* lookup = g.rt->lookup.get();
  // Its own connection with the configured (not the budget) timeouts: it is off the mail path.
  g.subscriber = std::make_unique<ChangeSubscriber>(
      c.redis.redis, PolicyStore(*g.rt->pool, c.redis.store).changed_channel(),
      [lookup](std::string_view domain) { lookup->invalidate(domain); }, [lookup] { lookup->resync(); });
  g.subscriber->start();
  return g;
}

// Settings used once at start-up (socket, process, logging, libmilter): a reload keeps the
// running values and says which changed.
Config keep_startup_settings(const Config& running, Config next) {
  const MilterConfig& a = running.milter;
  MilterConfig& b = next.milter;
  const auto keep = [](const char* name, auto& field, const auto& value) {
    if (field != value) log::warning("option changed but needs a restart; not applied", {{"option", name}});
    field = value;
  };
  keep("socket", b.socket, a.socket);
  keep("socket-mode", b.socket_mode, a.socket_mode);
  keep("milter-timeout", b.milter_timeout, a.milter_timeout);
  keep("daemonize", b.daemon.daemonize, a.daemon.daemonize);
  keep("pid-file", b.daemon.pid_file, a.daemon.pid_file);
  keep("user", b.daemon.user, a.daemon.user);
  keep("group", b.daemon.group, a.daemon.group);
  keep("log", b.daemon.log, a.daemon.log);
  keep("log-level", b.daemon.log_level, a.daemon.log_level);
  keep("log-facility", b.daemon.log_facility, a.daemon.log_facility);
  return next;
}

// SIGUSR1: re-read the configuration, build a new runtime and publish it. Connections that
// are open keep the snapshot they pinned; new ones get the new one. A bad file changes nothing.
// (SIGHUP cannot be used: libmilter's signal thread owns it and stops the filter on it.)
class Reloader {
 public:
  Reloader(int argc, char** argv, const Config& running, Generation& current)
      : argc_(argc), argv_(argv), running_(running), current_(current) {
    thread_ = std::thread([this] { loop(); });
  }
  ~Reloader() {
    stop_ = true;
    thread_.join();
  }
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;
  std::shared_ptr<Runtime> runtime() {
    std::lock_guard lk(mu_);
    return current_.rt;
  }

 private:
  void loop() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    while (!stop_) {
      timespec wait{0, 200'000'000};
      if (::sigtimedwait(&set, nullptr, &wait) == SIGUSR1) reload();
    }
  }
  void reload() {
    try {
      Config next = keep_startup_settings(running_, load_config(Program::milter, argc_, argv_, nullptr));
      const SocketSpec spec = parse_socket_spec(next.milter.socket);
      if (!spec.ok()) throw ConfigError("socket: " + spec.error);
      Generation g = start_generation(next);
      set_runtime(g.rt);
      {
        std::lock_guard lk(mu_);
        std::swap(current_, g);
      }
      g.subscriber->stop();  // the old generation's; its runtime lives on in open connections
      log::notice("configuration reloaded", {{"config", next.path}, {"previous_stats", g.rt->stats.summary()}});
    } catch (const std::exception& e) {
      log::error("reload failed; configuration unchanged", {{"error", e.what()}});
    }
  }

  int argc_;
  char** argv_;
  const Config& running_;
  Generation& current_;
  std::mutex mu_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int run(const Config& c, const SocketSpec& spec, int argc, char** argv) {
  daemon::init_logging(c.milter.daemon, "mta-sts-milter");
  daemon::detach(c.milter.daemon);

  // Before any thread exists, so that every thread inherits the mask: libmilter's signal
  // thread takes SIGHUP/SIGINT/SIGTERM, the reloader SIGUSR1.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const std::string& pid_file = c.milter.daemon.pid_file;
  std::string pid_err;
  const auto pid_guard = daemon::PidFile::create(pid_file, &pid_err);
  if (!pid_guard) {
    log::error("cannot write pid file", {{"path", pid_file}, {"error", pid_err}});
    return kExitRuntime;
  }

  try {
    if (register_filter() != MI_SUCCESS) throw std::runtime_error("smfi_register failed");
    smfi_settimeout(static_cast<int>(c.milter.milter_timeout));
    open_socket(spec, c.milter);
    daemon::drop_privileges(c.milter.daemon);
  } catch (const std::exception& e) {
    log::error("cannot start", {{"error", e.what()}});
    return kExitRuntime;
  }

  Generation current = start_generation(c);
  set_runtime(current.rt);
  int r = MI_FAILURE;
  std::shared_ptr<Runtime> last;
  {
    Reloader reloader(argc, argv, c, current);
    log::notice("started", {{"socket", spec.libmilter()}, {"version", MTASTS_VERSION}});
    daemon::notify("READY=1");
    r = smfi_main();
    daemon::notify("STOPPING=1");
    last = reloader.runtime();
  }  // no reload from here on

  // smfi_main has stopped accepting; let open connections finish their transaction.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (open_sessions() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  current.subscriber->stop();
  log::notice("stopped", {{"open_sessions", std::to_string(open_sessions())}, {"stats", last->stats.summary()}});
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
    return run(cfg, spec, argc, argv);
  } catch (const std::exception& e) {
    log::error("fatal", {{"error", e.what()}});
    std::fprintf(stderr, "mta-sts-milter: %s\n", e.what());
    return kExitRuntime;
  }
}
