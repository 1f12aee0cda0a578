// mta-sts-reportd: start-up, the collect-and-flush loop, the sender's thread, signals.
//
// Order: configuration (and --check) first; logging; detach and pid file; the sources are
// made (a tlsrpt-socket is bound) before privileges are dropped; signals are blocked before
// any thread starts and taken by the main thread with sigtimedwait. The main thread polls
// the sources every 200 ms and, every flush-interval, checkpoints the batch with the
// sources' positions (one atomic write to the state directory) and applies the pending
// batches to the fleet's aggregates in order, each exactly once (ReportStore::apply is
// idempotent per sequence number). Sending, which may wait on DNS, the MTA or an HTTPS
// server for minutes, runs on a thread of its own. SIGTERM/SIGINT: a last poll, checkpoint
// and flush, then exit; nothing read is lost (what Redis did not take waits in the spool).
//
// `--send DAY` (program-only: the option table's `send` is the daemon's yes/no): send the
// fleet's reports of DAY now and exit (0: each one sent or with nowhere to go).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/daemon/config.hpp"
#include "common/daemon/daemon.hpp"
#include "common/daemon/metrics_http.hpp"
#include "common/daemon/redis_check.hpp"
#include "common/dns/dns.hpp"
#include "common/fleet/lookup.hpp"
#include "common/fleet/redis.hpp"
#include "common/fleet/report_store.hpp"
#include "common/fleet/store.hpp"
#include "common/sts/domain.hpp"
#include "common/tlsrpt/model.hpp"
#include "common/util/clock.hpp"
#include "common/util/log.hpp"
#include "common/util/metrics.hpp"
#include "reportd/collect/classify.hpp"
#include "reportd/collect/collector.hpp"
#include "reportd/collect/source.hpp"
#include "reportd/metrics.hpp"
#include "reportd/send/send_store.hpp"
#include "reportd/send/sender.hpp"
#include "reportd/send/store_source.hpp"
#include "reportd/send/transport.hpp"

namespace {

using namespace mtasts;
using namespace std::chrono_literals;

constexpr const char* kName = "mta-sts-reportd";

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

std::string host_id_of(const ReportdConfig& c) { return c.host_id.empty() ? host_name() : c.host_id; }

// The fleet's cache as the collector reads it: through the lookup library the milter and
// mta-sts-tlsmap use (held copies, local cache, invalidation rules), read-only. The MTA's own
// lookups already told the fetchers which domains are wanted and missed; the report side
// never moves the fleet's schedule (and its Redis user may not).
class ReadOnlySource final : public PolicySource {
 public:
  ReadOnlySource(Pool& pool, const StoreOptions& opts) : inner_(pool, opts) {}
  SourceRead get(const Domain& d) override { return inner_.get(d); }
  void signal_miss(const Domain&, SysTime) override {}
  void note_wanted(const std::vector<std::pair<std::string, SysTime>>&) override {}

 private:
  RedisPolicySource inner_;
};

ReportLimits limits_of(const ReportdConfig& c) {
  ReportLimits l;
  l.keep = c.keep;
  l.max_details = c.max_failure_details;
  return l;
}

reportd::SendOptions send_options_of(const ReportdConfig& c) {
  reportd::SendOptions o;
  o.organization_name = c.organization_name;
  o.contact_info = c.contact_info;
  o.submitter = c.submitter;
  o.sender_address = c.sender_address;
  o.sendmail_command = c.sendmail_command;
  o.send = c.send;
  o.only_failures = c.only_failures;
  o.exclude = c.exclude;
  o.ca_file = c.ca_file;
  o.https_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(c.https_timeout);
  o.send_delay_max = c.send_delay_max;
  return o;
}

// Everything the sender needs, built from the configuration.
struct SendParts {
  std::unique_ptr<dns::Resolver> resolver;
  std::unique_ptr<reportd::MailSubmitter> mail;
  std::unique_ptr<reportd::HttpsPoster> https;
  std::unique_ptr<reportd::SendStore> send_store;
  std::unique_ptr<reportd::StoreReportSource> source;
  std::unique_ptr<reportd::Sender> sender;
};

SendParts make_sender(const Config& cfg, Pool& pool, ReportStore& reports, const Clock& clock) {
  const ReportdConfig& c = cfg.reportd;
  SendParts p;
  dns::ResolverOptions ro;
  for (const auto& r : c.resolvers) ro.servers.push_back(dns::parse_server(r));
  ro.timeout = c.dns_timeout;
  p.resolver = dns::make_resolver(ro);
  reportd::SendmailOptions so;
  so.command = c.sendmail_command;
  p.mail = reportd::make_sendmail(so);
  reportd::PostOptions po;
  po.ca_file = c.ca_file;
  po.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(c.https_timeout);
  p.https = reportd::make_https_poster(po, *p.resolver);
  p.send_store = std::make_unique<reportd::SendStore>(pool, cfg.redis.store.prefix, c.keep);
  const reportd::SendOptions opts = send_options_of(c);
  p.source = std::make_unique<reportd::StoreReportSource>(
      reports, opts.organization_name, opts.contact_info,
      opts.submitter.empty() ? reportd::default_submitter(opts.contact_info) : opts.submitter);
  p.sender = std::make_unique<reportd::Sender>(opts, *p.source, *p.resolver, *p.mail, *p.https, *p.send_store, clock);
  return p;
}

std::vector<std::unique_ptr<reportd::Source>> make_sources(const Config& cfg, const Clock& clock) {
  const ReportdConfig& c = cfg.reportd;
  reportd::SourceOptions so;
  so.parser.sender_address = c.sender_address;
  so.parser.sending_ip = c.sending_mta_ip;
  so.parser.clock = &clock;
  // Syslog-style stamps ("Dec  8 00:20:40": rsyslog, Postfix's maillog_file) are local time of
  // this host, which logs them: its offset from UTC now.
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  so.parser.utc_offset = local.tm_gmtoff;
  so.clock = &clock;
  std::vector<std::unique_ptr<reportd::Source>> out;
  for (const auto& spec : c.sources) {
    std::string error;
    auto s = reportd::make_source(spec, so, &error);
    if (!s) throw std::runtime_error("source " + spec + ": " + error);
    out.push_back(std::move(s));
  }
  return out;
}

// Applies the pending batches in order; stops at the first failure (order matters: a
// host's sequence numbers only grow). Returns false when Redis failed.
bool flush(reportd::Collector& collector, ReportStore& store, const std::string& host) {
  reportd::ReportdMetrics& m = reportd::reportd_metrics();
  auto pending = collector.checkpoint();
  for (auto& [seq, batch] : pending) {
    try {
      const auto applied = store.apply(host, seq, batch);
      (applied == ReportStore::Applied::applied ? m.flushes_applied : m.flushes_duplicate).inc();
      if (applied == ReportStore::Applied::applied) m.details_dropped.inc(batch.dropped_details());
      collector.acknowledge(seq);
    } catch (const RedisError& e) {
      m.flushes_error.inc();
      log::warning("counts not flushed to Redis; kept in the state directory and retried",
                   {{"error", e.what()}, {"pending", std::to_string(collector.pending())}});
      m.spooled_batches.set(static_cast<double>(collector.pending()));
      return false;
    }
  }
  m.spooled_batches.set(static_cast<double>(collector.pending()));
  return true;
}

int run_send_day(const Config& cfg, const std::string& day) {
  if (cfg.reportd.organization_name.empty() || cfg.reportd.contact_info.empty() || cfg.reportd.submitter.empty()) {
    std::fprintf(stderr, "%s: --send needs organization-name and contact-info (and a submitter) in [reportd]\n", kName);
    return exit_status::config;
  }
  SystemClock clock;
  // A day still running would be reported with what was counted so far, and never again.
  const auto start = tlsrpt::day_start(day);
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(clock.now().time_since_epoch()).count();
  if (!start || *start + 86400 > now) {
    std::fprintf(stderr, "%s: --send %s: the day is not over yet (UTC); its report is sent after 00:00 UTC\n", kName,
                 day.c_str());
    return exit_status::config;
  }
  Pool pool(cfg.redis.redis);
  ReportStore reports(pool, cfg.redis.store.prefix, limits_of(cfg.reportd));
  SendParts parts = make_sender(cfg, pool, reports, clock);
  reportd::SendSummary summary;
  try {
    summary = parts.sender->send_day(day);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s: --send %s: %s\n", kName, day.c_str(), e.what());
    return exit_status::config;
  }
  for (const auto& r : summary.results) {
    std::printf("%s %s %s%s%s\n", r.day.c_str(), r.domain.c_str(), reportd::to_string(r.outcome),
                r.rua.empty() ? "" : " ", r.rua.c_str());
  }
  return summary.ok() ? exit_status::ok : exit_status::failure;
}

int run_daemon(const Config& cfg) {
  const ReportdConfig& c = cfg.reportd;
  std::string pid_err;
  const auto pid_guard = daemon::PidFile::create(c.daemon.pid_file, &pid_err);
  if (!pid_guard) {
    log::fatal("cannot write pid file", {{"path", c.daemon.pid_file}, {"error", pid_err}});
    return exit_status::failure;
  }
  SystemClock clock;
  auto sources = make_sources(cfg, clock);  // binds a tlsrpt-socket: before the privilege drop
  daemon::drop_privileges(c.daemon);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  metrics::register_process(kName);
  (void)reportd::reportd_metrics();
  const auto metrics_server = metrics::serve(c.daemon.metrics_listen);

  Pool pool(cfg.redis.redis);
  ReportStore reports(pool, cfg.redis.store.prefix, limits_of(c));
  ReadOnlySource policies(pool, cfg.redis.store);
  LookupOptions lookup_options;
  lookup_options.keep_texts = true;  // the report's policy-string is the policy file's lines
  lookup_options.local_cache_size = 10000;
  PolicyLookup lookup(policies, clock, lookup_options);
  reportd::LookupPolicyView view(lookup);
  reportd::CollectorOptions co;
  co.state_dir = c.state_directory;
  co.max_details = c.max_failure_details;
  reportd::Collector collector(std::move(sources), view, co);
  collector.load();
  const std::string host = host_id_of(c);
  log_redis_check(cfg, Program::reportd);

  std::optional<SendParts> send_parts;
  std::unique_ptr<reportd::SendLoop> sender_loop;
  if (c.send) {
    send_parts = make_sender(cfg, pool, reports, clock);
    send_parts->sender->set_metrics(metrics::registry());
    sender_loop = std::make_unique<reportd::SendLoop>(*send_parts->sender);
  }
  log::notice("started", {{"version", MTASTS_VERSION}, {"config", cfg.path}, {"host", host},
                          {"sources", std::to_string(collector.sources().size())},
                          {"pending", std::to_string(collector.pending())}, {"send", c.send ? "yes" : "no"}});
  daemon::notify("READY=1");

  // The sessions counted so far, by result, for the metrics (added as they grow).
  auto counted = collector.stats().by_result;
  const auto count_sessions = [&] {
    reportd::ReportdMetrics& m = reportd::reportd_metrics();
    const auto& now = collector.stats().by_result;
    for (std::size_t i = 0; i < now.size(); ++i) {
      if (now[i] > counted[i]) m.sessions[i]->inc(now[i] - counted[i]);
    }
    counted = now;
  };
  auto next_flush = std::chrono::steady_clock::now();  // flush what the spool held at once
  for (;;) {
    collector.poll();
    count_sessions();
    if (std::chrono::steady_clock::now() >= next_flush) {
      flush(collector, reports, host);
      next_flush = std::chrono::steady_clock::now() + c.flush_interval;
    }
    timespec tick{0, 200'000'000};
    const int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGHUP) {
      log::notice("SIGHUP: reading the sources now (rotation is noticed by itself)", {});
    } else if (sig == SIGTERM || sig == SIGINT) {
      log::notice("stopping", {{"signal", sig == SIGTERM ? "TERM" : "INT"}});
      break;
    }
  }
  daemon::notify("STOPPING=1");
  sender_loop.reset();
  collector.poll();
  count_sessions();
  const bool flushed = flush(collector, reports, host);
  log::notice("stopped", {{"pending", std::to_string(collector.pending())}, {"flushed", flushed ? "yes" : "no"}});
  return exit_status::ok;
}

// A UTC day "YYYY-MM-DD".
bool looks_like_day(const char* s) { return s && tlsrpt::day_start(s).has_value(); }

}  // namespace

int main(int argc, char** argv) {
  // `--send DAY` / `--send=DAY` is taken out before the shared option parser sees the rest
  // (where `--send[=BOOL]` is the [reportd] option).
  std::string send_day;
  std::vector<const char*> args;
  for (int i = 0; i < argc; ++i) {
    if (i > 0 && std::strcmp(argv[i], "--send") == 0 && i + 1 < argc && looks_like_day(argv[i + 1])) {
      send_day = argv[++i];
    } else if (i > 0 && std::strncmp(argv[i], "--send=", 7) == 0 && looks_like_day(argv[i] + 7)) {
      send_day = argv[i] + 7;
    } else {
      args.push_back(argv[i]);
    }
  }
  const int nargs = static_cast<int>(args.size());

  Config cfg;
  CommandLine cl;
  try {
    cfg = load_config(Program::reportd, nargs, args.data(), &cl);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", kName, e.what());
    return exit_status::config;
  }
  if (cl.help) {
    std::fputs(usage(Program::reportd).c_str(), stdout);
    std::fputs("  --send DAY                        send the fleet's reports of DAY (YYYY-MM-DD, UTC) now, "
               "then exit\n",
               stdout);
    return exit_status::ok;
  }
  if (cl.version) {
    std::printf("%s %s\n", kName, MTASTS_VERSION);
    return exit_status::ok;
  }
  if (cl.check) {
    std::printf("%s: configuration OK%s%s\n", kName, cfg.path.empty() ? "" : " (",
                cfg.path.empty() ? "" : (cfg.path + ")").c_str());
    if (!cl.check_redis) return exit_status::ok;
  }
  // A sending host also claims reports and records them (reportd/send/send_store).
  if (cl.check_redis)
    return run_check_redis(cfg, Program::reportd,
                           cfg.reportd.send ? reportd::send_store_probes(cfg.redis.store.prefix)
                                            : std::vector<RedisProbe>{});

  try {
    daemon::init_logging(cfg.reportd.daemon, kName);
    if (!send_day.empty()) return run_send_day(cfg, send_day);
    daemon::detach(cfg.reportd.daemon);
    return run_daemon(cfg);
  } catch (const std::exception& e) {
    log::fatal("cannot start", {{"error", e.what()}});
    return exit_status::failure;
  }
}
