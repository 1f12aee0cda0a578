// `mta-sts-ctl report ...`: the operator's view of the fleet's TLS-RPT aggregates (issue 20),
// through the same ReportStore and report_json() that mta-sts-reportd uses, so that
// `report json` prints exactly the report that will be sent. A Redis failure is exit 3; a
// domain without sessions on that day is exit 1.
#pragma once

#include <string_view>

#include "common/fleet/report_store.hpp"
#include "common/tlsrpt/report.hpp"
#include "ctl/commands.hpp"

namespace mtasts::ctl {

// `report show [DOMAIN] [--day DAY] [--json]`: per domain (all of the day's when `domain` is
// empty) the fleet's successful and failed sessions and the failures per result type.
Output report_show(ReportStore& store, std::string_view domain, std::string_view day, bool json);

// `report json DOMAIN --day DAY`: the RFC 8460 report of (day, domain), as it will be sent.
Output report_json_of(ReportStore& store, const tlsrpt::Reporter& who, std::string_view domain,
                      std::string_view day);

}  // namespace mtasts::ctl
