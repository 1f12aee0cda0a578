// mta-sts-cached: start-up, signals and shutdown around the fetcher's Worker.
//
// Order: configuration (and --check) first; logging; detach and pid file; privilege drop;
// then signals are blocked before any thread starts, so that only the main thread receives
// them (with sigtimedwait: no work in a signal handler at all). SIGHUP re-reads the
// configuration and swaps the services snapshot (on error the old one stays); SIGTERM and
// SIGINT stop taking work, give tasks in flight `shutdown-timeout`, then abandon transfers.
//
// `--once` (program-only flag, not a configuration option): process the warm list, the
// current misses and the due domains once, then exit (tests, benchmarks, cron).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "cached/metrics.hpp"
#include "cached/worker.hpp"
#include "common/daemon/config.hpp"
#include "common/daemon/daemon.hpp"
#include "common/fleet/fleet_clock.hpp"
#include "common/util/log.hpp"
#include "common/daemon/metrics_http.hpp"
#include "common/daemon/redis_check.hpp"

namespace {

using namespace mtasts;

constexpr int kExitOk = exit_status::ok;
constexpr int kExitFail = exit_status::failure;     // could not start, or Redis unusable (--once)
constexpr int kExitConfig = exit_status::config;    // bad configuration (also for --check)

std::atomic<bool> g_abort{false};

// The fleet clock reads TIME on a connection of its own (one, with the configured timeouts),
// so that its round trip never queues behind the workers' commands.
void point_clock_at(FleetClock& clock, const Config& cfg) {
  RedisOptions o = cfg.redis.redis;
  o.pool_size = 1;
  clock.set_warn_skew(cfg.redis.clock_skew_warning);
  clock.set_skew_limit(cfg.redis.clock_skew_limit);
  clock.set_source(redis_time_source(std::make_shared<Pool>(o)));
}

// Everything --check verifies beyond the option table: the services can be built (resolver
// addresses, resolv.conf, ca-file) and the warm list is readable.
void check_services(const Config& cfg) {
  (void)worker::make_services(cfg, nullptr);
  if (!cfg.cached.warm_list.empty()) {
    std::ifstream in(cfg.cached.warm_list);
    if (!in) throw std::runtime_error("cannot read warm-list " + cfg.cached.warm_list);
  }
}

int run_daemon(const Config& cfg, int argc, const char* const* argv) {
  const std::string& pid_file = cfg.cached.daemon.pid_file;
  std::string pid_err;
  const auto pid_guard = daemon::PidFile::create(pid_file, &pid_err);
  if (!pid_guard) {
    log::fatal("cannot write pid file", {{"path", pid_file}, {"error", pid_err}});
    return kExitFail;
  }

  daemon::drop_privileges(cfg.cached.daemon);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // After the signal mask, so that the endpoint's thread inherits it. Read once: a reload
  // does not move the endpoint (a restart does).
  metrics::register_process("mta-sts-cached");
  (void)worker::fetcher_metrics();
  const auto metrics_server = metrics::serve(cfg.cached.daemon.metrics_listen);

  Config current = cfg;
  FleetClock clock({});
  point_clock_at(clock, current);  // its source and warning bound
  clock.sync();  // before the first pass; the thread measures again every minute
  clock.start();
  worker::Worker w(worker::make_services(current, &g_abort), clock);
  log_redis_check(current, Program::cached);  // not fatal: the worker retries with backoff
  std::thread loop([&w] { w.run(); });
  log::notice("started", {{"version", MTASTS_VERSION}, {"config", current.path}});
  daemon::notify("READY=1");

  for (;;) {
    timespec tick{1, 0};
    const int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGHUP) {
      try {
        CommandLine cl;
        Config fresh = load_config(Program::cached, argc, argv, &cl);
        auto services = worker::make_services(fresh, &g_abort);
        daemon::init_logging(fresh.cached.daemon, "mta-sts-cached");
        w.reload(std::move(services));
        point_clock_at(clock, fresh);
        if (fresh.cached.daemon.metrics_listen != cfg.cached.daemon.metrics_listen)  // bound at start
          log::warning("option changed but needs a restart; not applied", {{"option", "metrics-listen"}});
        current = std::move(fresh);
        log::notice("configuration reloaded", {{"config", current.path}});
        metrics::count_reload(true);
      } catch (const std::exception& e) {
        log::error("reload failed; keeping the running configuration", {{"error", e.what()}});
        metrics::count_reload(false);
      }
    } else if (sig == SIGTERM || sig == SIGINT) {
      log::notice("stopping", {{"signal", sig == SIGTERM ? "TERM" : "INT"},
                               {"in_flight", std::to_string(w.in_flight())}});
      break;
    }
  }
  daemon::notify("STOPPING=1");
  w.stop();
  loop.join();
  if (!w.wait_idle(std::chrono::duration_cast<std::chrono::milliseconds>(current.cached.shutdown_timeout))) {
    log::warning("shutdown timeout: abandoning fetches in flight", {{"in_flight", std::to_string(w.in_flight())}});
    g_abort = true;
    // Transfers notice the flag within a second; DNS queries end at their own timeout.
    const auto grace = std::chrono::milliseconds(1500) +
                       current.cached.dns_timeout * (current.cached.dns_retries + 1) * 2;
    if (!w.wait_idle(grace)) {
      log::error("tasks still running at exit; their locks expire by themselves");
      if (!pid_file.empty()) daemon::remove_pid_file(pid_file);
      std::_Exit(kExitOk);
    }
  }
  log::notice("stopped", {});
  return kExitOk;
}

int run_once(const Config& cfg) {
  FleetClock clock({});
  point_clock_at(clock, cfg);
  clock.sync();  // one measurement is enough for one pass
  worker::Worker w(worker::make_services(cfg, &g_abort), clock);
  const auto r = w.run_once();
  std::string line = "once:";
  for (const auto& [k, v] : w.counters()) line += " " + k + "=" + std::to_string(v);
  log::notice(line, {{"taken", std::to_string(r.taken)}, {"busy", std::to_string(r.busy)}});
  if (!r.redis_ok) {
    log::fatal("redis unusable (see mta-sts-cached --check-redis)");
    return kExitFail;
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  // Program-only flags are taken out before the shared option parser sees the rest.
  bool once = false;
  std::vector<const char*> args;
  for (int i = 0; i < argc; ++i) {
    if (i > 0 && std::strcmp(argv[i], "--once") == 0) once = true;
    else args.push_back(argv[i]);
  }
  const int nargs = static_cast<int>(args.size());

  Config cfg;
  CommandLine cl;
  try {
    cfg = load_config(Program::cached, nargs, args.data(), &cl);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mta-sts-cached: %s\n", e.what());
    return kExitConfig;
  }
  if (cl.help) {
    std::fputs(usage(Program::cached).c_str(), stdout);
    std::fputs("  --once                            process the warm list, misses and due domains once, then "
               "exit\n",
               stdout);
    return kExitOk;
  }
  if (cl.version) {
    std::printf("mta-sts-cached %s\n", MTASTS_VERSION);
    return kExitOk;
  }
  try {
    check_services(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mta-sts-cached: %s%s%s\n", cfg.path.c_str(), cfg.path.empty() ? "" : ": ", e.what());
    return kExitConfig;
  }
  if (cl.check) {
    std::printf("mta-sts-cached: configuration OK%s%s\n", cfg.path.empty() ? "" : " (",
                cfg.path.empty() ? "" : (cfg.path + ")").c_str());
    if (!cl.check_redis) return kExitOk;
  }
  if (cl.check_redis) return run_check_redis(cfg, Program::cached);

  try {
    daemon::init_logging(cfg.cached.daemon, "mta-sts-cached");
    if (once) return run_once(cfg);
    daemon::detach(cfg.cached.daemon);
    return run_daemon(cfg, nargs, args.data());
  } catch (const std::exception& e) {
    log::fatal("cannot start", {{"error", e.what()}});
    return kExitFail;
  }
}
