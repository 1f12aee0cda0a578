// mta-sts-milter: start-up and shutdown around libmilter's main loop.
//
// Order matters: configuration (and --check) first; then detach and pid file; the listening
// socket is opened while still root (so it may live in a root-owned directory), given its mode
// and owner, and only then are privileges dropped; Redis is reached last, as the unprivileged
// user, so that a start-up check proves what the running filter can do.
//
// Signals: libmilter's signal thread sigwaits SIGHUP, SIGINT and SIGTERM and stops smfi_main
// on every one of them, SIGHUP included. A postmaster's reflex (SIGHUP: reload) must not stop
// the mail path, so smfi_main runs on a thread of its own (libmilter blocks the three signals
// there and spawns its signal thread from it), and the main thread keeps SIGHUP unblocked with
// a handler: Linux gives a process-directed signal to the thread-group leader first when that
// thread does not block it, so SIGHUP reaches our handler, never libmilter's sigwait. SIGTERM
// and SIGINT are blocked in every thread, so they reach libmilter's sigwait and stop the
// filter as before. SIGHUP and SIGUSR1 both reload the configuration (the policy settings;
// socket, user and logging need a restart): the handler only writes a byte to a pipe, and the
// main thread reloads. After smfi_main returns, open connections get a bounded time to end.
#include <libmilter/mfapi.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <grp.h>
#include <pwd.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <atomic>
#include <memory>
#include <thread>
#include <unistd.h>

#include "common/daemon/config.hpp"
#include "common/daemon/daemon.hpp"
#include "common/util/fd.hpp"
#include "common/fleet/fleet_clock.hpp"
#include "common/util/log.hpp"
#include "common/daemon/metrics_http.hpp"
#include "common/util/ratelimit.hpp"
#include "common/daemon/redis_check.hpp"
#include "milter/metrics.hpp"
#include "milter/milter.hpp"
#include "milter/socket_spec.hpp"

namespace {

using namespace mtasts;
using namespace mtasts::milter;

constexpr int kExitConfig = exit_status::config;    // bad configuration or usage
constexpr int kExitRuntime = exit_status::failure;  // could not start, or libmilter failed

// The self-pipe of the main loop: signal handlers and the smfi_main thread write one byte.
// The ends are owned by run()'s UniqueFds; the handler sees the write end's number here (a
// signal handler can only use what is async-signal-safe: a plain int and write(2)).
int g_wake[2] = {-1, -1};
constexpr char kWakeReload = 'R';
constexpr char kWakeStopped = 'S';

extern "C" void on_reload_signal(int) {
  const int saved = errno;
  const char b = kWakeReload;
  [[maybe_unused]] const ssize_t n = ::write(g_wake[1], &b, 1);  // a full pipe: a reload is already pending
  errno = saved;
}

void wake(char b) noexcept {
  [[maybe_unused]] const ssize_t n = ::write(g_wake[1], &b, 1);
}

// Why the socket cannot be opened, in the system's words: libmilter reports only failure (and
// the reason to syslog). Binding the same address ourselves gives the errno (a missing
// directory, a port in use, a permission); when that works again, errno from libmilter.
std::string bind_error(const SocketSpec& spec, int libmilter_errno) {
  auto fallback = [&] {
    return libmilter_errno != 0 ? std::string(std::strerror(libmilter_errno))
                                : std::string("libmilter could not listen there (no reason given)");
  };
  if (spec.kind == SocketSpec::Kind::unix_path) {
    const UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return std::strerror(errno);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (spec.path.size() >= sizeof a.sun_path) return "path too long for a unix socket";
    std::memcpy(a.sun_path, spec.path.data(), spec.path.size());
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) return std::strerror(errno);
    ::unlink(spec.path.c_str());  // ours, just made: binding works now
    return fallback();
  }
  addrinfo hints{};
  hints.ai_family = spec.kind == SocketSpec::Kind::inet ? AF_INET : AF_INET6;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(spec.port);
  const int gai = ::getaddrinfo(spec.host.empty() ? nullptr : spec.host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) return std::string("cannot resolve ") + spec.host + ": " + ::gai_strerror(gai);
  const std::unique_ptr<addrinfo, void (*)(addrinfo*)> owned(res, ::freeaddrinfo);
  const UniqueFd fd(::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol));
  if (!fd.valid()) return std::strerror(errno);
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as libmilter does
  if (::bind(fd.get(), res->ai_addr, res->ai_addrlen) != 0) return std::strerror(errno);
  return fallback();
}

void open_socket(const SocketSpec& spec, const MilterConfig& cfg) {
  static std::string conn;  // libmilter keeps the pointer
  conn = spec.libmilter();
  if (smfi_setconn(conn.data()) != MI_SUCCESS) throw std::runtime_error("smfi_setconn failed for " + conn);
  if (spec.kind == SocketSpec::Kind::unix_path) daemon::clear_stale_socket(spec.path);
  // The socket is born with the configured mode (no window with a wider one).
  const mode_t old = ::umask(static_cast<mode_t>(~cfg.socket_mode & 0777));
  errno = 0;
  const int r = smfi_opensocket(false);
  const int open_errno = errno;
  ::umask(old);
  if (r != MI_SUCCESS) throw std::runtime_error("cannot open milter socket " + conn + ": " + bind_error(spec, open_errno));
  if (spec.kind != SocketSpec::Kind::unix_path) return;
  if (::chmod(spec.path.c_str(), static_cast<mode_t>(cfg.socket_mode)) != 0)
    throw std::runtime_error("chmod " + spec.path + ": " + std::strerror(errno));
  // Owned by the user we run as, so that `socket-mode` group bits let the MTA's user in.
  daemon::chown_socket(spec.path, cfg.daemon);
}

// `held`: what the runtime this one replaces has read (a reload keeps it: a policy read once
// is applied until it expires, Redis down during the reload or not).
std::shared_ptr<Runtime> build_runtime(const Config& c, const Clock& clock, std::shared_ptr<LocalCache> held) {
  auto rt = std::make_shared<Runtime>();
  rt->clock = &clock;
  rt->cfg = c.milter;
  rt->decision = DecisionOptions{c.milter.on_unknown, c.milter.on_redis_error};
  rt->message = MessageOptions{c.milter.header_name, c.milter.honor_tls_required};
  // Every Redis call on the mail path is bounded by the budget.
  RedisOptions ro = c.redis.redis;
  ro.command_timeout = c.milter.redis_budget;
  ro.connect_timeout = std::min(ro.connect_timeout, c.milter.redis_budget);
  MailPathPools pools = make_mail_path_pools(ro, c.redis.read_from_replica);
  rt->pool = std::move(pools.writes);
  rt->read_pool = std::move(pools.reads);
  rt->source = std::make_unique<RedisPolicySource>(*rt->pool, c.redis.store, rt->read_pool.get());
  LookupOptions lo;
  lo.local_ttl = c.milter.local_cache_ttl;
  lo.local_cache_size = c.milter.local_cache_size;
  lo.miss_wait = c.milter.miss_wait;
  rt->lookup = std::make_unique<PolicyLookup>(*rt->source, clock, lo, &rt->stats, SleepFn{}, std::move(held));
  return rt;
}

// A runtime and the subscriber that keeps its local cache fresh: what a reload replaces.
struct Generation {
  std::shared_ptr<Runtime> rt;
  std::unique_ptr<ChangeSubscriber> subscriber;
};

// The process's one clock: the fleet clock, measured on the runtime's primary pool (a TIME a
// minute next to the miss signals), pointed at the new runtime's pool at every reload.
FleetClock& fleet_clock() {
  static FleetClock clock({});
  return clock;
}

Generation start_generation(const Config& c, std::shared_ptr<LocalCache> held = nullptr) {
  Generation g;
  g.rt = build_runtime(c, fleet_clock(), std::move(held));
  fleet_clock().set_warn_skew(c.redis.clock_skew_warning);
  fleet_clock().set_skew_limit(c.redis.clock_skew_limit);
  fleet_clock().set_source(redis_time_source(std::shared_ptr<Pool>(g.rt, g.rt->pool.get())));
  log_redis_check(c, Program::milter);
  PolicyLookup* lookup = g.rt->lookup.get();
  // Its own connection with the configured (not the budget) timeouts: it is off the mail path.
  g.subscriber = std::make_unique<ChangeSubscriber>(
      subscriber_options(c.redis.redis, c.redis.read_from_replica),
      PolicyStore(*g.rt->pool, c.redis.store).changed_channel(),
      [lookup](std::string_view domain) { lookup->invalidate(domain); }, [lookup] { lookup->resync(); });
  g.subscriber->start();
  return g;
}

// Settings used once at start-up (socket, process, logging, libmilter): a reload keeps the
// running values and says which changed.
Config keep_startup_settings(const Config& running, Config next) {
  const MilterConfig& a = running.milter;
  MilterConfig& b = next.milter;
  daemon::keep_setting("socket", b.socket, a.socket);
  daemon::keep_setting("socket-mode", b.socket_mode, a.socket_mode);
  daemon::keep_setting("milter-timeout", b.milter_timeout, a.milter_timeout);
  daemon::keep_startup_settings(running.milter.daemon, next.milter.daemon);
  return next;
}

// SIGHUP or SIGUSR1: re-read the configuration, build a new runtime and publish it. Connections
// that are open keep the snapshot they pinned; new ones get the new one. A bad file changes
// nothing. Runs on the main thread only.
void reload(int argc, char** argv, const Config& running, Generation& current) {
  try {
    Config next = keep_startup_settings(running, load_config(Program::milter, argc, argv, nullptr));
    const SocketSpec spec = parse_socket_spec(next.milter.socket);
    if (!spec.ok()) throw ConfigError("socket: " + spec.error);
    Generation g = start_generation(next, current.rt->lookup->held());
    set_runtime(g.rt);
    std::swap(current, g);
    g.subscriber->stop();  // the old generation's; its runtime lives on in open connections
    log::notice("configuration reloaded", {{"config", next.path}, {"previous_stats", g.rt->stats.summary()}});
    metrics::count_reload(true);
  } catch (const std::exception& e) {
    log::error("reload failed; configuration unchanged", {{"error", e.what()}});
    metrics::count_reload(false);
  }
}

int run(const Config& c, const SocketSpec& spec, int argc, char** argv) {
  daemon::init_logging(c.milter.daemon, "mta-sts-milter");
  daemon::detach(c.milter.daemon);

  // Before any thread exists, so that every thread inherits the mask: SIGTERM and SIGINT are
  // for libmilter's signal thread alone. SIGHUP and SIGUSR1 stay unblocked with a handler
  // (see the top of this file).
  if (::pipe2(g_wake, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  const UniqueFd wake_read(g_wake[0]), wake_write(g_wake[1]);  // closed only when run() returns
  // Declared after the pipe, so destroyed before it: no handler writes to a closed descriptor.
  struct IgnoreReloadsAtExit {
    ~IgnoreReloadsAtExit() {
      std::signal(SIGHUP, SIG_IGN);
      std::signal(SIGUSR1, SIG_IGN);
    }
  } ignore_reloads_at_exit;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  struct sigaction sa{};
  sa.sa_handler = on_reload_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGHUP, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const std::string& pid_file = c.milter.daemon.pid_file;
  std::string pid_err;
  const auto pid_guard = daemon::PidFile::create(pid_file, &pid_err);
  if (!pid_guard) {
    log::fatal("cannot write pid file", {{"path", pid_file}, {"error", pid_err}});
    return kExitRuntime;
  }

  std::unique_ptr<metrics::HttpServer> metrics_server;
  try {
    if (register_filter() != MI_SUCCESS) throw std::runtime_error("smfi_register failed");
    smfi_settimeout(static_cast<int>(c.milter.milter_timeout));
    open_socket(spec, c.milter);
    // Every series exists before the first scrape; the endpoint's thread starts after the
    // signal mask is set, like every other thread.
    metrics::register_process("mta-sts-milter");
    (void)milter_metrics();
    metrics::registry().gauge_fn("mta_sts_milter_local_cache_entries", "Entries in the in-process policy cache.", {},
                                 [] {
                                   const auto rt = current_runtime();
                                   return rt && rt->lookup ? static_cast<double>(rt->lookup->local_size()) : 0.0;
                                 });
    metrics::registry().gauge_fn("mta_sts_milter_open_sessions", "SMTP sessions the milter has open now.", {},
                                 [] { return static_cast<double>(open_sessions()); });
    metrics_server = metrics::serve(c.milter.daemon.metrics_listen);
    daemon::drop_privileges(c.milter.daemon);
  } catch (const std::exception& e) {
    log::fatal("cannot start", {{"error", e.what()}});
    return kExitRuntime;
  }

  Generation current = start_generation(c);
  set_runtime(current.rt);
  fleet_clock().start();  // measures at once, then every minute
  std::atomic<int> r{MI_FAILURE};
  std::thread milter([&r] {
    r = smfi_main();
    wake(kWakeStopped);
  });
  log::notice("started", {{"socket", spec.libmilter()}, {"version", MTASTS_VERSION}});
  daemon::notify("READY=1");
  for (bool running = true; running;) {
    pollfd p{g_wake[0], POLLIN, 0};
    if (::poll(&p, 1, -1) < 0) continue;  // EINTR: a handler ran; its byte is in the pipe
    char buf[64];
    const ssize_t n = ::read(g_wake[0], buf, sizeof buf);
    bool reload_wanted = false;
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] == kWakeStopped) running = false;
      if (buf[i] == kWakeReload) reload_wanted = true;
    }
    if (reload_wanted && running) reload(argc, argv, c, current);  // several signals: one reload
  }
  milter.join();
  daemon::notify("STOPPING=1");
  const std::shared_ptr<Runtime> last = current.rt;

  // smfi_main has stopped accepting; let open connections finish their transaction.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (open_sessions() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  current.subscriber->stop();
  fleet_clock().stop();
  fleet_clock().set_source({});  // lets the last runtime go
  log::notice("stopped", {{"open_sessions", std::to_string(open_sessions())}, {"stats", last->stats.summary()}});
  if (spec.kind == SocketSpec::Kind::unix_path) ::unlink(spec.path.c_str());
  if (r != MI_SUCCESS) {
    log::fatal("libmilter's main loop failed (its reason is in the mail log)");
    return kExitRuntime;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CommandLine cl;
  try {
    cfg = load_config(Program::milter, argc, argv, &cl);
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
    if (!cl.check_redis) return 0;
  }
  if (cl.check_redis) return run_check_redis(cfg, Program::milter);
  try {
    return run(cfg, spec, argc, argv);
  } catch (const std::exception& e) {
    log::fatal("cannot start", {{"error", e.what()}});
    return kExitRuntime;
  }
}
