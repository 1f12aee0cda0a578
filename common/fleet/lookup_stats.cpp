// Lookup statistics; see lookup_stats.hpp.
#include "common/fleet/lookup_stats.hpp"

#include <bit>
#include <cstdio>

namespace mtasts {

std::size_t LatencyHistogram::bucket_of(std::uint64_t ns) noexcept {
  if (ns < 16) return static_cast<std::size_t>(ns);
  const int e = static_cast<int>(std::bit_width(ns)) - 1;  // 4..63
  const std::uint64_t sub = (ns >> (e - 3)) & 7u;
  const std::size_t i = 16 + static_cast<std::size_t>(e - 4) * 8 + static_cast<std::size_t>(sub);
  return i < kBuckets ? i : kBuckets - 1;
}

std::uint64_t LatencyHistogram::bucket_mid(std::size_t index) noexcept {
  if (index < 16) return index;
  const std::size_t e = (index - 16) / 8 + 4;
  const std::uint64_t sub = (index - 16) % 8;
  const std::uint64_t width = std::uint64_t{1} << (e - 3);
  const std::uint64_t low = (std::uint64_t{1} << e) + sub * width;
  return low + width / 2;
}

void LatencyHistogram::record(std::chrono::nanoseconds d) noexcept {
  const auto ns = d.count() < 0 ? 0u : static_cast<std::uint64_t>(d.count());
  buckets_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t LatencyHistogram::count() const noexcept {
  std::uint64_t n = 0;
  for (const auto& b : buckets_) n += b.load(std::memory_order_relaxed);
  return n;
}

std::chrono::nanoseconds LatencyHistogram::percentile(double p) const noexcept {
  const std::uint64_t n = count();
  if (n == 0) return std::chrono::nanoseconds{0};
  // The rank of the sample at fraction p, 1-based, at least 1.
  auto rank = static_cast<std::uint64_t>(p * static_cast<double>(n) + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i].load(std::memory_order_relaxed);
    if (seen >= rank) return std::chrono::nanoseconds{static_cast<std::int64_t>(bucket_mid(i))};
  }
  return std::chrono::nanoseconds{static_cast<std::int64_t>(bucket_mid(kBuckets - 1))};
}

void LatencyHistogram::reset() noexcept {
  for (auto& b : buckets_) b.store(0, std::memory_order_relaxed);
}

namespace {
void append(std::string& out, const char* name, const LatencyHistogram& h) {
  char buf[160];
  const auto us = [](std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1000.0; };
  std::snprintf(buf, sizeof buf, "%s%s=%llu %s_p50_us=%.1f %s_p99_us=%.1f", out.empty() ? "" : " ", name,
                static_cast<unsigned long long>(h.count()), name, us(h.percentile(0.50)), name,
                us(h.percentile(0.99)));
  out += buf;
}
}  // namespace

std::string LookupStats::summary() const {
  std::string out;
  append(out, "local", local);
  append(out, "redis", redis);
  append(out, "waited", waited);
  append(out, "failed", failed);
  out += " misses_signalled=" + std::to_string(misses_signalled.load());
  out += " invalidations=" + std::to_string(invalidations.load());
  out += " resyncs=" + std::to_string(resyncs.load());
  out += " demand_dropped=" + std::to_string(demand_dropped.load());
  return out;
}

}  // namespace mtasts
