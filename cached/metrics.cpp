// The fetcher's metrics; see metrics.hpp.
#include "cached/metrics.hpp"

#include <chrono>

namespace mtasts::worker {

namespace {

using metrics::registry;

metrics::Counter* discovery_counter(discovery::Status s) {
  // The outcome label is the Status's own name with '-' (valid, no-policy, dns-error, ...).
  std::string o = discovery::to_string(s);
  for (char& c : o)
    if (c == '_') c = '-';
  return &registry().counter("mta_sts_cached_discoveries_total",
                             "Discoveries (DNS TXT, and HTTPS fetch when needed) by outcome.", {{"outcome", o}});
}

metrics::Counter* downgrade_counter(const char* to) {
  return &registry().counter("mta_sts_cached_downgrades_total",
                             "Domains whose enforce policy was replaced by a weaker mode or by no policy.",
                             {{"to", to}});
}

metrics::Histogram& dns_histogram(const char* type) {
  return registry().histogram("mta_sts_cached_dns_duration_seconds", "DNS query latency by record type.",
                              {{"type", type}});
}

template <class F>
auto time(metrics::Histogram& h, F f) {
  const auto start = std::chrono::steady_clock::now();
  auto answer = f();
  h.observe(std::chrono::steady_clock::now() - start);
  return answer;
}

class TimedResolver final : public dns::Resolver {
 public:
  explicit TimedResolver(std::shared_ptr<dns::Resolver> r)
      : r_(std::move(r)), txt_(dns_histogram("TXT")), a_(dns_histogram("A")), aaaa_(dns_histogram("AAAA")) {}
  dns::TxtAnswer txt(const std::string& name) override { return time(txt_, [&] { return r_->txt(name); }); }
  dns::AddressAnswer address(const std::string& name, dns::AddressFamily f) override {
    return time(f == dns::AddressFamily::v4 ? a_ : aaaa_, [&] { return r_->address(name, f); });
  }
  // Discovery asks for TXT and addresses only; these pass through untimed.
  dns::MxAnswer mx(const std::string& name) override { return r_->mx(name); }
  dns::TlsaAnswer tlsa(const std::string& name) override { return r_->tlsa(name); }

 private:
  std::shared_ptr<dns::Resolver> r_;
  metrics::Histogram &txt_, &a_, &aaaa_;
};

class TimedHttps final : public https::HttpsClient {
 public:
  explicit TimedHttps(std::shared_ptr<https::HttpsClient> c) : c_(std::move(c)) {}
  https::FetchResult fetch(const std::string& host, const std::vector<std::string>& addresses) override {
    const auto start = std::chrono::steady_clock::now();
    auto r = c_->fetch(host, addresses);
    fetcher_metrics().fetch_seconds.observe(std::chrono::steady_clock::now() - start);
    return r;
  }

 private:
  std::shared_ptr<https::HttpsClient> c_;
};

}  // namespace

FetcherMetrics& fetcher_metrics() {
  static FetcherMetrics m{
      {discovery_counter(discovery::Status::valid), discovery_counter(discovery::Status::no_policy),
       discovery_counter(discovery::Status::dns_error), discovery_counter(discovery::Status::fetch_error),
       discovery_counter(discovery::Status::policy_invalid), discovery_counter(discovery::Status::unchanged)},
      {downgrade_counter("testing"), downgrade_counter("none"), downgrade_counter("no-policy")},
      registry().counter("mta_sts_cached_claims_lost_total",
                         "Domains this fetcher wanted but another fetcher had claimed."),
      registry().counter("mta_sts_cached_redis_errors_total", "Redis errors of the fetcher (commands that failed)."),
      registry().counter("mta_sts_cached_writes_fenced_total",
                         "Discoveries whose result was not written: the claim was lost meanwhile."),
      registry().counter("mta_sts_cached_newer_format_kept_total",
                         "Entries of a newer codec version left as they were (a fleet half upgraded)."),
      registry().counter("mta_sts_cached_misses_trimmed_total", "Misses dropped beyond max-misses (oldest first)."),
      registry().counter("mta_sts_cached_domains_forgotten_total",
                         "Domains no longer refreshed: nobody looked them up for forget-after."),
      registry().counter("mta_sts_cached_domains_evicted_total",
                         "Domains taken out of a schedule over max-domains (least recently looked up first)."),
      registry().histogram("mta_sts_cached_fetch_duration_seconds", "HTTPS policy fetch latency."),
      registry().gauge("mta_sts_cached_misses_waiting", "Misses signalled by milters and tlsmaps, not yet answered."),
      registry().gauge("mta_sts_cached_oldest_miss_age_seconds", "Age of the oldest unanswered miss (0: none)."),
      registry().gauge("mta_sts_cached_domains_scheduled", "Domains in the refresh schedule."),
      registry().gauge("mta_sts_cached_domains_wanted", "Domains with a recorded lookup (the wanted set)."),
      registry().gauge("mta_sts_cached_oldest_overdue_seconds",
                       "How long the most overdue refresh in the schedule is past its time (0: none overdue)."),
      registry().gauge("mta_sts_cached_in_flight", "Discoveries running in this fetcher now."),
      registry().gauge("mta_sts_cached_concurrency", "Discoveries this fetcher may run at once (concurrency)."),
      registry().gauge("mta_sts_cached_last_poll_timestamp_seconds",
                       "When this fetcher last read its queues from Redis successfully (Unix time)."),
  };
  return m;
}

void FetcherMetrics::discovery(discovery::Status s) noexcept {
  const auto i = static_cast<std::size_t>(s);
  if (i < 6) discoveries[i]->inc();
}

void FetcherMetrics::downgrade(const std::optional<CacheEntry>& old, const discovery::Report& r) noexcept {
  if (!old || !old->policy || old->policy->policy.mode != Mode::enforce) return;
  if (r.status == discovery::Status::valid && r.policy) {
    if (r.policy->mode == Mode::testing) downgrades[0]->inc();
    if (r.policy->mode == Mode::none) downgrades[1]->inc();
  } else if (r.status == discovery::Status::no_policy && !r.failure()) {
    downgrades[2]->inc();
  }
}

std::shared_ptr<dns::Resolver> timed(std::shared_ptr<dns::Resolver> r) {
  return std::make_shared<TimedResolver>(std::move(r));
}
std::shared_ptr<https::HttpsClient> timed(std::shared_ptr<https::HttpsClient> c) {
  return std::make_shared<TimedHttps>(std::move(c));
}

}  // namespace mtasts::worker
