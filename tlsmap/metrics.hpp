// mta-sts-tlsmap's Prometheus metrics (mta_sts_tlsmap_*), in the process registry: replies by
// kind and socketmap dialect, and the lookup figures (common/fleet/lookup_metrics.hpp). The
// connection counters live in ServerCounters and are exported by main.cpp at scrape time.
#pragma once

#include <optional>
#include <string_view>

#include "common/fleet/lookup_metrics.hpp"
#include "common/util/metrics.hpp"
#include "tlsmap/request.hpp"

namespace mtasts::tlsmap {

struct TlsmapMetrics {
  static constexpr std::size_t kKinds = 6;     // secure, dane, dane-only, notfound, temp, perm
  static constexpr std::size_t kDialects = 4;  // postfix, postfix-tlsrpt, sts, unknown
  metrics::Counter* replies[kKinds][kDialects];
  metrics::LookupMetrics lookup{"mta_sts_tlsmap"};

  // `kind` is Reply::outcome; an unknown kind is not counted.
  void reply(std::string_view kind, std::optional<Dialect> dialect) noexcept;
};
TlsmapMetrics& tlsmap_metrics();

}  // namespace mtasts::tlsmap
