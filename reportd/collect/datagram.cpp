#include "reportd/collect/datagram.hpp"

#include "common/sts/domain.hpp"
#include "common/util/json_parse.hpp"
#include "reportd/collect/log_line.hpp"

namespace mtasts::reportd {
namespace {

using tlsrpt::Result;

constexpr std::size_t kMaxPolicies = 8;
constexpr std::size_t kMaxPolicyStrings = 256;
constexpr std::size_t kMaxPolicyStringBytes = 1024;
constexpr std::size_t kMaxMx = 64;
constexpr std::size_t kMaxDetails = 64;

const std::string* str(const json::Value& o, std::string_view key) {
  const json::Value* v = o.find(key);
  return v && v->is_string() ? &v->text : nullptr;
}

std::optional<std::int64_t> integer(const json::Value& o, std::string_view key) {
  const json::Value* v = o.find(key);
  if (!v || v->type != json::Value::Type::number) return std::nullopt;
  return v->integer;
}

std::string ip_or_empty(const std::string* s) {
  return s && is_ip_address(*s) ? *s : std::string();
}

}  // namespace

Result datagram_result(std::int64_t code) noexcept {
  switch (code) {
    case 201: return Result::starttls_not_supported;
    case 202: return Result::certificate_host_mismatch;
    case 203: return Result::certificate_not_trusted;
    case 204: return Result::certificate_expired;
    case 205: return Result::validation_failure;
    case 301: return Result::sts_policy_fetch_error;
    case 302: return Result::sts_policy_invalid;
    case 303: return Result::sts_webpki_invalid;
    case 304: return Result::tlsa_invalid;
    case 305: return Result::dnssec_invalid;
    case 306: return Result::dane_required;
    default: return Result::validation_failure;
  }
}

bool parse_datagram(std::string_view bytes, std::int64_t now, const std::string& sending_ip,
                    std::vector<Outcome>& out, std::string* error) {
  const auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  if (bytes.size() > kMaxDatagramBytes) return fail("datagram larger than 65536 bytes");
  json::ParseLimits limits;
  limits.max_bytes = kMaxDatagramBytes;
  limits.max_depth = 6;
  limits.max_items = 4096;
  std::string why;
  const auto doc = json::parse(bytes, &why, limits);
  if (!doc) return fail("invalid JSON: " + why);
  if (!doc->is_object()) return fail("not a JSON object");
  const std::string* dpv = str(*doc, "dpv");
  if (!dpv || *dpv != "1") return fail("unsupported datagram protocol version");
  const std::string* d = str(*doc, "d");
  if (!d) return fail("no domain (\"d\")");
  const json::Value* policies = doc->find("policies");
  if (!policies || !policies->is_array() || policies->array.empty()) return fail("no policies");
  if (policies->array.size() > kMaxPolicies) return fail("too many policies");

  std::vector<Outcome> sessions;
  for (const json::Value& pol : policies->array) {
    if (!pol.is_object()) return fail("a policy is not an object");
    const auto type = integer(pol, "policy-type");
    Outcome base;
    base.session.time = now;
    if (!type || (*type != 1 && *type != 2 && *type != 9)) return fail("unknown policy-type");
    const std::string* pd = str(pol, "policy-domain");
    const DomainParse dp = Domain::parse(pd ? *pd : *d);
    if (!dp.domain) return fail("invalid policy domain: " + dp.error);
    base.session.domain = dp.domain->str();
    base.session.sending_mta_ip = sending_ip;
    if (*type != 9) {
      tlsrpt::AppliedPolicy ap;
      ap.type = *type == 2 ? tlsrpt::PolicyType::sts : tlsrpt::PolicyType::tlsa;
      if (const json::Value* ps = pol.find("policy-string")) {
        if (!ps->is_array() || ps->array.size() > kMaxPolicyStrings) return fail("bad policy-string");
        for (const auto& s : ps->array) {
          if (!s.is_string() || s.text.size() > kMaxPolicyStringBytes) return fail("bad policy-string");
          ap.strings.push_back(clean_text(s.text, kMaxPolicyStringBytes));
        }
      }
      if (const json::Value* mx = pol.find("mx-host")) {
        if (!mx->is_array() || mx->array.size() > kMaxMx) return fail("bad mx-host");
        for (const auto& m : mx->array) {
          if (!m.is_string() || m.text.size() > 255) return fail("bad mx-host");
          ap.mx_hosts.push_back(lower_ascii(clean_text(m.text, 255)));
        }
      }
      base.policy = std::move(ap);
    }
    const auto final_result = integer(pol, "f");
    if (!final_result || (*final_result != 0 && *final_result != 1)) return fail("bad final result (\"f\")");
    std::size_t failures = 0;
    if (const json::Value* fd = pol.find("failure-details")) {
      if (!fd->is_array() || fd->array.size() > kMaxDetails) return fail("bad failure-details");
      for (const json::Value& f : fd->array) {
        if (!f.is_object()) return fail("a failure detail is not an object");
        const auto code = integer(f, "c");
        if (!code) return fail("a failure detail without a code");
        Outcome o = base;
        o.session.result = datagram_result(*code);
        if (const std::string* s = str(f, "s"); s && is_ip_address(*s)) o.session.sending_mta_ip = *s;
        if (const std::string* n = str(f, "n")) o.session.receiving_mx_hostname = normal_host(*n);
        if (const std::string* h = str(f, "h")) o.session.receiving_mx_helo = normal_host(*h);
        o.session.receiving_ip = ip_or_empty(str(f, "r"));
        if (const std::string* a = str(f, "a")) o.session.additional_information = clean_text(*a, tlsrpt::kMaxAdditionalInformation);
        if (const std::string* c = str(f, "f")) o.session.failure_reason_code = clean_text(*c, tlsrpt::kMaxFailureReasonCode);
        sessions.push_back(std::move(o));
        ++failures;
      }
    }
    if (*final_result == 0) {
      Outcome o = base;
      o.session.result = Result::success;
      sessions.push_back(std::move(o));
    } else if (failures == 0) {
      Outcome o = base;
      o.session.result = Result::validation_failure;
      o.session.additional_information = "failure without details";
      sessions.push_back(std::move(o));
    }
  }
  for (auto& s : sessions) out.push_back(std::move(s));
  return true;
}

}  // namespace mtasts::reportd
