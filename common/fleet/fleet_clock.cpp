// The fleet clock: the local clock plus a measured offset to Redis TIME (see fleet_clock.hpp).
#include "common/fleet/fleet_clock.hpp"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "common/util/log.hpp"
#include "common/util/metrics.hpp"

namespace mtasts {

namespace {

// 2020-01-01 and 2200-01-01: a Redis clock outside is broken, not merely skewed.
constexpr std::int64_t kMinSeconds = 1577836800;
constexpr std::int64_t kMaxSeconds = 7258118400;

bool parse_decimal(std::string_view s, std::int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return std::from_chars(s.data(), s.data() + s.size(), *out).ec == std::errc{};
}

Micros system_micros() {
  return std::chrono::duration_cast<Micros>(std::chrono::system_clock::now().time_since_epoch());
}

metrics::Gauge& skew_gauge() {
  static metrics::Gauge& g = metrics::registry().gauge(
      "mta_sts_clock_skew_seconds",
      "Offset of the Redis primary's clock (TIME) from this host's clock, as last measured; the "
      "programs use the Redis clock.");
  return g;
}

metrics::Gauge& refused_gauge() {
  static metrics::Gauge& g = metrics::registry().gauge(
      "mta_sts_clock_skew_refused",
      "1 while the Redis clock is off this host's clock by more than clock-skew-limit: its time is refused and the "
      "last accepted offset stays in use; 0 otherwise.");
  return g;
}

}  // namespace

Micros redis_time(Connection& conn) {
  const Reply r = conn.command({"TIME"});
  std::int64_t secs = 0, usecs = 0;
  if (r.size() != 2 || !parse_decimal(r.at(0).str(), &secs) || !parse_decimal(r.at(1).str(), &usecs) ||
      usecs >= 1'000'000 || secs < kMinSeconds || secs >= kMaxSeconds)
    throw RedisError(RedisError::Kind::protocol, "redis: unexpected TIME reply");
  return Micros{secs * 1'000'000 + usecs};
}

std::string skew_text(Micros skew) {
  const long long ms = std::chrono::duration_cast<std::chrono::milliseconds>(skew).count();
  const long long mag = ms < 0 ? -ms : ms;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%c%lld.%03llds", ms < 0 ? '-' : '+', mag / 1000, mag % 1000);
  return buf;
}

FleetClock::FleetClock(Options opts, LocalTime local) : opts_(opts), local_(std::move(local)) {
  (void)skew_gauge();  // the series exist (0) before the first measurement
  (void)refused_gauge();
}

FleetClock::~FleetClock() { stop(); }

Micros FleetClock::local_now() const { return local_ ? local_() : system_micros(); }

SysTime FleetClock::now() const {
  const Micros t = local_now() + Micros{offset_us_.load(std::memory_order_relaxed)};
  return SysTime{std::chrono::floor<Seconds>(t)};
}

std::optional<Micros> FleetClock::skew() const {
  if (!synced_.load()) return std::nullopt;
  return Micros{offset_us_.load()};
}

void FleetClock::set_source(Source source) {
  Source old;
  {
    std::lock_guard lock(source_mu_);
    old = std::exchange(source_, std::move(source));
  }
  // `old` (and what it holds) goes here, outside the lock.
}

void FleetClock::set_warn_skew(Seconds bound) {
  std::lock_guard lock(mu_);
  opts_.warn_skew = bound;
}

void FleetClock::set_skew_limit(Seconds limit) {
  std::lock_guard lock(mu_);
  opts_.limit_skew = limit;
}

bool FleetClock::refusing() const {
  std::lock_guard lock(mu_);
  return refusing_;
}

bool FleetClock::sync() {
  Micros remote{}, before{}, after{};
  {
    std::lock_guard lock(source_mu_);
    if (!source_) return false;
    try {
      before = local_now();
      remote = source_();
      after = local_now();
    } catch (const std::exception& e) {
      std::lock_guard state(mu_);
      if (!synced_.load() && !warned_unmeasured_) {
        warned_unmeasured_ = true;
        log::warning("clock not measured; using this host's clock until it is", {{"error", e.what()}});
      } else {
        log::debug("clock not measured", {{"error", e.what()}});
      }
      return false;
    }
  }
  const Micros rtt = after - before;
  if (rtt < Micros{0} || rtt > kMaxSampleRtt) {
    log::debug("clock sample discarded: slow round trip", {{"rtt_ms", std::to_string(rtt.count() / 1000)}});
    return false;
  }
  const Micros skew = remote - (before + rtt / 2);
  skew_gauge().set(static_cast<double>(skew.count()) / 1e6);
  const Micros mag = skew < Micros{0} ? -skew : skew;
  {
    std::lock_guard lock(mu_);
    const bool beyond_limit = mag > opts_.limit_skew;
    if (beyond_limit != refusing_) {
      refusing_ = beyond_limit;
      refused_gauge().set(beyond_limit ? 1 : 0);
      const std::string limit = std::to_string(opts_.limit_skew.count()) + "s";
      const std::string kept = synced_.load() ? skew_text(Micros{offset_us_.load()}) : std::string("none");
      if (beyond_limit)
        log::error("redis clock refused: off this host's clock by more than clock-skew-limit; the last accepted "
                   "offset stays in use (check the clocks of the Redis primary and of this host)",
                   {{"skew", skew_text(skew)}, {"limit", limit}, {"offset_in_use", kept}, {"source", "redis TIME"}});
      else
        log::notice("redis clock within clock-skew-limit again", {{"skew", skew_text(skew)}, {"limit", limit}});
    }
    if (beyond_limit) return false;
  }
  offset_us_.store(skew.count());
  const bool first = !synced_.exchange(true);

  std::lock_guard lock(mu_);
  const bool beyond = mag > opts_.warn_skew;
  const std::string bound = std::to_string(opts_.warn_skew.count()) + "s";
  // Logged at the first measurement, then only when the skew crosses the bound.
  if (!first && beyond == beyond_bound_) return true;
  beyond_bound_ = beyond;
  if (beyond)
    log::warning("clock skew beyond the bound; times follow the Redis clock",
                 {{"skew", skew_text(skew)}, {"bound", bound}, {"source", "redis TIME"}});
  else if (first)
    log::notice("clock skew", {{"skew", skew_text(skew)}, {"bound", bound}, {"source", "redis TIME"}});
  else
    log::notice("clock skew back within the bound", {{"skew", skew_text(skew)}, {"bound", bound}});
  return true;
}

void FleetClock::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void FleetClock::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void FleetClock::run() {
  for (bool first = true;; first = false) {
    const bool ok = (first && synced_.load()) || sync();  // start() right after a sync()
    std::unique_lock lock(mu_);
    const auto wait = ok || synced_.load() ? opts_.interval : opts_.retry;
    if (cv_.wait_for(lock, wait, [this] { return stopping_; })) return;
  }
}

FleetClock::Source redis_time_source(std::shared_ptr<Pool> pool) {
  return [pool = std::move(pool)] { return redis_time(*pool->lease()); };
}

}  // namespace mtasts
