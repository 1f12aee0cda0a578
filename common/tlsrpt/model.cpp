#include "common/tlsrpt/model.hpp"

#include <array>
#include <cstdio>
#include <ctime>

#include "common/sts/cache_entry.hpp"
#include "common/sts/policy.hpp"

namespace mtasts::tlsrpt {
namespace {

constexpr std::array<const char*, kResultCount> kResultNames = {
    "success",
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
    "tlsa-invalid",
    "dnssec-invalid",
    "dane-required",
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
};

// Cuts `s` to at most `n` bytes without splitting a UTF-8 sequence.
std::string cut(const std::string& s, std::size_t n) {
  if (s.size() <= n) return s;
  std::size_t end = n;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

// FNV-1a, 64 bits, over length-prefixed fields (so that field boundaries count).
struct Fnv {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  void bytes(std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
  }
  void field(std::string_view s) {
    bytes(std::to_string(s.size()));
    bytes(":");
    bytes(s);
  }
};

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

}  // namespace

const char* to_string(PolicyType t) noexcept {
  switch (t) {
    case PolicyType::sts: return "sts";
    case PolicyType::tlsa: return "tlsa";
    case PolicyType::no_policy_found: return "no-policy-found";
  }
  return "no-policy-found";
}

std::optional<PolicyType> parse_policy_type(std::string_view text) noexcept {
  if (text == "sts") return PolicyType::sts;
  if (text == "tlsa") return PolicyType::tlsa;
  if (text == "no-policy-found") return PolicyType::no_policy_found;
  return std::nullopt;
}

const char* to_string(Result r) noexcept {
  const auto i = static_cast<std::size_t>(r);
  return i < kResultNames.size() ? kResultNames[i] : "validation-failure";
}

std::optional<Result> parse_result(std::string_view text) noexcept {
  for (std::size_t i = 0; i < kResultNames.size(); ++i) {
    if (text == kResultNames[i]) return static_cast<Result>(i);
  }
  return std::nullopt;
}

std::string AppliedPolicy::key() const {
  Fnv a;
  a.field(to_string(type));
  a.field(std::to_string(strings.size()));
  for (const auto& s : strings) a.field(s);
  a.field(std::to_string(mx_hosts.size()));
  for (const auto& m : mx_hosts) a.field(m);
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(a.h));
  return out;
}

AppliedPolicy applied_policy_of(const CacheEntry& entry) {
  AppliedPolicy p;
  if (!entry.policy) return p;
  p.type = PolicyType::sts;
  std::string_view raw = entry.policy->raw;
  while (!raw.empty()) {
    const auto nl = raw.find('\n');
    std::string_view line = raw.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) p.strings.emplace_back(line);
    if (nl == std::string_view::npos) break;
    raw.remove_prefix(nl + 1);
  }
  for (const auto& mx : entry.policy->policy.mx) p.mx_hosts.push_back(mx.str());
  return p;
}

FailureDetail detail_of(const Session& s) {
  FailureDetail d;
  d.result = s.result;
  d.sending_mta_ip = s.sending_mta_ip;
  d.receiving_mx_hostname = s.receiving_mx_hostname;
  d.receiving_mx_helo = s.receiving_mx_helo;
  d.receiving_ip = s.receiving_ip;
  d.additional_information = cut(s.additional_information, kMaxAdditionalInformation);
  d.failure_reason_code = cut(s.failure_reason_code, kMaxFailureReasonCode);
  return d;
}

std::string day_of(std::int64_t unix_seconds) {
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return out;
}

std::optional<std::int64_t> day_start(std::string_view day) noexcept {
  if (day.size() != 10 || day[4] != '-' || day[7] != '-') return std::nullopt;
  int v[3] = {0, 0, 0};
  const std::size_t start[3] = {0, 5, 8}, len[3] = {4, 2, 2};
  for (int f = 0; f < 3; ++f) {
    for (std::size_t i = start[f]; i < start[f] + len[f]; ++i) {
      if (day[i] < '0' || day[i] > '9') return std::nullopt;
      v[f] = v[f] * 10 + (day[i] - '0');
    }
  }
  const int y = v[0], m = v[1], d = v[2];
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (y < 1970 || m < 1 || m > 12 || d < 1) return std::nullopt;
  if (d > kDays[m - 1] + (m == 2 && leap(y) ? 1 : 0)) return std::nullopt;
  // Days from the civil date (proleptic Gregorian), as in H. Hinnant's algorithm.
  const int yy = y - (m <= 2 ? 1 : 0);
  const int era = yy / 400;
  const int yoe = yy - era * 400;
  const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const std::int64_t days = static_cast<std::int64_t>(era) * 146097 + doe - 719468;
  return days * 86400;
}

std::string rfc3339(std::int64_t unix_seconds) {
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return out;
}

}  // namespace mtasts::tlsrpt
