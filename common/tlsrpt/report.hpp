// The RFC 8460 section 4 JSON report of one (UTC day, policy domain): what is sent, and what
// `mta-sts-ctl report json` prints. Its size grows with the number of distinct failure
// details (capped when aggregated), never with the session count.
#pragma once

#include <string>
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

// The report's JSON text (UTF-8, no trailing newline).
std::string report_json(const ReportMeta& meta, const std::vector<PolicyCounts>& policies);

}  // namespace mtasts::tlsrpt
