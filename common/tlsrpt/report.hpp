// The RFC 8460 section 4 JSON report of one (UTC day, policy domain): what is sent, and what
// `mta-sts-ctl report json` prints. Its size grows with the number of distinct failure
// details (capped when aggregated), never with the session count.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/tlsrpt/batch.hpp"
#include "common/tlsrpt/model.hpp"

namespace mtasts::tlsrpt {

struct ReportMeta {
  std::string organization_name;
  std::string contact_info;
  std::string report_id;   // unique per report (and stable across retries of the same report)
  std::string day;         // "YYYY-MM-DD": date-range is [day 00:00:00Z, next day 00:00:00Z)
  std::string policy_domain;
};

struct PolicyCounts {
  AppliedPolicy policy;
  Counts counts;
};

// Who reports ([reportd] organization-name, contact-info, submitter): the same on every host
// of the fleet, so that every host would write the same report.
struct Reporter {
  std::string organization_name;
  std::string contact_info;  // an address ("tlsrpt@example.net") or a URI
  std::string submitter;     // a domain; empty: submitter_of(contact_info)
};
// The domain of contact-info: what follows the last '@' of an address or a mailto: URI, else
// the host of an http(s): URI, lower case; "" when there is none.
std::string submitter_of(std::string_view contact_info);
// The meta of the report of (day, policy domain) by `who`, with its report_id().
ReportMeta report_meta(const Reporter& who, std::string_view day, std::string_view policy_domain);

// The report's JSON text (UTF-8, no trailing newline). Policies in the given order; in each,
// failure-details in FailureDetail order, empty optional fields left out; policy-domain is
// always present (also for no-policy-found: common parsers reject a report without it).
// Text that is not UTF-8 (a log line in Latin-1) has its invalid bytes replaced by U+FFFD.
// Memory: a few times the size of the text it returns (see tlsrpt_report_test.cpp).
// Throws std::invalid_argument when meta.day is not a valid "YYYY-MM-DD".
std::string report_json(const ReportMeta& meta, const std::vector<PolicyCounts>& policies);

// The report's date-range in unix seconds: the whole UTC day, [00:00:00Z, 23:59:59Z] (as
// RFC 8460's example and the big receivers write it); the same numbers name the attachment
// ("submitter!domain!begin!end!id.json.gz"). nullopt unless `day` is a valid "YYYY-MM-DD".
struct DateRange {
  std::int64_t begin = 0;
  std::int64_t end = 0;
};
std::optional<DateRange> report_range(std::string_view day);

// The report-id of (day, policy domain, submitter): the same on every host and at every retry,
// different for another day, domain or submitter. A msg-id (dot-atom "@" dot-atom, as RFC
// 8460's Subject "Report-ID: <...>" shows it), safe in a file name and a header ([a-z0-9.-@]
// only): "<YYYYMMDD>.<domain>.<16 hex digits>@<submitter>" (without "@..." when `submitter`
// has no usable character).
std::string report_id(std::string_view day, std::string_view domain, std::string_view submitter);

}  // namespace mtasts::tlsrpt
