// mta-sts-tlsmap: start-up, reload and shutdown around the socketmap server.
//
// Order matters, as in the other daemons: configuration (and --check) first; then detach and
// pid file; the listening sockets are opened while still root (a unix socket may live in a
// root-owned directory and is given to the daemon's user), and only then are privileges
// dropped; Redis and the resolver are reached last, as the unprivileged user.
//
// Signals are blocked in every thread and taken by one signal thread: SIGTERM and SIGINT stop
// the server (requests in flight are answered first, within a bound), SIGHUP reloads the
// policy settings (a new lookup runtime is built and published; requests in flight finish on
// the one they started with; listen, workers, user and logging need a restart).
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>

#include "common/daemon/config.hpp"
#include "common/daemon/daemon.hpp"
#include "common/dns/dns.hpp"
#include "common/fleet/fleet_clock.hpp"
#include "common/util/log.hpp"
#include "common/fleet/lookup.hpp"
#include "common/daemon/metrics_http.hpp"
#include "common/daemon/redis_check.hpp"
#include "tlsmap/listen.hpp"
#include "tlsmap/mx.hpp"
#include "tlsmap/responder.hpp"
#include "tlsmap/metrics.hpp"
#include "tlsmap/server.hpp"

namespace {

using namespace mtasts;
using namespace mtasts::tlsmap;

constexpr int kExitConfig = 2;   // bad configuration or usage
constexpr int kExitRuntime = 1;  // could not start

// Everything a lookup needs, built from one configuration: what a reload replaces.
struct Runtime {
  const Clock* clock = nullptr;  // the process's fleet clock (outlives every runtime)
  LookupStats stats;
  std::unique_ptr<Pool> pool;       // the primary: miss signals (and reads unless read_pool)
  std::unique_ptr<Pool> read_pool;  // a replica, with read-from = replica
  std::unique_ptr<RedisPolicySource> source;
  std::unique_ptr<PolicyLookup> lookup;
  std::unique_ptr<dns::Resolver> resolver;
  std::unique_ptr<DnsMxSource> mx;
  std::unique_ptr<Responder> responder;
  std::unique_ptr<ChangeSubscriber> subscriber;
  std::jthread dane_retry;  // probes again while DANE is off for want of a validated answer
  ~Runtime() {
    if (subscriber) subscriber->stop();
  }
};

// The resolver, and whether DANE may be used with it: `dane = yes`, every resolver on loopback
// (or in dane-trusted-resolver), and the DNSSEC probe validated. Without all three no answer
// is DANE: a forged or unvalidated AD bit must not turn an enforce domain into dane-only,
// and a Postfix whose resolver does not validate would not do DANE either. Throws when no
// resolver is configured.
struct DaneSetup {
  std::unique_ptr<dns::Resolver> resolver;
  DaneResolverCheck check;
  // DANE wanted, the resolvers trusted, but the probe not validated (yet): worth asking again
  // (a local resolver still starting, or priming its trust anchor).
  bool retry = false;
  std::vector<dns::Server> servers, trusted;
};
DaneSetup setup_dns(const TlsmapConfig& t) {
  dns::ResolverOptions dro;
  for (const auto& r : t.resolvers) dro.servers.push_back(dns::parse_server(r));
  if (dro.servers.empty()) dro.servers = dns::servers_from_resolv_conf();
  dro.timeout = t.dns_timeout;
  dro.retries = t.dns_retries;
  DaneSetup out;
  out.servers = dro.servers;
  out.resolver = dns::make_resolver(std::move(dro));
  if (!t.dane) {
    out.check.why = "dane = no";
    return out;
  }
  for (const auto& r : t.dane_trusted_resolvers) out.trusted.push_back(dns::parse_server(r));
  out.check = probe_dane_resolver(*out.resolver, out.servers, out.trusted, t.dane_probe_name);
  out.retry = !out.check.ok && untrusted_resolver(out.servers, out.trusted).empty();
  return out;
}

// While DANE is off only because the probe was not validated, probe again every minute and
// switch DANE on in `mx` once it is (a resolver that trust cannot be given waits for a
// reload). Stops with the runtime.
std::jthread retry_dane_probe(dns::Resolver* resolver, const DaneSetup& ds, DnsMxSource* mx, std::string probe_name) {
  return std::jthread([resolver, servers = ds.servers, trusted = ds.trusted, mx,
                       name = std::move(probe_name)](std::stop_token stop) {
    std::mutex m;
    std::condition_variable_any cv;
    while (!stop.stop_requested()) {
      {
        std::unique_lock lk(m);
        cv.wait_for(lk, stop, std::chrono::minutes(1), [] { return false; });
      }
      if (stop.stop_requested()) return;
      if (probe_dane_resolver(*resolver, servers, trusted, name).ok) {
        mx->set_dane(true);
        log::notice("DANE on: the resolver now validates DNSSEC", {{"probe", name}});
        return;
      }
    }
  });
}

// `held`: what the runtime this one replaces has read (a reload keeps it: a policy read once
// is applied until it expires, Redis down during the reload or not).
std::shared_ptr<Runtime> build_runtime(const Config& c, const Clock& clock, std::shared_ptr<LocalCache> held = nullptr) {
  const TlsmapConfig& t = c.tlsmap;
  auto rt = std::make_shared<Runtime>();
  rt->clock = &clock;
  // Every Redis call on the delivery path is bounded by the budget. One connection per
  // worker at least, so that workers do not queue for connections.
  RedisOptions ro = c.redis.redis;
  ro.command_timeout = t.redis_budget;
  ro.connect_timeout = std::min(ro.connect_timeout, t.redis_budget);
  ro.pool_size = std::max<std::size_t>(ro.pool_size, t.workers);
  MailPathPools pools = make_mail_path_pools(ro, c.redis.read_from_replica);
  rt->pool = std::move(pools.writes);
  rt->read_pool = std::move(pools.reads);
  rt->source = std::make_unique<RedisPolicySource>(*rt->pool, c.redis.store, rt->read_pool.get());
  LookupOptions lo;
  lo.local_ttl = t.local_cache_ttl;
  lo.local_cache_size = t.local_cache_size;
  lo.miss_wait = t.miss_wait;
  rt->lookup = std::make_unique<PolicyLookup>(*rt->source, clock, lo, &rt->stats, SleepFn{}, std::move(held));

  bool dane = false, retry = false;
  try {
    DaneSetup ds = setup_dns(t);
    dane = ds.check.ok;
    retry = ds.retry;
    if (dane)
      log::notice("DANE on: the resolver validates DNSSEC", {{"probe", t.dane_probe_name}});
    else if (t.dane)
      log::warning(retry ? "DANE off: no dane-only answer will be given (MTA-STS answers only) until the probe "
                           "validates (asked again every minute)"
                         : "DANE off: no dane-only answer will be given (MTA-STS answers only)",
                   {{"reason", ds.check.why}});
    MxOptions mo;
    mo.max_ttl = t.mx_cache_ttl;
    mo.max_entries = t.mx_cache_size;
    mo.dane = dane;
    // One domain's lookup holds at most a quarter of the workers (plus the one resolving):
    // a domain whose DNS hangs cannot starve the others.
    mo.max_waiting = std::max<std::size_t>(1, t.workers / 4);
    rt->resolver = std::move(ds.resolver);
    rt->mx = std::make_unique<DnsMxSource>(*rt->resolver, clock, mo);
    if (retry) rt->dane_retry = retry_dane_probe(rt->resolver.get(), ds, rt->mx.get(), t.dane_probe_name);
  } catch (const std::exception& e) {
    log::warning("no DNS resolver: `*.` patterns will be sent as `.suffix` and DANE is off",
                 {{"error", e.what()}});
  }
  ReplyOptions ro2;
  ro2.on_unknown = t.on_unknown;
  ro2.on_redis_error = t.on_redis_error;
  ro2.strict_testing = t.strict_testing;
  ro2.dane = dane || retry;  // the MX set is looked up for every enforce domain then
  rt->responder = std::make_unique<Responder>(*rt->lookup, rt->mx.get(), clock, ro2, t.redis_budget);

  try {
    auto lease = (rt->read_pool ? rt->read_pool : rt->pool)->lease();
    lease->command({"PING"});
    log::info("redis reachable", {{"address", c.redis.redis.address}});
  } catch (const std::exception& e) {
    // Not fatal: lookups answer per on-redis-error until Redis is back.
    log::warning("redis not reachable at start-up", {{"address", c.redis.redis.address}, {"error", e.what()}});
  }
  PolicyLookup* lookup = rt->lookup.get();
  // Its own connection with the configured (not the budget) timeouts: it is off the lookup path.
  rt->subscriber = std::make_unique<ChangeSubscriber>(
      subscriber_options(c.redis.redis, c.redis.read_from_replica),
      PolicyStore(*rt->pool, c.redis.store).changed_channel(),
      [lookup](std::string_view domain) { lookup->invalidate(domain); }, [lookup] { lookup->resync(); });
  rt->subscriber->start();
  return rt;
}

// The server's handler: forwards to the current runtime, pinned per request, so that a reload
// can swap it under running requests.
class CurrentRuntime final : public Handler {
 public:
  explicit CurrentRuntime(std::shared_ptr<Runtime> rt) : rt_(std::move(rt)) {}
  std::optional<std::string> answer_fast(std::string_view request) override { return get()->responder->answer_fast(request); }
  std::string answer(std::string_view request) override { return get()->responder->answer(request); }
  // The DNS part runs later on another thread: it keeps the runtime it started with.
  StagedAnswer answer_staged(std::string_view request) override {
    std::shared_ptr<Runtime> rt = get();
    StagedAnswer a = rt->responder->answer_staged(request);
    if (a.dns) a.dns = [rt = std::move(rt), rest = std::move(a.dns)] { return rest(); };
    return a;
  }
  std::shared_ptr<Runtime> get() {
    std::lock_guard lk(mu_);
    return rt_;
  }
  std::shared_ptr<Runtime> swap(std::shared_ptr<Runtime> next) {
    std::lock_guard lk(mu_);
    std::swap(rt_, next);
    return next;
  }

 private:
  std::mutex mu_;
  std::shared_ptr<Runtime> rt_;
};

// Settings used once at start-up: a reload keeps the running values and says which changed.
Config keep_startup_settings(const Config& running, Config next) {
  const TlsmapConfig& a = running.tlsmap;
  TlsmapConfig& b = next.tlsmap;
  daemon::keep_setting("listen", b.listen, a.listen);
  daemon::keep_setting("socket-mode", b.socket_mode, a.socket_mode);
  daemon::keep_setting("workers", b.workers, a.workers);
  daemon::keep_setting("dns-workers", b.dns_workers, a.dns_workers);
  daemon::keep_setting("request-timeout", b.request_timeout, a.request_timeout);
  daemon::keep_setting("queue-size", b.queue_size, a.queue_size);
  daemon::keep_setting("max-connections", b.max_connections, a.max_connections);
  daemon::keep_setting("idle-timeout", b.idle_timeout, a.idle_timeout);
  daemon::keep_startup_settings(running.tlsmap.daemon, next.tlsmap.daemon);
  return next;
}

// Thousands of client connections need as many descriptors: raise the soft limit as far as
// the hard limit allows.
void raise_fd_limit(std::size_t wanted) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  const rlim_t want = static_cast<rlim_t>(wanted) + 64;
  if (rl.rlim_cur >= want) return;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
    log::warning("descriptor limit below max-connections", {{"limit", std::to_string(rl.rlim_cur)}});
}

int run(const Config& c, int argc, char** argv) {
  const TlsmapConfig& t = c.tlsmap;
  daemon::init_logging(t.daemon, "mta-sts-tlsmap");
  daemon::detach(t.daemon);

  // Before any thread exists, so that every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::string pid_err;
  const auto pid_guard = daemon::PidFile::create(t.daemon.pid_file, &pid_err);
  if (!pid_guard) {
    log::fatal("cannot write pid file", {{"path", t.daemon.pid_file}, {"error", pid_err}});
    return kExitRuntime;
  }
  raise_fd_limit(t.max_connections);

  std::vector<UniqueFd> listeners;
  const std::vector<std::string> specs = t.listen_or_default();
  try {
    for (const auto& spec : specs) listeners.push_back(open_listener(spec, t.socket_mode, t.daemon));
    daemon::drop_privileges(t.daemon);
  } catch (const std::exception& e) {
    log::fatal("cannot start", {{"error", e.what()}});
    return kExitRuntime;
  }
  log_redis_check(c, Program::tlsmap);  // not fatal: lookups answer on-redis-error meanwhile

  // The fleet clock measures on the runtime's primary pool (a TIME a minute next to the miss
  // signals), pointed at the new runtime's pool at every reload. Declared before the
  // runtimes, so that it outlives them.
  FleetClock clock({});  // point_clock sets its source and warning bound
  const auto point_clock = [&clock](const std::shared_ptr<Runtime>& rt, const Config& cfg) {
    clock.set_warn_skew(cfg.redis.clock_skew_warning);
    clock.set_skew_limit(cfg.redis.clock_skew_limit);
    clock.set_source(redis_time_source(std::shared_ptr<Pool>(rt, rt->pool.get())));
  };
  CurrentRuntime current(build_runtime(c, clock));
  point_clock(current.get(), c);
  clock.start();  // measures at once, then every minute
  ServerOptions so;
  so.idle_timeout = t.idle_timeout;
  so.workers = t.workers;
  so.dns_workers = t.dns_workers;
  so.request_timeout = t.request_timeout;
  so.queue_size = t.queue_size;
  so.max_connections = t.max_connections;
  Server server(current, so);
  for (auto& l : listeners) server.add_listener(std::move(l));

  // Declared after the server, so destroyed before it: its callbacks read the server's counters.
  std::unique_ptr<metrics::HttpServer> metrics_server;
  try {
    metrics::register_process("mta-sts-tlsmap");
    (void)tlsmap_metrics();
    auto& reg = metrics::registry();
    const ServerCounters& sc = server.counters();
    reg.counter_fn("mta_sts_tlsmap_connections_total", "Client connections accepted.", {},
                   [&sc] { return sc.accepted.load(); });
    reg.counter_fn("mta_sts_tlsmap_connections_refused_total", "Client connections refused (max-connections).", {},
                   [&sc] { return sc.refused.load(); });
    reg.gauge_fn("mta_sts_tlsmap_connections_open", "Client connections open now.", {},
                 [&sc] { return static_cast<double>(sc.open.load()); });
    reg.counter_fn("mta_sts_tlsmap_requests_total", "Socketmap requests received.", {},
                   [&sc] { return sc.requests.load(); });
    reg.counter_fn("mta_sts_tlsmap_connections_evicted_total",
                   "Connections closed to make room for a new one (slots or descriptors full).", {},
                   [&sc] { return sc.evicted.load(); });
    reg.counter_fn("mta_sts_tlsmap_connections_timed_out_total",
                   "Connections closed because a request or the reading of a reply took past request-timeout.", {},
                   [&sc] { return sc.timed_out.load(); });
    reg.counter_fn("mta_sts_tlsmap_queue_full_total",
                   "Requests answered TEMP because every worker was busy and the queue full.", {},
                   [&sc] { return sc.busy.load(); });
    reg.counter_fn("mta_sts_tlsmap_protocol_errors_total", "Connections closed for a socketmap protocol error.", {},
                   [&sc] { return sc.protocol_errors.load(); });
    metrics_server = metrics::serve(t.daemon.metrics_listen);
  } catch (const std::exception& e) {
    log::fatal("cannot start", {{"error", e.what()}});
    return kExitRuntime;
  }

  std::atomic<bool> done{false};
  std::thread signals([&] {
    while (!done.load()) {
      timespec wait{0, 200'000'000};
      const int sig = ::sigtimedwait(&set, nullptr, &wait);
      if (sig == SIGTERM || sig == SIGINT) {
        log::notice("stopping", {{"signal", sig == SIGTERM ? "TERM" : "INT"}});
        server.stop();
        return;
      }
      if (sig == SIGHUP) {
        try {
          Config next = keep_startup_settings(c, load_config(Program::tlsmap, argc, argv, nullptr));
          auto fresh = build_runtime(next, clock, current.get()->lookup->held());
          point_clock(fresh, next);
          auto old = current.swap(std::move(fresh));
          log::notice("configuration reloaded", {{"config", next.path}, {"previous_stats", old->stats.summary()}});
          metrics::count_reload(true);
          // The old runtime's end (subscriber join, last demand flush) may wait on Redis: it
          // runs here, never on the event loop or a worker that happened to hold it last.
          // Nobody can take a new reference to it now; requests in flight release theirs.
          while (old.use_count() > 1) std::this_thread::sleep_for(std::chrono::milliseconds(10));
          old.reset();
        } catch (const std::exception& e) {
          log::error("reload failed; configuration unchanged", {{"error", e.what()}});
          metrics::count_reload(false);
        }
      }
    }
  });

  std::string where;
  for (const auto& s : specs) where += (where.empty() ? "" : ",") + s;
  log::notice("started", {{"listen", where}, {"version", MTASTS_VERSION}});
  daemon::notify("READY=1");
  int rc = 0;
  try {
    server.run();
  } catch (const std::exception& e) {
    log::error("server failed", {{"error", e.what()}});
    rc = kExitRuntime;
  }
  daemon::notify("STOPPING=1");
  done = true;
  signals.join();
  clock.stop();
  log::notice("stopped", {{"server", server.counters().summary()}, {"stats", current.get()->stats.summary()}});
  for (const auto& s : specs)
    if (s.starts_with("unix:")) ::unlink(s.substr(5).c_str());
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CommandLine cl;
  try {
    cfg = load_config(Program::tlsmap, argc, argv, &cl);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mta-sts-tlsmap: %s\n", e.what());
    return kExitConfig;
  }
  if (cl.help) {
    std::fputs(usage(Program::tlsmap).c_str(), stdout);
    return 0;
  }
  if (cl.version) {
    std::printf("mta-sts-tlsmap %s\n", MTASTS_VERSION);
    return 0;
  }
  if (cl.check) {
    std::printf("mta-sts-tlsmap: configuration OK%s%s\n", cfg.path.empty() ? "" : " (",
                cfg.path.empty() ? "" : (cfg.path + ")").c_str());
    // Whether DANE answers will be given, and why not: asks the resolver (the DNSSEC probe).
    try {
      const DaneSetup ds = setup_dns(cfg.tlsmap);
      if (ds.check.ok)
        std::printf("mta-sts-tlsmap: DANE on (the resolver validated the probe for %s)\n",
                    cfg.tlsmap.dane_probe_name.c_str());
      else
        std::printf("mta-sts-tlsmap: DANE off (%s): MTA-STS answers only\n", ds.check.why.c_str());
    } catch (const std::exception& e) {
      std::printf("mta-sts-tlsmap: DANE off (no DNS resolver: %s)\n", e.what());
    }
    if (!cl.check_redis) return 0;
  }
  if (cl.check_redis) return run_check_redis(cfg, Program::tlsmap);
  try {
    return run(cfg, argc, argv);
  } catch (const std::exception& e) {
    log::fatal("cannot start", {{"error", e.what()}});
    return kExitRuntime;
  }
}
