// The milter's Prometheus metrics (mta_sts_milter_*), in the process registry: what was decided
// per recipient domain at RCPT, what was done per message at end of message, and the lookup
// figures (common/fleet/lookup_metrics.hpp). Every series exists from the first call; recording is
// one atomic add on a libmilter thread.
#pragma once

#include "common/fleet/lookup_metrics.hpp"
#include "common/util/metrics.hpp"
#include "milter/decision.hpp"

namespace mtasts::milter {

// What end of message did with a message.
enum class MessageResult {
  tagged,     // at least one field added
  untagged,   // no recipient domain with an enforce or testing policy
  opted_out,  // "TLS-Required: No" (RFC 8689), honoured
  tlsrpt,     // a TLS-RPT report (RFC 8460): never tagged
  deferred,   // temporary failure at end of message (an earlier step failed)
};

struct MilterMetrics {
  metrics::Counter* domains[6][3];  // [Status][Action]
  metrics::Counter* messages[5];    // [MessageResult]
  metrics::LookupMetrics lookup{"mta_sts_milter"};

  void decided(const Decision& d) noexcept;
  void message(MessageResult r) noexcept;
};
MilterMetrics& milter_metrics();

}  // namespace mtasts::milter
