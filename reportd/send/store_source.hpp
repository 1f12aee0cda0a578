// The daemon's ReportSource: the fleet's aggregates in Redis (common/fleet/report_store) as
// the RFC 8460 JSON report (common/tlsrpt/report). What `mta-sts-reportd` and `--send DAY`
// send is exactly what `mta-sts-ctl report json` prints for the same day and domain.
#pragma once

#include <string>

#include "common/fleet/report_store.hpp"
#include "reportd/send/sender.hpp"

namespace mtasts::reportd {

// The report-id of (day, domain) from `submitter`: "<day>.<domain>@<submitter>", stable
// across retries and hosts (every host of the fleet builds the same id), unique per report.
// (If common/tlsrpt/report.hpp gains a report_id() of its own, this one gives way to it.)
std::string send_report_id(std::string_view day, std::string_view domain, std::string_view submitter);

class StoreReportSource final : public ReportSource {
 public:
  StoreReportSource(ReportStore& store, std::string organization_name, std::string contact_info,
                    std::string submitter);
  std::vector<std::string> domains(std::string_view day) override;
  std::optional<ReportText> report(std::string_view day, std::string_view domain) override;

 private:
  ReportStore& store_;
  std::string organization_name_, contact_info_, submitter_;
};

}  // namespace mtasts::reportd
