// The fetcher's scheduler and workers: takes work from the misses that milters signal, from
// the refresh schedule and from the warm list; claims each domain in Redis so that several
// fetchers never work on one domain at once; runs discovery on up to `concurrency` threads
// (one slow domain never holds up the others); writes what refresh::apply decides.
//
// Promises:
// - Redis down: the loop keeps running, retries with backoff, logs once per state change,
//   never crashes; nothing is written from a partial view (a failed read means no write).
// - A cached usable policy is never dropped because of a failure (refresh::apply).
// - A domain taken but not finished (crash, kill, Redis error) stays in misses/schedule and
//   its lock expires after lock_ttl, so another fetcher picks it up. While a task works, its
//   claim is renewed (ClaimKeeper): a long discovery is not fetched twice.
// - Every rule that depends on time reads the injected Clock.
// - Fair work (cached/schedule.hpp): refresh_share percent of the concurrency is kept for
//   due refreshes, usable enforce/testing policies closest to expiry first, so that a flood
//   of misses cannot let protected policies expire.
// - Housekeeping, at most once per housekeeping_interval (bounded work each time): misses
//   trimmed to max-misses, domains nobody looked up for forget_after forgotten (their entries
//   age out), and the schedule kept within max-domains by evicting the least recently wanted,
//   never a usable enforce policy still wanted.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cached/claims.hpp"
#include "cached/discovery.hpp"
#include "common/dns/dns.hpp"
#include "cached/https.hpp"
#include "cached/refresh.hpp"
#include "common/util/clock.hpp"
#include "common/daemon/config.hpp"
#include "common/fleet/redis.hpp"
#include "common/fleet/store.hpp"

namespace mtasts::worker {

struct Options {
  unsigned concurrency = 32;
  unsigned refresh_share = 25;                 // percent of concurrency kept for due refreshes
  std::chrono::seconds forget_after{30 * 86400};
  std::chrono::milliseconds housekeeping_interval{5000};
  std::chrono::milliseconds lock_ttl{180000};
  std::chrono::milliseconds poll_interval{200};
  std::chrono::seconds stats_interval{300};
  refresh::Rules rules;
  discovery::Options discovery;
  std::string warm_list;                  // file of domains, one per line ('#' comments)
  std::chrono::seconds warm_interval{3600};
  std::string fetcher_id = "mta-sts-cached";
};

// Worker options from the [cached] section.
Options options_from(const CachedConfig& c);

// What the worker runs against: one snapshot, replaced as a whole on reload. Tasks in flight
// keep the snapshot they started with.
struct Services {
  std::shared_ptr<Pool> pool;
  std::shared_ptr<PolicyStore> store;
  std::shared_ptr<dns::Resolver> resolver;
  std::shared_ptr<https::HttpsClient> https;
  Options options;
};

// Builds the production services from a configuration (ldns resolver, curl client, Redis
// pool). `abort` is handed to the HTTPS client (shutdown). Throws on a bad setting (e.g. an
// unreadable ca-file or resolv.conf); connects to nothing yet.
std::shared_ptr<const Services> make_services(const Config& cfg, const std::atomic<bool>* abort);

class Worker {
 public:
  Worker(std::shared_ptr<const Services> services, const Clock& clock);
  ~Worker();  // stops and waits for tasks in flight
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // The daemon loop: returns after stop(). Never throws for Redis, DNS or HTTPS trouble.
  void run();

  struct PassResult {
    std::size_t taken = 0;     // domains claimed and handled
    std::size_t busy = 0;      // claimed by another fetcher: left alone
    std::size_t failed = 0;    // a Redis error while handling
    bool redis_ok = true;      // false when Redis could not be reached at all
  };
  // One pass: the warm list, every current miss, every due domain; waits until they are done.
  PassResult run_once();

  struct Housekeeping {
    std::size_t scores_bounded = 0;  // misses/wanted scored far from now, moved to now
    std::size_t misses_trimmed = 0;
    std::size_t forgotten = 0;  // not looked up for forget_after (or beyond the bound of wanted)
    std::size_t evicted = 0;    // the schedule over max-domains
  };
  // One round of housekeeping (run() calls it every housekeeping_interval). Throws RedisError.
  Housekeeping housekeep();

  void stop();  // stop taking work (thread-safe, async-signal-unsafe: call from a thread)
  // Waits until no task is in flight. True when idle within the timeout.
  bool wait_idle(std::chrono::milliseconds timeout);
  void reload(std::shared_ptr<const Services> services);

  std::map<std::string, long long> counters() const;
  std::size_t in_flight() const;

 private:
  struct Task {
    std::string name;
    bool miss = false;
  };
  std::shared_ptr<const Services> current() const;
  // Claims and starts one domain. False when not started (busy elsewhere, invalid, stopping).
  bool launch(const std::shared_ptr<const Services>& s, const Task& t, PassResult* pr);
  void handle(std::uint64_t task, std::shared_ptr<const Services> s, Domain d, std::string token, bool miss);
  // Joins the threads of finished tasks (so that each has fully exited, thread-local state of
  // the libraries included, before the Worker or the process goes away).
  void reap();
  void load_warm_list(const Services& s);
  void write_stats(const Services& s);
  void update_gauges(const Services& s);  // metrics (cached/metrics.hpp)
  void wait_for_slot(const Services& s);
  void redis_state(bool up, const std::string& why);
  // Skips `name` when it is due in the schedule for `how_long` (an entry of a newer format).
  void leave_alone(const std::string& name, std::chrono::seconds how_long);
  void count(const std::string& name, long long n = 1);

  const Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const Services> services_;
  std::set<std::string> in_flight_;
  std::size_t refreshing_ = 0;  // tasks in flight that came from the schedule (not misses)
  std::map<std::uint64_t, std::thread> threads_;  // task threads, joined by reap()
  std::vector<std::uint64_t> done_;               // tasks finished but not yet joined
  std::uint64_t next_task_ = 0;
  std::map<std::string, long long> counters_;
  ClaimKeeper claims_;  // keeps the claims of tasks in flight alive (its own lock and thread)
  bool stopping_ = false;
  static constexpr std::size_t kMaxDeferred = 100000;
  std::map<std::string, std::chrono::steady_clock::time_point> deferred_;  // see leave_alone
  std::chrono::steady_clock::time_point oom_logged_{};  // last "out of memory" line (mu_)
  int redis_up_ = -1;  // -1 unknown, 1 up, 2 + RedisTrouble when down (logged on change)
  std::chrono::steady_clock::time_point next_warm_{};  // guarded by mu_ (reload() resets it)
  std::chrono::steady_clock::time_point next_stats_{};
  std::chrono::steady_clock::time_point next_gauges_{};
  std::chrono::steady_clock::time_point next_housekeeping_{};
};

}  // namespace mtasts::worker
