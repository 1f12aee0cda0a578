// In-process counters and latency histograms of the lookup path. Lock-free (atomics), so
// that recording from every lookup thread (libmilter's, mta-sts-tlsmap's workers) costs nothing measurable; read at exit (one log
// line) and by the benchmark. Percentiles come from log-scale buckets (8 per power of two,
// within 12.5% of the true value), which is enough to tell 50 us from 1 ms.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace mtasts {

class LatencyHistogram {
 public:
  void record(std::chrono::nanoseconds d) noexcept;
  std::uint64_t count() const noexcept;
  // The value below which a fraction p (0..1) of the samples fall; 0 when empty.
  std::chrono::nanoseconds percentile(double p) const noexcept;
  void reset() noexcept;

  static std::size_t bucket_of(std::uint64_t ns) noexcept;
  static std::uint64_t bucket_mid(std::size_t index) noexcept;
  static constexpr std::size_t kBuckets = 16 + 60 * 8;

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> buckets_{};
};

struct LookupStats {
  LatencyHistogram local;   // answered from the in-process cache
  LatencyHistogram redis;   // answered by one Redis round trip (found or not)
  LatencyHistogram waited;  // answered after a miss-wait
  LatencyHistogram failed;  // Redis error or over budget
  std::atomic<std::uint64_t> misses_signalled{0};
  std::atomic<std::uint64_t> invalidations{0};
  std::atomic<std::uint64_t> resyncs{0};
  std::atomic<std::uint64_t> demand_dropped{0};  // lookups not recorded in `wanted` (Redis failed, backlog full)

  // "local=N local_p50_us=.. local_p99_us=.. redis=N ..." for the exit log line.
  std::string summary() const;
};

}  // namespace mtasts
