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
// DANE (RFC 7672, RFC 8461 section 2), as Postfix 3.7 applies it (smtp_tls_policy.c,
// tls_dane.c), per MX host:
//   usable   the MX RRset is DNSSEC-validated (AD), the host's A/AAAA answers are validated,
//            and its `_25._tcp.<host>` TLSA RRset is validated and holds at least one record
//            Postfix can use (usage 2 or 3, selector 0 or 1, matching type 0, 1 or 2 with
//            the right digest length): Postfix authenticates the host with it. For a host
//            name that is a CNAME, the TLSA RRset Postfix uses: the one at the end of the
//            chain when there is one (validated), else the one at the host name.
//   none     no TLSA, TLSA not validated, only unusable records (usage 0/1, matching 255...),
//            or an address that is not validated: Postfix does not do DANE with this host
//            (`dane` gives it `may` or `encrypt`, unauthenticated; `dane-only` defers it).
//   failed   the TLSA lookup failed (SERVFAIL, which is what a validating resolver answers
//            for a bogus RRset, or a timeout) under a validated address: a failing DANE
//            check that MTA-STS must not override (RFC 8461 section 2). Postfix defers such
//            a host itself ("TLSA lookup error") at the dane and dane-only levels.
// The AD bit is only as good as the path to the resolver: mta-sts-tlsmap switches DANE on only
// for a resolver on loopback (or one explicitly trusted) that passed a DNSSEC probe at start
// (dane_resolver_check()).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <future>
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

enum class HostDane { none, usable, failed };
const char* to_string(HostDane d) noexcept;

struct MxSet {
  bool available = false;          // false: the MX set could not be had (DNS failure)
  std::vector<std::string> hosts;  // valid MX host names, lowest preference first; the domain
                                   // itself when it has no MX records (implicit MX)
  bool secure = false;             // the MX answer was DNSSEC-validated
  std::vector<HostDane> dane;      // per host (same order as hosts); empty: DANE not looked at
  bool busy = false;               // not looked up: this domain's lookup is already in progress
                                   // with enough threads waiting on it (the reply is TEMP)
  std::string error;               // why not available
};
using MxSetPtr = std::shared_ptr<const MxSet>;

// How many of the hosts have usable TLSA (none: no host, or a DANE lookup that failed
// counts as not usable). Pure.
DaneCoverage dane_coverage(const MxSet& m) noexcept;

// Whether Postfix (through OpenSSL) can authenticate a server with this TLSA record for SMTP
// (RFC 7672 section 3.1.3: usages 0 and 1 do not apply; Postfix drops matching type 255;
// OpenSSL refuses a digest of the wrong length and unknown selectors and matching types).
bool usable_for_smtp(const dns::TlsaRecord& r) noexcept;

// What the DNS says about one MX host's DANE (the rules above), from its A, AAAA and TLSA
// answers (`tlsa` null: not looked up because the address is not validated). Pure.
HostDane host_dane(const dns::AddressAnswer& a, const dns::AddressAnswer& aaaa, const dns::TlsaAnswer* tlsa) noexcept;
// Whether the address answers are validated (each answer with records has AD, and there is at
// least one address; a failed lookup is not validated).
bool addresses_secure(const dns::AddressAnswer& a, const dns::AddressAnswer& aaaa) noexcept;

// Whether the resolvers may be trusted for DANE: each is on loopback or listed in `trusted`
// (the AD bit of a resolver across a network means nothing: RFC 6840 section 5.7, glibc's
// trust-ad), and `probe` (the answer to an MX query for a name in a signed zone, e.g. the
// root) carries AD. Pure; `why` says why not.
struct DaneResolverCheck {
  bool ok = false;
  std::string why;  // on failure: for the start-up warning and --check
};
DaneResolverCheck dane_resolver_check(const std::vector<dns::Server>& servers, const std::vector<dns::Server>& trusted,
                                      const std::string& probe_name, const dns::MxAnswer& probe);
// Why the resolvers may not be trusted for DANE ("" when each is on loopback or listed).
std::string untrusted_resolver(const std::vector<dns::Server>& servers, const std::vector<dns::Server>& trusted);
// The start-up check: the trust rule, then (only for trusted resolvers) the probe, an MX query
// for `probe_name` (the root "." by default: a validating resolver proves its NODATA).
DaneResolverCheck probe_dane_resolver(dns::Resolver& resolver, const std::vector<dns::Server>& servers,
                                      const std::vector<dns::Server>& trusted, const std::string& probe_name);

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
  bool dane = true;               // look up addresses and TLSA records of the MX hosts
  std::size_t parallel = 8;       // MX hosts of one domain looked at in parallel, at most
  // Threads that may wait on one domain's lookup besides the one making it. Further get()s of
  // that domain wait at most `join_wait` for it (a burst of deliveries when a set expires
  // still shares one quick lookup), then return a `busy` set: one domain whose DNS hangs
  // holds 1 + max_waiting threads, not every worker (Postfix's own lookups of it hang too).
  std::size_t max_waiting = 2;
  std::chrono::milliseconds join_wait{250};
};

// MX (and TLSA) through a dns::Resolver, cached in a bounded map. Thread-safe. Concurrent
// get()s of a domain that is not cached share one resolution (single flight): a slow domain
// costs one set of DNS queries, however many deliveries ask about it at once. The hosts of a
// domain are looked at in parallel, so that a lookup takes about one host's time. At most
// 1 + max_waiting threads are held by one domain's lookup.
class DnsMxSource final : public MxSource {
 public:
  // `resolver` and `clock` must outlive this object.
  DnsMxSource(dns::Resolver& resolver, const Clock& clock, MxOptions opts);
  MxSetPtr cached(const Domain& d) override;
  MxSetPtr get(const Domain& d) override;
  std::size_t size() const;
  // DANE on or off from now on (MxOptions::dane at start): lookups made after the call look
  // at the hosts' TLSA, or not; sets already cached keep what they found until they expire.
  void set_dane(bool on);

 private:
  struct Slot {
    MxSetPtr set;
    SysTime until;
  };
  MxSetPtr resolve(const Domain& d, Seconds* ttl);
  // Fills set->dane for set->hosts; lowers *ttl for the records used.
  void resolve_dane(const Domain& d, MxSet* set, std::uint32_t* ttl);
  void store(const std::string& key, MxSetPtr set, Seconds ttl);
  MxSetPtr cached_locked(const std::string& key);

  dns::Resolver& resolver_;
  const Clock& clock_;
  MxOptions opts_;
  std::atomic<bool> dane_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Slot> cache_;
  struct Flight {
    std::shared_future<MxSetPtr> result;
    std::size_t waiting = 0;
  };
  std::unordered_map<std::string, Flight> flights_;  // resolutions running, by domain
};

}  // namespace mtasts::tlsmap
