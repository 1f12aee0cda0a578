// The daemon's ReportSource: the fleet's aggregates in Redis (common/fleet/report_store) as
// the RFC 8460 JSON report (common/tlsrpt/report). Built exactly as `mta-sts-ctl report json`
// builds it (tlsrpt::report_meta, tlsrpt::report_json), so that what is sent for a day and
// domain is what the operator sees.
#pragma once

#include <string>

#include "common/fleet/report_store.hpp"
#include "common/tlsrpt/report.hpp"
#include "reportd/send/sender.hpp"

namespace mtasts::reportd {

class StoreReportSource final : public ReportSource {
 public:
  // `submitter` empty: the domain of contact-info (as tlsrpt::report_meta has it).
  StoreReportSource(ReportStore& store, std::string organization_name, std::string contact_info,
                    std::string submitter);
  std::vector<std::string> domains(std::string_view day) override;
  std::optional<ReportText> report(std::string_view day, std::string_view domain) override;

 private:
  ReportStore& store_;
  tlsrpt::Reporter who_;
};

}  // namespace mtasts::reportd
