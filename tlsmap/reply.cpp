// Reply building; see reply.hpp.
#include "tlsmap/reply.hpp"

#include <algorithm>

namespace mtasts::tlsmap {

PolicyDecision decide(const LookupResult& r, SysTime now, const ReplyOptions& o) {
  PolicyDecision d;
  const auto act = [&](TlsmapAction a, const char* reason, const char* temp_text) {
    d.reason = reason;
    if (a == TlsmapAction::defer) {
      d.outcome = PolicyOutcome::defer;
      d.temp = temp_text;
    } else {
      d.outcome = PolicyOutcome::notfound;
    }
    return d;
  };
  if (r.failed) return act(o.on_redis_error, "redis-error", "MTA-STS policy cache unavailable");
  if (!r.entry) return act(o.on_unknown, "unknown", "MTA-STS policy not yet known");
  switch (verdict(*r.entry, now)) {
    case Verdict::enforce:
      d.outcome = PolicyOutcome::enforce;
      d.policy = &*r.entry->policy;
      d.reason = "enforce";
      return d;
    case Verdict::testing:
      if (o.strict_testing) {
        d.outcome = PolicyOutcome::enforce;
        d.policy = &*r.entry->policy;
        d.reason = "strict-testing";
      } else {
        d.reason = "testing";
      }
      return d;
    case Verdict::none:
      d.reason = "none";
      return d;
    case Verdict::no_policy:
      d.reason = "no-policy";
      return d;
    case Verdict::unknown:
      return act(o.on_unknown, "unknown", "MTA-STS policy not yet known");
  }
  return d;
}

std::vector<std::string> match_list(const Policy& p, const MxSet* mx, bool* fallback) {
  std::vector<std::string> out;
  const auto add = [&out](std::string s) {
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(std::move(s));
  };
  if (fallback) *fallback = false;
  const bool have_mx = mx != nullptr && mx->available;
  for (const MxPattern& pat : p.mx) {
    const std::string text = pat.str();  // canonical: lowercase, "*." kept for wildcards
    if (!pat.wildcard()) {
      // A one-label name could be a Postfix keyword (hostname, nexthop, dot-nexthop): never
      // pass it on (a valid host name in a policy has a dot).
      if (text.find('.') != std::string::npos) add(text);
      continue;
    }
    if (!have_mx) {
      add(text.substr(1));  // "*.example.com" -> ".example.com"
      if (fallback) *fallback = true;
      continue;
    }
    for (const std::string& host : mx->hosts)
      if (pat.matches(host)) add(host);
  }
  if (out.empty()) out.emplace_back(kNoMatch);
  return out;
}

namespace {

std::string join(const std::vector<std::string>& v, char sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// The policy as its lines, rebuilt from the validated model (the raw text is not kept in the
// local cache, and a rebuilt line cannot carry anything a reply must not hold).
std::vector<std::string> policy_lines(const Policy& p) {
  std::vector<std::string> out;
  out.emplace_back("version: STSv1");
  out.push_back(std::string("mode: ") + to_string(p.mode));
  for (const MxPattern& m : p.mx) out.push_back("mx: " + m.str());
  out.push_back("max_age: " + std::to_string(p.max_age.count()));
  return out;
}

}  // namespace

DaneAnswer dane_answer(const MxSet& mx) noexcept {
  if (!mx.available || mx.hosts.empty() || mx.dane.size() != mx.hosts.size()) return DaneAnswer::none;
  const auto count = [&](HostDane h) { return static_cast<std::size_t>(std::count(mx.dane.begin(), mx.dane.end(), h)); };
  const std::size_t usable = count(HostDane::usable);
  const std::size_t failed = count(HostDane::failed);
  if (failed > 0) return usable + failed == mx.hosts.size() && usable > 0 ? DaneAnswer::dane_only : DaneAnswer::defer;
  return usable == mx.hosts.size() ? DaneAnswer::dane_only : DaneAnswer::none;
}

Reply enforce_reply(Dialect dialect, const Domain& d, const StoredPolicy& sp, const MxSet* mx) {
  Reply r;
  // Not looked up (too many lookups of this domain in flight): nothing is known, defer.
  if (mx != nullptr && mx->busy) return temp("MX lookup of this domain in progress");
  // RFC 8461 section 2: DANE takes precedence, for a sender that does DANE, and MTA-STS must
  // not override a failing DANE check. Postfix's dane-only authenticates every host by its
  // TLSA and fails closed: answered only when each host has usable TLSA (see dane_answer()).
  // Sendmail's `sts' map reads anything but "secure" as "no STS check" and Debian's Sendmail
  // has no DANE, so a DANE reply there would send an enforce domain's mail in clear once
  // STARTTLS is stripped: the sts dialect always gets the MTA-STS answer.
  if (dialect != Dialect::sts && mx != nullptr) {
    switch (dane_answer(*mx)) {
      case DaneAnswer::dane_only:
        r.outcome = "dane-only";
        r.text = "OK dane-only";
        return r;
      case DaneAnswer::defer: {
        std::string host;
        for (std::size_t i = 0; i < mx->hosts.size() && host.empty(); ++i)
          if (mx->dane[i] == HostDane::failed) host = mx->hosts[i];
        return temp("DANE TLSA lookup failed for MX host " + host);
      }
      case DaneAnswer::none: break;
    }
  }
  const std::vector<std::string> match = match_list(sp.policy, mx, &r.suffix_fallback);
  std::string text = "OK secure match=" + join(match, ':') + " servername=hostname";
  if (dialect == Dialect::postfix_tlsrpt) {
    text += " policy_type=sts policy_domain=" + d.str();
    for (const MxPattern& m : sp.policy.mx) text += " mx_host_pattern=" + m.str();
    std::string strings;
    for (const std::string& line : policy_lines(sp.policy)) strings += " { policy_string = " + line + " }";
    // The policy strings only feed TLS-RPT reports: drop them rather than exceed the bound.
    if (text.size() + strings.size() <= kMaxReply) text += strings;
  }
  if (text.size() > kMaxReply) return temp("MTA-STS reply too large");
  r.text = std::move(text);
  r.outcome = "secure";
  return r;
}

Reply notfound() { return Reply{"NOTFOUND ", "notfound", false}; }
Reply temp(std::string_view why) { return Reply{"TEMP " + std::string(why), "temp", false}; }
Reply perm(std::string_view why) { return Reply{"PERM " + std::string(why), "perm", false}; }

}  // namespace mtasts::tlsmap
