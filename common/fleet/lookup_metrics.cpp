// Lookup metrics; see lookup_metrics.hpp.
#include "common/fleet/lookup_metrics.hpp"

namespace mtasts::metrics {

namespace {
Histogram& by_source(Registry& r, const std::string& prefix, const char* source) {
  return r.histogram(prefix + "_lookup_duration_seconds",
                     "Policy lookup latency by what answered: local (in-process cache), redis, stale (a local "
                     "entry kept through a Redis failure), failed (no answer).",
                     {{"source", source}});
}
}  // namespace

LookupMetrics::LookupMetrics(const std::string& prefix, Registry& r)
    : local_(by_source(r, prefix, "local")),
      redis_(by_source(r, prefix, "redis")),
      stale_(by_source(r, prefix, "stale")),
      failed_(by_source(r, prefix, "failed")),
      misses_(r.counter(prefix + "_misses_signalled_total",
                        "Domains not in the cache that this process signalled to the fetchers.")),
      redis_errors_(r.counter(prefix + "_redis_errors_total",
                              "Lookups that Redis could not answer (unreachable, refused or over budget).")) {}

void LookupMetrics::record(const LookupResult& r) noexcept {
  if (r.failed) {
    failed_.observe(r.latency);
    redis_errors_.inc();
  } else if (r.source == LookupSource::local) {
    local_.observe(r.latency);
  } else if (r.source == LookupSource::stale) {
    stale_.observe(r.latency);
    // A held copy answers for a Redis failure, and also for a missing, unreadable or older
    // entry (Redis answered): only the first is an error.
    if (r.source_failed) redis_errors_.inc();
  } else {
    redis_.observe(r.latency);
  }
  if (r.miss_signalled) misses_.inc();
}

}  // namespace mtasts::metrics
