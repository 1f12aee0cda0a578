// The fetcher's Prometheus metrics (mta_sts_cached_*), in the process registry
// (common/util/metrics.hpp). Every series exists from the first call, so that a scrape shows zeros
// instead of absent series, and recording is one atomic add.
#pragma once

#include <memory>

#include "cached/discovery.hpp"
#include "cached/https.hpp"
#include "common/sts/cache_entry.hpp"
#include "common/dns/dns.hpp"
#include "common/util/metrics.hpp"

namespace mtasts::worker {

struct FetcherMetrics {
  metrics::Counter* discoveries[6];  // by discovery::Status
  metrics::Counter* downgrades[3];   // from enforce to: testing, none, no policy
  metrics::Counter& claims_lost;
  metrics::Counter& redis_errors;
  metrics::Counter& writes_fenced;      // results not written: the claim was lost meanwhile
  metrics::Counter& newer_format_kept;  // entries of a newer codec version left alone
  metrics::Counter& misses_trimmed;     // housekeeping: misses beyond max-misses
  metrics::Counter& domains_forgotten;  // housekeeping: not looked up for forget-after
  metrics::Counter& domains_evicted;    // housekeeping: schedule over max-domains
  metrics::Histogram& fetch_seconds;
  metrics::Gauge& misses_waiting;
  metrics::Gauge& oldest_miss_age;
  metrics::Gauge& domains_scheduled;
  metrics::Gauge& domains_wanted;
  metrics::Gauge& oldest_overdue_age;
  metrics::Gauge& in_flight;
  metrics::Gauge& concurrency;
  metrics::Gauge& last_poll;

  void discovery(discovery::Status s) noexcept;
  // Counts a downgrade when the entry held an enforce policy and this discovery found a
  // weaker mode or no policy at all.
  void downgrade(const std::optional<CacheEntry>& old, const discovery::Report& r) noexcept;
};
FetcherMetrics& fetcher_metrics();

// Decorators that time every DNS query (mta_sts_cached_dns_duration_seconds{type}) and every
// HTTPS fetch (mta_sts_cached_fetch_duration_seconds) of the production services.
std::shared_ptr<dns::Resolver> timed(std::shared_ptr<dns::Resolver> r);
std::shared_ptr<https::HttpsClient> timed(std::shared_ptr<https::HttpsClient> c);

}  // namespace mtasts::worker
