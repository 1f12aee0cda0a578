// bench_milter: what mta-sts-milter costs a Postfix MTA. Not a test: nothing is asserted.
//
// smtp-source -> Postfix -> smtp-sink, all on loopback. smtp-source sends D recipients per
// message ("u@bench.test", "2u@bench.test", ...); Postfix's smtpd_command_filter turns the
// n-th into "un@dn.bench.test", so every message has D recipient domains as the smtpd (and
// so the milter) sees them. Three Postfix instances are configured alike but for
// smtpd_milters: none, bench_null_milter (a filter that asks for nothing and does nothing:
// the floor of any milter), mta-sts-milter (default configuration, local cache on) and
// mta-sts-milter with `metrics-listen` set and scraped every second through the runs (a
// Prometheus server scrapes every 15 s or so: this is harsher), to show what metrics cost.
//
//   1. throughput: R rounds; each runs the same smtp-source load through the three, in
//      rotating order; reported are the medians, their ratios to "no milter", and the busy
//      CPU time of the whole machine (and of mta-sts-milter) per message with its ratio to
//      "no milter" (on a machine where Postfix is CPU-bound, the share of its capacity kept;
//      steadier than the rate, which moves with the shared VM's speed between runs)
//   2. the milter's peak RSS (VmHWM) with 200 SMTP sessions held open together, and the
//      peak of MTA connections it had open at once
//   3. lookup latency inside the milter (its statistics line at exit): local-cache hits from
//      the milter of step 1; Redis hits from a milter with local-cache-ttl = 0, with the same
//      load (S sessions) and with 2 sessions; the machine's CPU use is printed with them
//   4. the same lookup code in this process with the machine otherwise idle
// Redis holds D policies (enforce, testing, none, no policy, ...).
//
//   bench_milter [--messages N] [--sessions S] [--domains D] [--rounds R] [--rss-sessions R] [--size BYTES] [--keep-sessions] [--untagged]
// --untagged: every domain without a policy, so the milter looks up but changes no header
// (separates the cost of the milter protocol from that of Postfix applying header changes).
// --keep-sessions: each session sends all its messages over one connection (smtp-source -d)
// instead of one message per connection, as a relay with connection reuse would.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/fleet/lookup.hpp"
#include "tests/e2e/milter/mail_env.hpp"
#include "tests/support/redis_server.hpp"

namespace {

using namespace mtasts;
using namespace mtasts::test;
using namespace mtasts::test::e2e;
using mtasts::LookupStats;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct Args {
  int messages = 2000;
  int sessions = 20;
  int domains = 5;
  int rounds = 3;
  int rss_sessions = 200;
  int size = 2000;  // bytes per message (smtp-source -l)
  bool keep_sessions = false;  // every session sends its share over one connection (smtp-source -d)
  bool untagged = false;  // every domain without a policy: lookups but no header changes
};

std::string bench_domain(int i) { return "d" + std::to_string(i) + ".bench.test"; }

// A Postfix relaying to the sink whose smtpd rewrites smtp-source's numbered recipients
// into one domain each.
std::unique_ptr<Postfix> measured(const fs::path& dir, unsigned sink_port, const std::string& milter) {
  fs::create_directories(dir);
  write_file(dir / "rcpt.regexp",
             "/^RCPT TO:<u@bench\\.test>(.*)$/ RCPT TO:<u1@d1.bench.test>${1}\n"
             "/^RCPT TO:<([0-9]+)u@bench\\.test>(.*)$/ RCPT TO:<u${1}@d${1}.bench.test>${2}\n");
  return std::make_unique<Postfix>(
      dir, PostfixOptions{.relay_port = sink_port,
                          .milter = milter,
                          .main_cf = {"smtpd_command_filter = regexp:" + (dir / "rcpt.regexp").string(),
                                      "default_process_limit = 400", "smtpd_client_connection_count_limit = 0",
                                      "default_destination_concurrency_limit = 40"}});
}

// Busy CPU time of the whole machine so far (user, nice, system, irq, softirq), in seconds.
double machine_cpu_seconds() {
  std::istringstream in(read_file("/proc/stat"));
  std::string cpu;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq;
  return static_cast<double>(user + nice + system + irq + softirq) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

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

// A numeric field of /proc/<pid>/status ("VmHWM", "Threads"); -1 when absent.
long status_field(pid_t pid, const std::string& name) {
  const std::string s = read_file("/proc/" + std::to_string(pid) + "/status");
  const auto at = s.find("\n" + name + ":");
  return at == std::string::npos ? -1 : std::atol(s.c_str() + at + name.size() + 2);
}

// One scrape of http://127.0.0.1:port/metrics (HTTP/1.0, read to the end); its size in bytes.
std::size_t scrape(unsigned port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::size_t got = 0;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) {
    const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    if (::write(fd, req, sizeof req - 1) == static_cast<ssize_t>(sizeof req - 1)) {
      char buf[16384];
      for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) got += static_cast<std::size_t>(n);
    }
  }
  ::close(fd);
  return got;
}

struct RunFigures {
  double rate = 0;         // messages per second, first connection to last message at the sink
  double cpu_ms = 0;       // busy CPU of the whole machine per message
  double milter_ms = 0;    // CPU of the milter process per message (0 without one)
};

// smtp-source sends `messages` messages of `bytes` bytes with `rcpts` recipients each over
// `sessions` parallel sessions (one message per connection, or with `keep` all of a
// session's messages over one connection, `wait_s` seconds apart); done when the sink has
// them all.
RunFigures run_source(unsigned port, int messages, int sessions, int rcpts, int bytes, bool keep, Sink& sink,
                      pid_t milter = -1, int wait_s = 0) {
  const std::size_t want = sink.count() + static_cast<std::size_t>(messages);
  const double cpu0 = machine_cpu_seconds();
  const double m0 = milter > 0 ? cpu_seconds(milter) : 0;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> argv = {"smtp-source", "-4", "-s", std::to_string(sessions), "-m", std::to_string(messages),
                                   "-r", std::to_string(rcpts), "-f", "sender@sender.bench.test", "-t", "u@bench.test",
                                   "-M", "client.bench.test", "-l", std::to_string(bytes)};
  if (keep) argv.push_back("-d");
  if (wait_s > 0) argv.insert(argv.end(), {"-w", std::to_string(wait_s)});
  argv.push_back("127.0.0.1:" + std::to_string(port));
  const RunResult r = run(argv, 900s);
  if (r.exit_code != 0) std::fprintf(stderr, "smtp-source: exit %d %s%s\n", r.exit_code, r.out.c_str(), r.err.c_str());
  if (!wait_until([&] { return sink.count() >= want; }, 600s))
    std::fprintf(stderr, "only %zu of %d messages reached the sink\n", sink.count() + messages - want, messages);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  RunFigures f;
  f.rate = messages / secs;
  f.cpu_ms = (machine_cpu_seconds() - cpu0) * 1000.0 / messages;
  if (milter > 0) f.milter_ms = (cpu_seconds(milter) - m0) * 1000.0 / messages;
  return f;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string field(const std::string& text, const std::string& key) {
  const std::regex re("[ \"]" + key + "=([0-9.]+)");
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
  RedisPolicySource source(pool, StoreOptions{});
  SystemClock clock;
  LookupOptions lo;
  lo.local_ttl = local_ttl;
  PolicyLookup lookup(source, clock, lo, &stats);
  std::vector<Domain> ds;
  for (int i = 1; i <= domains; ++i) ds.push_back(*Domain::parse(bench_domain(i)).domain);
  for (int i = 0; i < n; ++i) lookup.lookup(ds[static_cast<std::size_t>(i % domains)]);
}

double us(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1000.0; }

int usage() {
  std::fprintf(stderr,
               "usage: bench_milter [--messages N] [--sessions S] [--domains D (1-9)] [--rounds R] "
               "[--rss-sessions R] [--size BYTES] [--keep-sessions] [--untagged]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--untagged" || k == "--keep-sessions") {
      (k == "--untagged" ? a.untagged : a.keep_sessions) = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) return usage();
    const int v = std::atoi(argv[i + 1]);
    if (v <= 0) return usage();
    if (k == "--messages") a.messages = v;
    else if (k == "--sessions") a.sessions = v;
    else if (k == "--domains") a.domains = v;
    else if (k == "--rounds") a.rounds = v;
    else if (k == "--rss-sessions") a.rss_sessions = v;
    else if (k == "--size") a.size = v;
    else return usage();
  }
  if (a.domains > 9) return usage();
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

    std::printf(
        "bench_milter: %d messages of %d bytes per run, %d sessions%s, %d recipient domains per message%s, %d rounds\n",
        a.messages, a.size, a.sessions, a.keep_sessions ? " (kept open: smtp-source -d)" : " (one message each)",
        a.domains, a.untagged ? " (none with a policy)" : "", a.rounds);
    std::fflush(stdout);

    // 1. Throughput, the three Postfix instances in rotating order.
    enum { kPlain, kNull, kOurs, kMetrics, kConfigs };
    const char* const names[kConfigs] = {"no milter", "null milter", "mta-sts-milter", "  + metrics"};
    std::size_t scrapes = 0, scrape_bytes = 0;
    std::vector<RunFigures> runs[kConfigs];
    long hwm_kib = -1;
    long peak_threads = -1;
    long peak_connections = -1;
    std::string stats_local;
    {
      auto milter = start_milter("milter-default", {});
      const unsigned metrics_port = free_tcp_port();
      auto metrics_milter = start_milter("milter-metrics", {"metrics-listen = 127.0.0.1:" + std::to_string(metrics_port)});
      const std::string null_socket = "unix:" + (dir / "null-milter.sock").string();
      Process null_milter({MTASTS_NULL_MILTER_BIN, null_socket}, dir / "null-milter.log");
      if (!wait_until([&] { return fs::exists(dir / "null-milter.sock"); }, 10s))
        throw std::runtime_error("bench_null_milter did not start: " + read_file(dir / "null-milter.log"));
      std::unique_ptr<Postfix> pf[kConfigs] = {measured(dir / "pf-plain", sink.port(), ""),
                                               measured(dir / "pf-null", sink.port(), null_socket),
                                               measured(dir / "pf-milter", sink.port(), milter->socket()),
                                               measured(dir / "pf-metrics", sink.port(), metrics_milter->socket())};
      const pid_t mpid = milter->process().pid();
      const pid_t metrics_pid = metrics_milter->process().pid();
      // The scraper: every second, through warm-up and every round.
      std::atomic<bool> scraping{true};
      std::thread scraper([&] {
        while (scraping) {
          const std::size_t n = scrape(metrics_port);
          if (n > 0) {
            ++scrapes;
            scrape_bytes = n;
          }
          for (int i = 0; i < 10 && scraping; ++i) std::this_thread::sleep_for(100ms);
        }
      });
      // Warm-up: Postfix processes started, the milter's local cache filled.
      for (auto& p : pf) run_source(p->smtp_port(), 100, a.sessions, a.domains, a.size, a.keep_sessions, sink);
      for (int r = 0; r < a.rounds; ++r) {
        for (int k = 0; k < kConfigs; ++k) {
          const int c = (r + k) % kConfigs;
          runs[c].push_back(run_source(pf[c]->smtp_port(), a.messages, a.sessions, a.domains, a.size, a.keep_sessions, sink,
                                       c == kOurs ? mpid : c == kMetrics ? metrics_pid : -1));
          std::printf("  round %d %-15s %7.1f msg/s\n", r + 1, names[c], runs[c].back().rate);
          std::fflush(stdout);
        }
      }
      scraping = false;
      scraper.join();
      // 2. Peak RSS with every session open at once: each sends 3 messages over its connection,
      // a second apart, so all of them (and their milter connections) stay open for seconds.
      // The milter's peak of open descriptors (one per MTA connection) shows how many were
      // open together.
      const std::string fd_dir = "/proc/" + std::to_string(mpid) + "/fd";
      auto open_fds = [&] {
        std::error_code ec;
        long n = 0;
        for (auto it = fs::directory_iterator(fd_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) ++n;
        return n;
      };
      const long fds_idle = open_fds();
      std::atomic<bool> sampling{true};
      std::thread sampler([&] {
        while (sampling) {
          peak_connections = std::max(peak_connections, open_fds() - fds_idle);
          peak_threads = std::max(peak_threads, status_field(mpid, "Threads"));
          std::this_thread::sleep_for(5ms);
        }
      });
      run_source(pf[kOurs]->smtp_port(), a.rss_sessions * 3, a.rss_sessions, a.domains, a.size, true, sink, -1, 1);
      sampling = false;
      sampler.join();
      hwm_kib = status_field(mpid, "VmHWM");
      for (auto& p : pf) p.reset();
      null_milter.stop();
      milter->stop();
      metrics_milter->stop();
      stats_local = milter->log();
    }
    auto pick = [&](int c, double RunFigures::*m) {
      std::vector<double> x;
      for (const auto& f : runs[c]) x.push_back(f.*m);
      return median(x);
    };
    const double rate_plain = pick(kPlain, &RunFigures::rate);

    // 3. Redis hits inside the milter: with the throughput run's load, and with 2 sessions.
    enum { kSaturated, kTwoSessions, kPhases };
    RunFigures phase_run[kPhases];
    std::string phase_stats[kPhases];
    long long phase_conns[kPhases] = {};
    for (int phase = 0; phase < kPhases; ++phase) {
      const std::string name = "nocache-" + std::to_string(phase);
      auto milter = start_milter("milter-" + name, {"local-cache-ttl = 0"});
      auto pf = measured(dir / ("pf-" + name), sink.port(), milter->socket());
      const long long c0 = redis.info("total_connections_received");
      phase_run[phase] = phase == kSaturated ? run_source(pf->smtp_port(), a.messages, a.sessions, a.domains, a.size, a.keep_sessions, sink)
                                             : run_source(pf->smtp_port(), a.messages / 2, 2, a.domains, a.size, a.keep_sessions, sink);
      phase_conns[phase] = redis.info("total_connections_received") - c0 - 1;  // less redis-cli's own
      pf.reset();
      milter->stop();
      phase_stats[phase] = milter->log();
    }

    // 4. The same code in this process.
    LookupStats ip_redis, ip_local;
    lookup_in_process(redis.address(), a.domains, 0s, 20000, ip_redis);
    lookup_in_process(redis.address(), a.domains, 60s, 200000, ip_local);

    std::printf("\nthroughput (messages/s, smtp-source -> Postfix -> smtp-sink; median of %d runs each):\n", a.rounds);
    for (int c = 0; c < kConfigs; ++c) {
      std::printf("  %-15s %8.1f   ratio %.3f   machine CPU %.2f ms/message (CPU ratio %.3f)", names[c],
                  pick(c, &RunFigures::rate), pick(c, &RunFigures::rate) / rate_plain, pick(c, &RunFigures::cpu_ms),
                  pick(kPlain, &RunFigures::cpu_ms) / pick(c, &RunFigures::cpu_ms));
      if (c == kOurs || c == kMetrics) std::printf(" (milter process %.2f ms)", pick(c, &RunFigures::milter_ms));
      std::printf("\n");
    }
    std::printf("  (+ metrics: mta-sts-milter with metrics-listen, scraped every second: %zu scrapes of %zu bytes)\n",
                scrapes, scrape_bytes);
    std::printf("\nper-recipient-domain lookup latency inside the milter (us):\n");
    std::printf("  local-cache hits (throughput runs):  n=%s p50=%s p99=%s\n", field(stats_local, "local").c_str(),
                field(stats_local, "local_p50_us").c_str(), field(stats_local, "local_p99_us").c_str());
    const std::string phase_names[kPhases] = {std::to_string(a.sessions) + " sessions", "2 sessions"};
    for (int phase = 0; phase < kPhases; ++phase) {
      const std::string& st = phase_stats[phase];
      std::printf("  Redis hits, %-12s %6.1f msg/s, CPU %3.0f%%: n=%s p50=%s p99=%s failed=%s, Redis connections opened %lld\n",
                  phase_names[phase].c_str(), phase_run[phase].rate,
                  phase_run[phase].cpu_ms * phase_run[phase].rate / 10.0 / static_cast<double>(::sysconf(_SC_NPROCESSORS_ONLN)),
                  field(st, "redis").c_str(),
                  field(st, "redis_p50_us").c_str(), field(st, "redis_p99_us").c_str(), field(st, "failed").c_str(),
                  phase_conns[phase]);
    }
    std::printf("\nsame lookup code in this process, machine otherwise idle (us):\n");
    std::printf("  local-cache hits: n=%llu p50=%.1f p99=%.1f\n",
                static_cast<unsigned long long>(ip_local.local.count()), us(ip_local.local.percentile(0.5)),
                us(ip_local.local.percentile(0.99)));
    std::printf("  Redis hits:       n=%llu p50=%.1f p99=%.1f\n",
                static_cast<unsigned long long>(ip_redis.redis.count()), us(ip_redis.redis.percentile(0.5)),
                us(ip_redis.redis.percentile(0.99)));
    std::printf("\nmilter peak RSS (VmHWM) with %d SMTP sessions open together: %.1f MiB (peak %ld MTA connections "
                "open at once, %ld threads)\n",
                a.rss_sessions, static_cast<double>(hwm_kib) / 1024.0, peak_connections, peak_threads);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_milter: %s\n", e.what());
    return 1;
  }
}
