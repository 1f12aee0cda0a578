// The RFC 8460 section 4 report (report.hpp), written with util/json's builders.
#include "common/tlsrpt/report.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "common/sts/domain.hpp"
#include "common/util/json.hpp"

namespace mtasts::tlsrpt {
namespace {

// `s` as UTF-8: each byte that does not begin a well-formed sequence becomes U+FFFD.
std::string utf8_clean(std::string_view s) {
  if (is_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    if (c < 0x80) n = 1;
    else if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c >= 0xe0 && c <= 0xef) n = 3;
    else if (c >= 0xf0 && c <= 0xf4) n = 4;
    if (n > 0 && i + n <= s.size() && is_utf8(s.substr(i, n))) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

std::int64_t json_count(std::uint64_t v) {
  return static_cast<std::int64_t>(std::min<std::uint64_t>(v, std::numeric_limits<std::int64_t>::max()));
}

void optional_str(json::Object& o, std::string_view key, const std::string& value) {
  if (!value.empty()) o.str(key, utf8_clean(value));
}

void optional_strings(json::Object& o, std::string_view key, const std::vector<std::string>& values) {
  if (values.empty()) return;
  json::Array a;
  for (const auto& v : values) a.str(utf8_clean(v));
  o.raw(key, a.take());
}

std::string detail_json(const FailureDetail& d, std::uint64_t count) {
  json::Object o;
  o.str("result-type", to_string(d.result));
  optional_str(o, "sending-mta-ip", d.sending_mta_ip);
  optional_str(o, "receiving-mx-hostname", d.receiving_mx_hostname);
  optional_str(o, "receiving-mx-helo", d.receiving_mx_helo);
  optional_str(o, "receiving-ip", d.receiving_ip);
  o.num("failed-session-count", json_count(count));
  optional_str(o, "additional-information", d.additional_information);
  optional_str(o, "failure-reason-code", d.failure_reason_code);
  return o.take();
}

}  // namespace

std::optional<DateRange> report_range(std::string_view day) {
  const auto start = day_start(day);
  if (!start) return std::nullopt;
  return DateRange{*start, *start + 86400 - 1};
}

std::string report_id(std::string_view day, std::string_view domain, std::string_view submitter) {
  // FNV-1a, 64 bits, over length-prefixed fields (so that field boundaries count).
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto bytes = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
  };
  for (std::string_view f : {day, domain, submitter}) {
    bytes(std::to_string(f.size()));
    bytes(":");
    bytes(f);
  }
  std::string out;
  for (char c : day) {
    if (c >= '0' && c <= '9') out += c;
  }
  out += '.';
  for (char c : domain) {
    const bool safe = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (c == '.' && out.back() != '.');
    out += safe ? c : '-';
  }
  char hex[24];
  std::snprintf(hex, sizeof hex, ".%016llx", static_cast<unsigned long long>(h));
  out += hex;
  // The submitter as a dot-atom: lower case letters, digits, '-', and single inner dots.
  std::string host;
  for (char c : submitter) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    const bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!keep || (c == '.' && (host.empty() || host.back() == '.'))) continue;
    host += c;
  }
  while (!host.empty() && host.back() == '.') host.pop_back();
  if (!host.empty()) out += "@" + host;
  return out;
}

std::string submitter_of(std::string_view contact) {
  std::string_view host;
  const auto at = contact.rfind('@');
  if (at != std::string_view::npos) {
    host = contact.substr(at + 1);
    host = host.substr(0, host.find_first_of("?>; "));
  } else {
    for (std::string_view scheme : {"https://", "http://"}) {
      if (contact.substr(0, scheme.size()) == scheme) {
        host = contact.substr(scheme.size());
        host = host.substr(0, host.find_first_of("/:?#"));
      }
    }
  }
  std::string out;
  for (char c : host) out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

ReportMeta report_meta(const Reporter& who, std::string_view day, std::string_view policy_domain) {
  ReportMeta m;
  m.organization_name = who.organization_name;
  m.contact_info = who.contact_info;
  m.day = std::string(day);
  m.policy_domain = std::string(policy_domain);
  const std::string submitter = who.submitter.empty() ? submitter_of(who.contact_info) : who.submitter;
  m.report_id = report_id(day, policy_domain, submitter);
  return m;
}

std::string report_json(const ReportMeta& meta, const std::vector<PolicyCounts>& policies) {
  const auto range = report_range(meta.day);
  if (!range) throw std::invalid_argument("report_json: invalid day");
  json::Object range_obj;
  range_obj.str("start-datetime", rfc3339(range->begin));
  range_obj.str("end-datetime", rfc3339(range->end));
  json::Object head;
  head.str("organization-name", utf8_clean(meta.organization_name));
  head.raw("date-range", range_obj.take());
  head.str("contact-info", utf8_clean(meta.contact_info));
  head.str("report-id", utf8_clean(meta.report_id));
  // The policies and their failure details are appended to one string in place (not built
  // as nested values and copied into their parents): the peak stays near the text's size.
  std::string out = head.take();
  out.pop_back();  // the head's '}'
  out += ",\"policies\":[";
  bool first_policy = true;
  for (const PolicyCounts& pc : policies) {
    json::Object policy;
    policy.str("policy-type", to_string(pc.policy.type));
    optional_strings(policy, "policy-string", pc.policy.strings);
    policy.str("policy-domain", utf8_clean(meta.policy_domain));
    optional_strings(policy, "mx-host", pc.policy.mx_hosts);
    json::Object summary;
    summary.num("total-successful-session-count", json_count(pc.counts.success));
    summary.num("total-failure-session-count", json_count(pc.counts.failure));

    if (!first_policy) out += ',';
    first_policy = false;
    out += "{\"policy\":";
    out += policy.take();
    out += ",\"summary\":";
    out += summary.take();
    out += ",\"failure-details\":[";
    bool first_detail = true;
    for (const auto& [d, n] : pc.counts.details) {
      if (!first_detail) out += ',';
      first_detail = false;
      out += detail_json(d, n);
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

}  // namespace mtasts::tlsrpt
