// mta-sts-reportd's Prometheus metrics (mta_sts_reportd_*), in a registry (the process one by
// default, common/util/metrics.hpp). Labels are our own constants (an RFC 8460 result type, an
// outcome): never a domain, so the number of series is fixed. Every series exists from the
// first call, so that a scrape shows zeros instead of absent series (the alert on the failure
// ratio in etc/prometheus/mta-sts.rules.yml divides by them); recording is one atomic add.
#pragma once

#include <array>
#include <cstdint>

#include "common/tlsrpt/model.hpp"
#include "common/util/metrics.hpp"

namespace mtasts::reportd {

struct ReportdMetrics {
  explicit ReportdMetrics(metrics::Registry& r);

  // mta_sts_reportd_sessions_total{result}: the TLS sessions this host's MTA had, by result
  // ("success" or an RFC 8460 result type), as collected (before aggregation).
  std::array<metrics::Counter*, tlsrpt::kResultCount> sessions{};
  // mta_sts_reportd_flushes_total{outcome}: batches sent to the fleet's aggregates:
  // applied, duplicate (Redis had it already: a replay after a lost reply), error (Redis
  // failure: the batch stays in the spool and is retried).
  metrics::Counter& flushes_applied;
  metrics::Counter& flushes_duplicate;
  metrics::Counter& flushes_error;
  // mta_sts_reportd_failure_details_dropped_total: failed sessions whose detail was over the
  // per-(day, domain, policy) cap in this host's batches (still counted as failures).
  metrics::Counter& details_dropped;
  // mta_sts_reportd_spooled_batches: batches waiting on disk for Redis.
  metrics::Gauge& spooled_batches;

  void session(tlsrpt::Result r) noexcept { sessions[static_cast<std::size_t>(r)]->inc(); }
};

// The metrics of this process (metrics::registry()), created at the first call.
ReportdMetrics& reportd_metrics();

}  // namespace mtasts::reportd
