// Prometheus metrics of a daemon: counters, gauges and fixed-bucket histograms that the mail
// path updates with one relaxed atomic operation each (no lock, no allocation), and a
// Registry that renders them in the text exposition format (version 0.0.4) when scraped.
//
// Promises:
// - Recording never blocks and never allocates: every series is created up front (at
//   start-up, under the registry's lock) and recorded through a reference that lives as long
//   as the registry. Only render() and the creation of series take the lock.
// - Names and labels follow the Prometheus conventions (checked when a series is created: a
//   bad name is a programming error and throws std::logic_error). Label values are our own
//   constants (an outcome, a kind): never a domain, so the number of series stays small.
// - Gauges that describe state owned elsewhere (a queue length, a cache size) may be
//   callbacks, called by render() on the scraping thread, never on the mail path.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace mtasts::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

class Gauge {
 public:
  void set(double v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void add(double d) noexcept;
  double value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0.0};
};

// Buckets are upper bounds in seconds (base unit), ascending; +Inf is implicit. Durations are
// summed in nanoseconds (an integer: no lost updates, no floating-point drift).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(std::chrono::nanoseconds d) noexcept;
  const std::vector<double>& bounds() const noexcept { return bounds_; }
  // Per-bucket (not cumulative) counts, the last one for +Inf; and the sum in seconds.
  std::vector<std::uint64_t> counts() const;
  double sum_seconds() const noexcept;

 private:
  std::vector<double> bounds_;
  std::vector<std::int64_t> bounds_ns_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  std::atomic<std::uint64_t> sum_ns_{0};
};

// Latency buckets for lookups answered in microseconds (the local cache) up to DNS and HTTPS
// round trips of tens of seconds.
std::vector<double> latency_buckets();

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The same name and labels give the same series. A name has one type and help text.
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help, const Labels& labels = {},
                       std::vector<double> bounds = latency_buckets());
  // A gauge read by render(). `fn` must be thread-safe and must not throw (a throw is caught
  // and the series left out of that scrape).
  void gauge_fn(const std::string& name, const std::string& help, const Labels& labels, std::function<double()> fn);
  // A counter kept elsewhere (an atomic another module owns), read by render(); same rules.
  void counter_fn(const std::string& name, const std::string& help, const Labels& labels,
                  std::function<std::uint64_t()> fn);

  // The text exposition format: families in creation order, each with HELP and TYPE.
  std::string render() const;

 private:
  enum class Type { counter, gauge, histogram };
  struct Series {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
    std::function<double()> fn;
    std::function<std::uint64_t()> counter_fn;
  };
  struct Family {
    std::string name;
    std::string help;
    Type type;
    std::vector<std::unique_ptr<Series>> series;
  };
  Series& series(const std::string& name, const std::string& help, Type type, const Labels& labels);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;
};

// The registry of this process: every daemon records into it, metrics-listen serves it.
Registry& registry();

// Metrics every daemon has: mta_sts_build_info{program,version} 1, mta_sts_start_time_seconds,
// mta_sts_config_reloads_total{result="success|failure"}. Call once at start-up.
void register_process(const std::string& program);
// Counts one SIGHUP reload in the process registry.
void count_reload(bool ok) noexcept;

// Text helpers (exposed for tests): a number as Prometheus writes it ("+Inf", "0.005", "12"),
// and a label value escaped (backslash, double quote, newline).
std::string format_value(double v);
std::string escape_label_value(const std::string& v);

}  // namespace mtasts::metrics

namespace mtasts::metrics {

// `metrics-listen`: "HOST:PORT" with HOST a numeric IPv4 address, or "[IPV6]:PORT"; port
// 1-65535. Port 0 is accepted only for tests (allow_port_zero: the system picks one).
struct ListenAddress {
  std::string host;  // without brackets
  std::uint16_t port = 0;
  bool v6 = false;
};
bool parse_listen(const std::string& text, ListenAddress* out, std::string* why, bool allow_port_zero = false);

}  // namespace mtasts::metrics
