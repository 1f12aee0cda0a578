// The current MX set of a policy domain, and whether its MX hosts have DNSSEC-validated TLSA
// records, for mta-sts-tlsmap's replies.
//
// Why mta-sts-tlsmap looks the MX set up itself (rather than the fetcher storing it): the MTA
// resolves the MX set at delivery time through the host's resolver; asking the same resolver
// at (almost) the same time, and caching the answer no longer than its remaining TTL, gives
// the MTA's own view. A copy stored by the fetcher hours earlier could miss a host added since,
// and a current MX host that matches a policy pattern must never be refused because of stale
// data. Each lookup is bounded (dns-timeout, dns-retries); when the MX set cannot be had, the
// reply falls back to `.suffix` match entries (any depth in Postfix), and says so in the log.
//
// DANE (RFC 7672, RFC 8461 section 2): a host counts as DANE-protected when the MX RRset and
// its `_25._tcp.<host>` TLSA RRset are both DNSSEC-validated (the resolver's AD bit) and the
// TLSA RRset is not empty; Postfix uses TLSA only under the same conditions. Without a
// validating resolver no answer carries AD: no domain is DANE, and Postfix, which needs the
// same resolver for DANE, would not do DANE either.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/util/clock.hpp"
#include "common/dns/dns.hpp"
#include "common/sts/domain.hpp"

namespace mtasts::tlsmap {

enum class DaneCoverage { none, some, all };
const char* to_string(DaneCoverage d) noexcept;

struct MxSet {
  bool available = false;          // false: the MX set could not be had (DNS failure)
  std::vector<std::string> hosts;  // valid MX host names, lowest preference first; the domain
                                   // itself when it has no MX records (implicit MX)
  bool secure = false;             // the MX answer was DNSSEC-validated
  DaneCoverage dane = DaneCoverage::none;
  std::string error;               // why not available
};
using MxSetPtr = std::shared_ptr<const MxSet>;

// The DANE coverage of a set of hosts, from per-host "has validated TLSA" flags (pure).
DaneCoverage dane_coverage(std::size_t hosts, std::size_t with_tlsa) noexcept;

class MxSource {
 public:
  virtual ~MxSource() = default;
  // A cached answer, or nullptr: never blocks (the event loop asks this).
  virtual MxSetPtr cached(const Domain& d) = 0;
  // Looks the domain up when not cached; may wait on DNS within its bounds. Never throws.
  virtual MxSetPtr get(const Domain& d) = 0;
};

struct MxOptions {
  Seconds max_ttl{300};           // a cached set lives min(its DNS TTL, this)
  Seconds failure_ttl{10};        // how long a failed lookup is remembered (no hammering)
  std::size_t max_entries = 100000;
  bool dane = true;               // look up TLSA records
};

// MX (and TLSA) through a dns::Resolver, cached in a bounded map. Thread-safe.
class DnsMxSource final : public MxSource {
 public:
  // `resolver` and `clock` must outlive this object.
  DnsMxSource(dns::Resolver& resolver, const Clock& clock, MxOptions opts);
  MxSetPtr cached(const Domain& d) override;
  MxSetPtr get(const Domain& d) override;
  std::size_t size() const;

 private:
  struct Slot {
    MxSetPtr set;
    SysTime until;
  };
  MxSetPtr resolve(const Domain& d, Seconds* ttl);
  void store(const std::string& key, MxSetPtr set, Seconds ttl);

  dns::Resolver& resolver_;
  const Clock& clock_;
  MxOptions opts_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Slot> cache_;
};

}  // namespace mtasts::tlsmap
