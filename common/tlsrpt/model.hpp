// RFC 8460 (SMTP TLS Reporting) as value types: the outcome of one SMTP session's TLS
// negotiation, the policy that was applied to it, and the failure details a report counts.
// Pure: no I/O. See README.md.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtasts {
struct CacheEntry;
}

namespace mtasts::tlsrpt {

// RFC 8460 section 4.4 "policy-type".
enum class PolicyType : std::uint8_t { sts, tlsa, no_policy_found };
const char* to_string(PolicyType t) noexcept;  // "sts", "tlsa", "no-policy-found"
std::optional<PolicyType> parse_policy_type(std::string_view text) noexcept;

// The outcome of one session: success, or one of the result types registered by RFC 8460
// section 4.3 (and its IANA registry).
enum class Result : std::uint8_t {
  success,
  // 4.3.1: negotiation failures
  starttls_not_supported,
  certificate_host_mismatch,
  certificate_expired,
  certificate_not_trusted,
  validation_failure,
  // 4.3.2.1: DANE policy failures
  tlsa_invalid,
  dnssec_invalid,
  dane_required,
  // 4.3.2.2: MTA-STS policy failures
  sts_policy_fetch_error,
  sts_policy_invalid,
  sts_webpki_invalid,
};
inline constexpr std::size_t kResultCount = 12;
// "success" for Result::success (not an RFC result-type: it is only counted), else the
// RFC's name ("certificate-host-mismatch", ...).
const char* to_string(Result r) noexcept;
std::optional<Result> parse_result(std::string_view text) noexcept;
inline bool is_failure(Result r) noexcept { return r != Result::success; }

// Bounds on text carried into a report (longer text is cut at a UTF-8 boundary).
inline constexpr std::size_t kMaxAdditionalInformation = 256;
inline constexpr std::size_t kMaxFailureReasonCode = 64;

// The policy applied to a session, as RFC 8460 section 4.4 "policies" reports it. Sessions
// are aggregated per (day, policy domain, applied policy).
struct AppliedPolicy {
  PolicyType type = PolicyType::no_policy_found;
  std::vector<std::string> strings;   // "policy-string": sts: the policy file's lines as fetched;
                                      // tlsa: the TLSA records in presentation form
  std::vector<std::string> mx_hosts;  // "mx-host": sts: the policy's mx patterns, in file order

  // A stable identity of the policy, the same on every host of the fleet: the aggregation
  // key beside (day, domain). Short (a hex digest), safe in a Redis key.
  std::string key() const;
  friend bool operator==(const AppliedPolicy&, const AppliedPolicy&) = default;
};

// The MTA-STS policy a cache entry held for a domain (type sts with the policy file's lines
// and mx patterns), or no-policy-found when it holds none.
AppliedPolicy applied_policy_of(const CacheEntry& entry);

// One SMTP session: a new TLS negotiation or a failed attempt at one (a reused connection is
// not a session). What a collector produces from a log line or a datagram.
struct Session {
  std::int64_t time = 0;                // unix seconds (UTC) of the outcome
  std::string domain;                   // policy domain: A-label, lower case, no trailing dot
  Result result = Result::success;
  std::string receiving_mx_hostname;    // lower case, no trailing dot; "" when unknown
  std::string receiving_ip;             // textual IPv4/IPv6; "" when unknown
  std::string sending_mta_ip;           // "" when unknown
  std::string receiving_mx_helo;        // "" when unknown
  std::string additional_information;   // the MTA's reason, at most kMaxAdditionalInformation
  std::string failure_reason_code;      // at most kMaxFailureReasonCode
  friend bool operator==(const Session&, const Session&) = default;
};

// RFC 8460 "failure-details", less the count: what makes two failures the same line of a
// report.
struct FailureDetail {
  Result result = Result::validation_failure;
  std::string sending_mta_ip;
  std::string receiving_mx_hostname;
  std::string receiving_mx_helo;
  std::string receiving_ip;
  std::string additional_information;
  std::string failure_reason_code;
  friend auto operator<=>(const FailureDetail&, const FailureDetail&) = default;
};
// The failure detail of a failed session (its text fields cut to their bounds).
FailureDetail detail_of(const Session& s);

// UTC days, the unit of a report ("date-range" is one whole UTC day).
std::string day_of(std::int64_t unix_seconds);            // "YYYY-MM-DD"
std::optional<std::int64_t> day_start(std::string_view day) noexcept;  // unix seconds of 00:00:00Z; nullopt unless a valid "YYYY-MM-DD"
std::string rfc3339(std::int64_t unix_seconds);           // "2026-12-07T00:00:00Z"

}  // namespace mtasts::tlsrpt
