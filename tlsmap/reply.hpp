// What mta-sts-tlsmap answers, as pure functions of the cache lookup, the MX set, the time and
// the configuration (RFC-NOTES.md "The delivery side"):
//   enforce policy usable now   OK secure match=M servername=hostname
//                               (postfix-tlsrpt adds policy_type=sts policy_domain=D,
//                               mx_host_pattern=P per pattern, {policy_string = ...} per line)
//   usable DANE on every MX     OK dane-only  (usable, validated TLSA and a validated address
//   host (MX RRset validated)   on each host: see mx.hpp; Postfix then authenticates every
//                               host with DANE and defers any it cannot)
//   DANE on some hosts only     the MTA-STS answer (never `dane`: Postfix gives the hosts
//                               without usable TLSA `may`, clear text once STARTTLS is stripped)
//   MX lookup already in flight TEMP (more lookups of this domain than may wait on its DNS:
//   with enough threads waiting see mx.hpp, MxOptions::max_waiting)
//   a host's TLSA lookup failed OK dane-only when every other host has usable TLSA (Postfix
//   (bogus, SERVFAIL, timeout)  defers the failed host on its own "TLSA lookup error" and
//                               delivers to the others over DANE), else TEMP: MTA-STS must not
//                               override a failing DANE check (RFC 8461 section 2), and a
//                               match list cannot keep Postfix off one host (its certificate
//                               may carry another listed name, or a wildcard)
//   testing (strict-testing=no), none, no policy, expired, failed fetch: NOTFOUND
//   not yet known               on-unknown (accept: NOTFOUND, defer: TEMP)
//   Redis cannot answer         on-redis-error (the lookup already used a local usable entry)
// M: the policy's exact patterns, then for each `*.suffix` pattern the hosts of the current MX
// set it matches under RFC 8461 section 4.1 (one extra label). When the MX set cannot be had,
// `.suffix` instead (Postfix: any depth; Sendmail: one label). Never policy_ttl, never
// policy_failure. Everything in a reply comes from a validated entry (Domain, MxPattern,
// Mode): no spaces inside values and no control characters. Replies stay under kMaxReply.
#pragma once

#include <cstddef>
#include <string>

#include "common/sts/cache_entry.hpp"
#include "common/daemon/config.hpp"
#include "common/sts/domain.hpp"
#include "common/fleet/lookup.hpp"
#include "tlsmap/mx.hpp"
#include "tlsmap/request.hpp"

namespace mtasts::tlsmap {

// Postfix accepts replies up to 100,000 bytes; stay well below.
inline constexpr std::size_t kMaxReply = 60000;

struct ReplyOptions {
  TlsmapAction on_unknown = TlsmapAction::accept;
  TlsmapAction on_redis_error = TlsmapAction::accept;
  bool strict_testing = false;
  bool dane = true;  // the MX set is needed for every enforce domain (TLSA), not only for `*.`
};

// Step one: what the cache says about the domain.
enum class PolicyOutcome {
  enforce,    // apply the policy: an MX set is needed to build the reply
  notfound,   // deliver as before
  defer,      // TEMP
};

struct PolicyDecision {
  PolicyOutcome outcome = PolicyOutcome::notfound;
  const StoredPolicy* policy = nullptr;  // for enforce; points into the LookupResult's entry
  std::string reason;  // log token: enforce, testing, strict-testing, none, no-policy, unknown, redis-error
  std::string temp;    // TEMP text for defer
};

PolicyDecision decide(const LookupResult& r, SysTime now, const ReplyOptions& o);

struct Reply {
  std::string text;     // the socketmap payload ("OK ...", "NOTFOUND ", "TEMP ...", "PERM ...")
  std::string outcome;  // log token: secure, dane-only, notfound, temp, perm
  bool suffix_fallback = false;  // `.suffix` was used because the MX set could not be had
};

// The DANE part of the table above, for the Postfix dialects (pure).
enum class DaneAnswer {
  none,       // the MTA-STS answer
  dane_only,  // OK dane-only
  defer,      // TEMP: a host's DANE check fails and the others cannot all carry the mail by DANE
};
DaneAnswer dane_answer(const MxSet& mx) noexcept;

// Step two, for enforce: `mx` may be null or unavailable (fallback to `.suffix`).
Reply enforce_reply(Dialect dialect, const Domain& d, const StoredPolicy& p, const MxSet* mx);

// The match list of a policy over an MX set (exposed for tests): exact patterns, then the MX
// hosts that match each `*.` pattern; `.suffix` for a `*.` pattern when `mx` is null or
// unavailable. Deduplicated, in policy order. Never empty: a name that no certificate can hold
// stands in when nothing matches, so that every MX host fails verification (RFC 8461: deliver
// only to MX hosts that match a pattern). An exact pattern of one label (`hostname`,
// `nexthop`, `dot-nexthop` are keywords in Postfix's match list, which would accept any host's
// certificate for its own name) is never listed: no MX host on the Internet has a one-label
// name, so it stands for nothing and the placeholder takes its place when nothing else does.
std::vector<std::string> match_list(const Policy& p, const MxSet* mx, bool* fallback);
inline constexpr const char* kNoMatch = "no-mx-host-matches-the-policy.invalid";

Reply notfound();
Reply temp(std::string_view why);
Reply perm(std::string_view why);

}  // namespace mtasts::tlsmap
