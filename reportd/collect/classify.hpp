// Attaches the policy in force to a collected session (RFC 8460 section 4.4) and turns what the
// MTA saw into the result the policy makes of it:
// - a usable MTA-STS policy at the session's time: policy type sts with the policy as fetched;
//   a TLS session the policy would not accept (an untrusted or anonymous certificate, seen
//   when the MTA did not enforce, e.g. mode testing) counts as that failure;
// - no usable policy, and the fleet's last discovery found an `_mta-sts` record but could not
//   use the policy: sts-policy-fetch-error (HTTPS failed), sts-webpki-invalid (the HTTPS
//   certificate was refused), sts-policy-invalid (the file did not parse), with policy type sts;
// - otherwise (no entry, a negative entry, an expired policy, a DNS failure, an invalid TXT
//   record): no-policy-found, the session's result unchanged.
// A policy named by the source itself (a libtlsrpt datagram for sts or tlsa) is kept as it is.
#pragma once

#include <optional>
#include <stdexcept>

#include "common/sts/cache_entry.hpp"
#include "common/sts/domain.hpp"
#include "reportd/collect/outcome.hpp"

namespace mtasts {
class PolicyLookup;  // common/fleet/lookup.hpp
}

namespace mtasts::reportd {

// The fleet's cache could not be read and nothing is held for the domain: the session cannot
// be classified now (counting it as no-policy-found would be a lie). The collector re-reads
// the source from where it was (collector.hpp).
struct PolicyUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The fleet's cache, read-only. The daemon backs it with the lookup library
// (LookupPolicyView below); tests with a map.
class PolicyView {
 public:
  virtual ~PolicyView() = default;
  // The cache entry of `domain`, or nullopt when the fleet knows nothing of it; throws
  // PolicyUnavailable when it cannot tell.
  virtual std::optional<CacheEntry> entry(const Domain& domain) = 0;
};

// The production view: the lookup library the milter and mta-sts-tlsmap share (local cache,
// held copies through Redis outages, misses signalled to the fetchers).
class LookupPolicyView final : public PolicyView {
 public:
  explicit LookupPolicyView(PolicyLookup& lookup) : lookup_(lookup) {}
  std::optional<CacheEntry> entry(const Domain& domain) override;

 private:
  PolicyLookup& lookup_;
};

// The RFC 8460 result of the fleet's failure record, or nullopt when it is not a policy
// failure (DNS failures and invalid TXT records are "no policy" in RFC 8461 terms).
std::optional<tlsrpt::Result> policy_failure(const FailureState& f) noexcept;

class Classifier {
 public:
  explicit Classifier(PolicyView& view) : view_(view) {}
  // Sets o.session.result as the policy judges it and returns the policy applied.
  tlsrpt::AppliedPolicy classify(Outcome& o);

 private:
  PolicyView& view_;
};

}  // namespace mtasts::reportd
