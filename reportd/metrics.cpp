// mta-sts-reportd's metrics; see metrics.hpp.
#include "reportd/metrics.hpp"

namespace mtasts::reportd {
namespace {

constexpr const char* kFlushes = "mta_sts_reportd_flushes_total";
constexpr const char* kFlushesHelp =
    "Batches sent to the fleet's TLS-RPT aggregates in Redis, by outcome (applied, duplicate, error).";

}  // namespace

ReportdMetrics::ReportdMetrics(metrics::Registry& r)
    : flushes_applied(r.counter(kFlushes, kFlushesHelp, {{"outcome", "applied"}})),
      flushes_duplicate(r.counter(kFlushes, kFlushesHelp, {{"outcome", "duplicate"}})),
      flushes_error(r.counter(kFlushes, kFlushesHelp, {{"outcome", "error"}})),
      details_dropped(r.counter("mta_sts_reportd_failure_details_dropped_total",
                                "Failed sessions whose failure detail was over the cap (counted, not detailed).")),
      spooled_batches(r.gauge("mta_sts_reportd_spooled_batches", "Batches waiting on disk for Redis.")) {
  for (std::size_t i = 0; i < tlsrpt::kResultCount; ++i) {
    sessions[i] = &r.counter("mta_sts_reportd_sessions_total",
                             "TLS sessions of this host's MTA by result (success or an RFC 8460 result type).",
                             {{"result", tlsrpt::to_string(static_cast<tlsrpt::Result>(i))}});
  }
}

ReportdMetrics& reportd_metrics() {
  static ReportdMetrics m(metrics::registry());
  return m;
}

}  // namespace mtasts::reportd
