// Prometheus metrics of the policy lookup shared by mta-sts-milter and mta-sts-tlsmap
// (<prefix>_lookup_duration_seconds{source}, <prefix>_misses_signalled_total,
// <prefix>_redis_errors_total), recorded from each LookupResult by the caller: the lookup
// itself knows nothing of metrics. The local cache's hit ratio is
//   rate(<prefix>_lookup_duration_seconds_count{source="local"}[5m])
//     / sum(rate(<prefix>_lookup_duration_seconds_count[5m]))
#pragma once

#include <string>

#include "common/fleet/lookup.hpp"
#include "common/util/metrics.hpp"

namespace mtasts::metrics {

class LookupMetrics {
 public:
  // `prefix`: "mta_sts_milter" or "mta_sts_tlsmap"; series are made in the process registry.
  explicit LookupMetrics(const std::string& prefix, Registry& r = registry());
  void record(const LookupResult& r) noexcept;

 private:
  Histogram& local_;
  Histogram& redis_;
  Histogram& stale_;
  Histogram& failed_;
  Counter& misses_;
  Counter& redis_errors_;
};

}  // namespace mtasts::metrics
