// bench_cached: how fast the fetcher fills and refreshes the cache. It publishes N domains in
// the loopback world (dnsmasq + nginx + test CA + redis-server), then measures two passes of
// the production worker (ldns resolver, libcurl, Redis):
//   warm:    N signalled misses -> N discoveries with an HTTPS fetch each
//   refresh: every entry due, every TXT id unchanged -> N DNS checks, no fetch
// and prints domains per second, the concurrency and the peak RSS of this process (the
// servers are separate processes and not counted). Not a test: nothing here is asserted.
//
//   bench_cached [--domains N] [--concurrency C]
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cached/worker.hpp"
#include "common/util/log.hpp"
#include "tests/support/world.hpp"

namespace {

using namespace mtasts;

// Real time plus an offset the benchmark moves, to make every entry due without waiting.
class ShiftedClock final : public Clock {
 public:
  SysTime now() const override { return real_.now() + Seconds{offset_.load()}; }
  void shift(Seconds s) { offset_ += s.count(); }
 private:
  SystemClock real_;
  std::atomic<Seconds::rep> offset_{0};
};

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

struct Pass {
  double seconds = 0;
  std::size_t taken = 0;
  long long fetches = 0;
  long long valid = 0;
  long long unchanged = 0;
  long long failures = 0;
};

Pass run_pass(const std::shared_ptr<const worker::Services>& s, const Clock& clock) {
  worker::Worker w(s, clock);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = w.run_once();
  Pass p;
  p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  p.taken = r.taken;
  auto c = w.counters();
  p.fetches = c["https_fetches"];
  p.valid = c["status_valid"];
  p.unchanged = c["status_unchanged"];
  for (const auto& [k, v] : c)
    if (k.rfind("failures_", 0) == 0) p.failures += v;
  if (std::getenv("BENCH_VERBOSE")) {
    for (const auto& [k, v] : c) std::printf("  %s=%lld", k.c_str(), v);
    std::printf("\n");
  }
  return p;
}

void print(const char* name, const Pass& p, std::size_t n) {
  std::printf("%-8s %6zu domains in %7.3f s = %8.1f domains/s  (https fetches %lld, valid %lld, unchanged %lld, "
              "failures %lld)\n",
              name, n, p.seconds, static_cast<double>(p.taken) / p.seconds, p.fetches, p.valid, p.unchanged,
              p.failures);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t domains = 2000;
  unsigned concurrency = 32;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--domains" && i + 1 < argc) domains = std::strtoul(argv[++i], nullptr, 10);
    else if (a == "--concurrency" && i + 1 < argc) concurrency = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    else {
      std::fprintf(stderr, "usage: bench_cached [--domains N] [--concurrency C]\n");
      return 2;
    }
  }
  if (domains == 0 || concurrency == 0) return 2;
  log::init(log::Setup{"bench_cached", log::Target::stderr_, log::Level::warning, "mail"});

  std::printf("bench_cached: setting up %zu domains in the loopback world...\n", domains);
  std::fflush(stdout);
  test::World world(test::WorldOptions{.redis = true});
  std::vector<std::string> names;
  names.reserve(domains);
  for (std::size_t i = 0; i < domains; ++i) names.push_back("d" + std::to_string(i) + ".bench.example");
  test::DomainSpec spec;
  spec.txt = {"v=STSv1; id=bench1;"};
  spec.policy = test::World::policy("enforce", {"mail.{domain}", "*.mx.{domain}"}, 86400);
  world.add_domains(names, spec);
  world.start();

  Config cfg;
  cfg.redis.redis.address = world.redis().address();
  cfg.cached.resolvers = {world.resolver()};
  cfg.cached.ca_file = world.ca_file().string();
  cfg.cached.global_addresses_only = false;  // the world lives on loopback
  cfg.cached.concurrency = concurrency;
  cfg.cached.fetch_timeout = std::chrono::seconds(10);
  cfg.cached.fetcher_id = "bench";
  cfg.cached.refresh_jitter = 0;  // every entry due at the same moment in the refresh pass
  cfg.redis.redis.command_timeout = std::chrono::seconds(2);  // a busy machine is not a failure
  const auto services = worker::make_services(cfg, nullptr);
  ShiftedClock clock;

  const SysTime now = clock.now();
  for (const auto& n : names) services->store->signal_miss(*Domain::parse(n).domain, now);

  const Pass warm = run_pass(services, clock);
  const double rss_warm = peak_rss_mib();
  // max_age is one day: every entry is due an expiry margin (1 h) before it expires, while its
  // body is 23 h old, so each TXT id is confirmed by DNS alone (no fetch).
  clock.shift(Seconds{86400 - 3600});
  const Pass refresh = run_pass(services, clock);

  std::printf("\nconcurrency %u, %zu domains (one nginx, one dnsmasq, one redis-server on loopback)\n",
              concurrency, domains);
  print("warm", warm, domains);
  print("refresh", refresh, domains);
  std::printf("peak RSS of the fetcher process: %.1f MiB after warm, %.1f MiB at the end\n", rss_warm,
              peak_rss_mib());
  std::printf("redis: %zu entries scheduled, %zu misses left\n", services->store->schedule_size(),
              services->store->misses_size());
  return 0;
}
