#include "reportd/collect/classify.hpp"

#include "common/fleet/lookup.hpp"
#include "reportd/collect/log_line.hpp"

namespace mtasts::reportd {
namespace {

bool icontains(std::string_view hay, std::string_view needle) {
  return lower_ascii(hay).find(needle) != std::string::npos;
}

}  // namespace

std::optional<tlsrpt::Result> policy_failure(const FailureState& f) noexcept {
  switch (f.kind) {
    case FailureKind::fetch:
      // libcurl's texts for a refused server certificate ("SSL certificate problem: ...",
      // "no alternative certificate subject name matches ...", "SSL peer certificate ...").
      if (icontains(f.error, "certificate")) return tlsrpt::Result::sts_webpki_invalid;
      return tlsrpt::Result::sts_policy_fetch_error;
    case FailureKind::policy_invalid: return tlsrpt::Result::sts_policy_invalid;
    case FailureKind::dns:
    case FailureKind::txt_invalid: return std::nullopt;
  }
  return std::nullopt;
}

std::optional<CacheEntry> LookupPolicyView::entry(const Domain& domain) {
  const LookupResult r = lookup_.lookup(domain);
  if (r.entry) return *r.entry;
  if (r.failed) throw PolicyUnavailable(r.error.empty() ? "policy cache unavailable" : r.error);
  return std::nullopt;
}

tlsrpt::AppliedPolicy Classifier::classify(Outcome& o) {
  if (o.policy && o.policy->type != tlsrpt::PolicyType::no_policy_found) return *o.policy;
  tlsrpt::AppliedPolicy none;
  const DomainParse d = Domain::parse(o.session.domain);
  if (!d.domain) return none;
  const std::optional<CacheEntry> entry = view_.entry(*d.domain);
  if (!entry) return none;
  const SysTime at{Seconds{o.session.time}};
  const Verdict v = verdict(*entry, at);
  if (v == Verdict::enforce || v == Verdict::testing || v == Verdict::none) {
    tlsrpt::AppliedPolicy p = tlsrpt::applied_policy_of(*entry);
    if (o.session.result == tlsrpt::Result::success && v != Verdict::none) {
      // The MTA did not enforce (mode testing, or the policy server was not consulted) and
      // accepted what the policy refuses.
      if (o.tls == TlsSeen::untrusted) {
        o.session.result = tlsrpt::Result::certificate_not_trusted;
        o.session.additional_information = "certificate not verified (policy not enforced by the MTA)";
      } else if (o.tls == TlsSeen::anonymous) {
        o.session.result = tlsrpt::Result::validation_failure;
        o.session.additional_information = "no server certificate (policy not enforced by the MTA)";
      }
    }
    return p;
  }
  if (entry->failure && entry->failure->kind != FailureKind::dns) {
    if (const auto r = policy_failure(*entry->failure)) {
      o.session.result = *r;
      o.session.additional_information = clean_text(entry->failure->error, tlsrpt::kMaxAdditionalInformation);
      o.session.failure_reason_code.clear();
      tlsrpt::AppliedPolicy p;
      p.type = tlsrpt::PolicyType::sts;
      return p;
    }
  }
  return none;
}

}  // namespace mtasts::reportd
