// bench_milter: what mta-sts-milter costs a Postfix MTA. Not a test: nothing is asserted.
//
// smtp-source puts one recipient domain in every message, so each run is a chain:
//   smtp-source -> front Postfix (virtual_alias_maps expands each recipient into D recipients
//   at D domains) -> measured Postfix (smtpd_milters = the milter, or none) -> smtp-sink
// The front Postfix is the same in every run; only the measured one changes. Runs:
//   1. no milter
//   2. the milter as configured by default (local cache on)
//   3. the milter with local-cache-ttl = 0 (every lookup a Redis round trip)
//   4. 200 concurrent sessions straight into the milter's Postfix, for the peak RSS
// Lookup latency is measured inside the milter (its statistics line at exit), where it
// includes waiting for a CPU while Postfix keeps both cores busy, and again in this process
// with the milter's own lookup code (PolicyLookup over a Pool with the same 50 ms budget) on
// an idle machine. The RSS is the milter's VmHWM from /proc. Redis holds D policies (enforce, testing, none, no policy, ...).
//
//   bench_milter [--messages N] [--sessions S] [--domains D] [--rss-sessions R] [--untagged]
// --untagged: every domain without a policy, so the milter looks up but changes no header
// (separates the cost of the milter protocol from that of Postfix applying header changes).
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>
#include <sstream>
#include <unistd.h>
#include <string>
#include <vector>

#include "milter/lookup.hpp"
#include "tests/e2e/milter/mail_env.hpp"
#include "tests/support/redis_server.hpp"

namespace {

using namespace mtasts;
using namespace mtasts::test;
using namespace mtasts::test::e2e;
using mtasts::milter::LookupStats;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct Args {
  int messages = 2000;
  int sessions = 20;
  int domains = 5;
  int rss_sessions = 200;
  bool untagged = false;  // every domain without a policy: lookups but no header changes
};

std::string bench_domain(int i) { return "d" + std::to_string(i) + ".bench.test"; }

// Front Postfix: expands "<n>u@bench.test" into "<n>u@d1.bench.test, ..." and relays to `next`.
std::unique_ptr<Postfix> front(const fs::path& dir, unsigned next, int domains) {
  fs::create_directories(dir);
  std::string targets;
  for (int i = 1; i <= domains; ++i) targets += (i > 1 ? ", " : "") + std::string("${1}u@") + bench_domain(i);
  write_file(dir / "virtual.regexp", "/^([0-9]*)u@bench\\.test$/ " + targets + "\n");
  return std::make_unique<Postfix>(
      dir, PostfixOptions{.relay_port = next,
                          .main_cf = {"virtual_alias_maps = regexp:" + (dir / "virtual.regexp").string(),
                                      "default_process_limit = 300", "default_destination_concurrency_limit = 40",
                                      "smtpd_client_connection_count_limit = 0", "smtp_connection_cache_on_demand = no"}});
}

std::unique_ptr<Postfix> measured(const fs::path& dir, unsigned sink_port, const std::string& milter) {
  fs::create_directories(dir);
  return std::make_unique<Postfix>(
      dir, PostfixOptions{.relay_port = sink_port,
                          .milter = milter,
                          .main_cf = {"default_process_limit = 300", "smtpd_client_connection_count_limit = 0",
                                      "default_destination_concurrency_limit = 40"}});
}

double run_source(unsigned port, const std::string& to, int messages, int sessions, int rcpts, Sink& sink,
                  std::size_t before) {
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult r = run({"smtp-source", "-4", "-s", std::to_string(sessions), "-m", std::to_string(messages), "-r",
                           std::to_string(rcpts), "-f", "sender@sender.bench.test", "-t", to, "-M", "client.bench.test",
                           "-l", "2000", "127.0.0.1:" + std::to_string(port)},
                          600s);
  if (r.exit_code != 0) std::fprintf(stderr, "smtp-source: exit %d %s%s\n", r.exit_code, r.out.c_str(), r.err.c_str());
  const std::size_t want = before + static_cast<std::size_t>(messages);
  if (!wait_until([&] { return sink.count() >= want; }, 600s))
    std::fprintf(stderr, "only %zu of %d messages reached the sink\n", sink.count() - before, messages);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return messages / secs;
}

std::string field(const std::string& text, const std::string& key) {
  const std::regex re(key + "=([0-9.]+)");
  std::smatch m;
  return std::regex_search(text, m, re) ? m[1].str() : "?";
}

// The milter's lookup path in this process: n lookups cycling over the bench domains.
void lookup_in_process(const std::string& redis_address, int domains, std::chrono::seconds local_ttl, int n,
                       LookupStats& stats) {
  RedisOptions ro;
  ro.address = redis_address;
  ro.command_timeout = 50ms;
  ro.connect_timeout = 50ms;
  Pool pool(ro);
  milter::RedisPolicySource source(pool, StoreOptions{});
  SystemClock clock;
  milter::LookupOptions lo;
  lo.local_ttl = local_ttl;
  milter::PolicyLookup lookup(source, clock, lo, &stats);
  std::vector<Domain> ds;
  for (int i = 1; i <= domains; ++i) ds.push_back(*Domain::parse(bench_domain(i)).domain);
  for (int i = 0; i < n; ++i) lookup.lookup(ds[static_cast<std::size_t>(i % domains)]);
}

double us(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1000.0; }

// CPU seconds (user + system) a process used so far.
double cpu_seconds(pid_t pid) {
  const std::string s = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = s.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(s.substr(close + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

long vm_hwm_kib(pid_t pid) {
  const std::string s = read_file("/proc/" + std::to_string(pid) + "/status");
  const auto at = s.find("VmHWM:");
  return at == std::string::npos ? -1 : std::atol(s.c_str() + at + 6);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--untagged") {
      a.untagged = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) k.clear();
    const int v = std::atoi(argv[i + 1]);
    if (k == "--messages") a.messages = v;
    else if (k == "--sessions") a.sessions = v;
    else if (k == "--domains") a.domains = v;
    else if (k == "--rss-sessions") a.rss_sessions = v;
    else {
      std::fprintf(stderr, "usage: bench_milter [--messages N] [--sessions S] [--domains D] [--rss-sessions R] [--untagged]\n");
      return 2;
    }
  }
  try {
    TempDir dir("mtasts-bench-milter");
    RedisServer redis;
    CacheFiller cache(redis.address());
    for (int i = 1; i <= a.domains; ++i) {
      const std::string d = bench_domain(i);
      switch (a.untagged ? 0 : i % 4) {
        case 1: cache.put(d, make_policy(Mode::enforce, "bench" + std::to_string(i), {"mx." + d})); break;
        case 2: cache.put(d, make_policy(Mode::testing, "bench" + std::to_string(i), {"mx." + d})); break;
        case 3: cache.put(d, make_policy(Mode::none, "bench" + std::to_string(i), {})); break;
        default: cache.put(d, make_negative()); break;
      }
    }
    Sink sink(dir.path());

    auto start_milter = [&](const std::string& name, std::vector<std::string> lines) {
      fs::create_directories(dir / name);
      MilterOptions o;
      o.redis_address = redis.address();
      o.milter_lines = std::move(lines);
      o.milter_lines.push_back("socket-mode = 0666");
      o.milter_lines.push_back("log-level = info");
      o.milter_lines.push_back("redis-budget = 50ms");
      return std::make_unique<MilterDaemon>(dir / name, o);
    };

    std::printf("bench_milter: %d messages, %d sessions, %d recipient domains per message%s\n", a.messages,
                a.sessions, a.domains, a.untagged ? " (none with a policy)" : "");
    // 1. Without a milter.
    double rate_none = 0;
    {
      auto m = measured(dir / "pf-none", sink.port(), "");
      auto f = front(dir / "pf-front-none", m->smtp_port(), a.domains);
      rate_none = run_source(f->smtp_port(), "u@bench.test", a.messages, a.sessions, 1, sink, sink.count());
    }
    // 2. With the milter, default configuration (local cache), then 4. its peak RSS.
    double rate_milter = 0;
    std::string stats_local;
    long hwm_kib = -1;
    double milter_cpu = 0;
    {
      auto milter = start_milter("milter-default", {});
      auto m = measured(dir / "pf-milter", sink.port(), milter->socket());
      auto f = front(dir / "pf-front-milter", m->smtp_port(), a.domains);
      rate_milter = run_source(f->smtp_port(), "u@bench.test", a.messages, a.sessions, 1, sink, sink.count());
      milter_cpu = cpu_seconds(milter->process().pid());
      // Straight into the milter's Postfix: every session is one milter connection.
      run_source(m->smtp_port(), "u@" + bench_domain(1), a.rss_sessions * 5, a.rss_sessions, 3, sink, sink.count());
      hwm_kib = vm_hwm_kib(milter->process().pid());
      f.reset();
      m.reset();
      milter->stop();
      stats_local = milter->log();
    }
    // 3. With the milter and no local cache: every lookup goes to Redis.
    double rate_redis = 0;
    std::string stats_redis;
    {
      auto milter = start_milter("milter-nocache", {"local-cache-ttl = 0"});
      auto m = measured(dir / "pf-milter-nocache", sink.port(), milter->socket());
      auto f = front(dir / "pf-front-nocache", m->smtp_port(), a.domains);
      rate_redis = run_source(f->smtp_port(), "u@bench.test", a.messages, a.sessions, 1, sink, sink.count());
      f.reset();
      m.reset();
      milter->stop();
      stats_redis = milter->log();
    }

    LookupStats ip_redis, ip_local;
    lookup_in_process(redis.address(), a.domains, 0s, 20000, ip_redis);
    lookup_in_process(redis.address(), a.domains, 60s, 200000, ip_local);

    std::printf("\nthroughput (messages/s, end to end through both Postfix instances):\n");
    std::printf("  without milter:               %8.1f\n", rate_none);
    std::printf("  with milter (local cache):    %8.1f   ratio %.3f\n", rate_milter, rate_milter / rate_none);
    std::printf("  with milter (local cache off):%8.1f   ratio %.3f\n", rate_redis, rate_redis / rate_none);
    std::printf("  milter CPU time for the %d messages of the default run: %.2f s (%.0f us per message)\n",
                a.messages, milter_cpu, milter_cpu * 1e6 / a.messages);
    std::printf("\nper-recipient-domain lookup latency inside the milter (us):\n");
    std::printf("  local-cache hits: n=%s p50=%s p99=%s\n", field(stats_local, "local").c_str(),
                field(stats_local, "local_p50_us").c_str(), field(stats_local, "local_p99_us").c_str());
    std::printf("  Redis hits:       n=%s p50=%s p99=%s\n", field(stats_redis, "redis").c_str(),
                field(stats_redis, "redis_p50_us").c_str(), field(stats_redis, "redis_p99_us").c_str());
    std::printf("  failed lookups:   default run %s, no-cache run %s\n", field(stats_local, "failed").c_str(),
                field(stats_redis, "failed").c_str());
    std::printf("\nsame lookup code in this process, machine otherwise idle (us):\n");
    std::printf("  local-cache hits: n=%llu p50=%.1f p99=%.1f\n",
                static_cast<unsigned long long>(ip_local.local.count()), us(ip_local.local.percentile(0.5)),
                us(ip_local.local.percentile(0.99)));
    std::printf("  Redis hits:       n=%llu p50=%.1f p99=%.1f\n",
                static_cast<unsigned long long>(ip_redis.redis.count()), us(ip_redis.redis.percentile(0.5)),
                us(ip_redis.redis.percentile(0.99)));
    std::printf("\nmilter peak RSS (VmHWM) after %d concurrent sessions: %.1f MiB\n", a.rss_sessions,
                static_cast<double>(hwm_kib) / 1024.0);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_milter: %s\n", e.what());
    return 1;
  }
}
