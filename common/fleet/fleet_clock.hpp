// One clock for the whole fleet: every daemon reads "now" as its own clock plus its offset to
// the Redis primary's clock (TIME). Entries carry absolute times written by one host and read
// by others (a policy's expiry, a failure's backoff, the next refresh); compared with each
// host's own clock, a host 10 minutes fast would expire policies 10 minutes early and one 10
// minutes slow would shorten the fleet's shared 5-minute backoff to nothing.
//
// Promises:
// - now() never blocks and never touches Redis: it adds an offset measured in the background
//   (start()) or by sync(); until a first measurement succeeds the offset is 0 (the local
//   clock), and a failed measurement keeps the last offset.
// - A sample whose round trip took longer than kMaxSampleRtt is discarded: the midpoint of a
//   slow round trip says little about when Redis read its clock.
// - The skew is logged at the first measurement (notice; warning when beyond the bound), then
//   once each time it crosses the bound (warning) or comes back within it (notice). The
//   gauge mta_sts_clock_skew_seconds shows it (see metrics).
// - An offset beyond the limit (Options::limit_skew, [redis] clock-skew-limit) is refused:
//   a Redis clock that far off this host's (after a failover to a host with a bad clock, say)
//   is broken, not a correction; the last accepted offset stays (0 before any), an error is
//   logged each time the measurements cross the limit, and the gauge
//   mta_sts_clock_skew_refused is 1 while they are beyond it.
// - Thread-safe: now() from any thread; set_source() from any thread, also while running.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/util/clock.hpp"
#include "common/fleet/redis.hpp"

namespace mtasts {

using Micros = std::chrono::microseconds;

// Redis TIME on `conn`, as microseconds since the Unix epoch. The reply is validated as
// untrusted input: two decimal numbers, microseconds below 1,000,000, a time between 2020 and
// 2200. Throws RedisError (a protocol error for a reply that is not that).
Micros redis_time(Connection& conn);

// Signed seconds with millisecond precision for logs: "+600.004s", "-0.012s".
std::string skew_text(Micros skew);

class FleetClock final : public Clock {
 public:
  static constexpr Micros kMaxSampleRtt{1'000'000};

  struct Options {
    Seconds warn_skew{10};                        // [redis] clock-skew-warning
    Seconds limit_skew{3600};                     // [redis] clock-skew-limit
    std::chrono::milliseconds interval{60'000};   // between measurements
    std::chrono::milliseconds retry{5'000};       // after a failed one, until the first success
  };
  // Where the remote time comes from; throws (std::exception) when it cannot tell.
  using Source = std::function<Micros()>;
  // The local wall clock, microseconds since the epoch (tests inject one).
  using LocalTime = std::function<Micros()>;

  explicit FleetClock(Options opts, LocalTime local = {});
  ~FleetClock() override;
  FleetClock(const FleetClock&) = delete;
  FleetClock& operator=(const FleetClock&) = delete;

  SysTime now() const override;

  // Replaces where the remote time comes from (at start and on reload); waits for a
  // measurement in progress on the old source to end, so the caller may then free what the
  // old one used.
  void set_source(Source source);
  void set_warn_skew(Seconds bound);
  void set_skew_limit(Seconds limit);
  // One measurement now (also what the background thread does). False when there is no
  // source, it failed, its round trip was too slow, or the offset is beyond the limit; the
  // offset then stays as it was.
  bool sync();
  // The offset in use (remote minus local, as last accepted); nullopt before the first success.
  std::optional<Micros> skew() const;
  // True while the latest measurement was beyond the limit (and refused).
  bool refusing() const;

  // Measures now, then every `interval` on a thread of its own, until stop() or destruction.
  // Start it after the process has blocked its signals (the thread inherits the mask).
  void start();
  void stop();

 private:
  void run();
  Micros local_now() const;

  Options opts_;
  LocalTime local_;
  std::atomic<std::int64_t> offset_us_{0};
  std::atomic<bool> synced_{false};
  std::mutex source_mu_;  // held during a measurement: set_source waits for it
  Source source_;
  mutable std::mutex mu_;  // the thread's state and the skew log state
  std::condition_variable cv_;
  bool stopping_ = false;
  bool beyond_bound_ = false;
  bool refusing_ = false;
  bool warned_unmeasured_ = false;
  std::thread thread_;
};

// A Source that leases a connection from `pool` for each measurement; it shares ownership of
// the pool (an aliasing pointer into a program's runtime keeps that runtime alive until the
// source is replaced).
FleetClock::Source redis_time_source(std::shared_ptr<Pool> pool);

}  // namespace mtasts
