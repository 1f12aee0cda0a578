// The fleet's aggregates as reports; see store_source.hpp.
#include "reportd/send/store_source.hpp"

namespace mtasts::reportd {

StoreReportSource::StoreReportSource(ReportStore& store, std::string organization_name, std::string contact_info,
                                     std::string submitter)
    : store_(store), who_{std::move(organization_name), std::move(contact_info), std::move(submitter)} {}

std::vector<std::string> StoreReportSource::domains(std::string_view day) { return store_.domains(day); }

std::optional<ReportText> StoreReportSource::report(std::string_view day, std::string_view domain) {
  ReportStore::DayCounts counts = store_.read(day, domain);
  if (counts.policies.empty()) return std::nullopt;
  const tlsrpt::ReportMeta meta = tlsrpt::report_meta(who_, day, domain);
  ReportText r;
  r.report_id = meta.report_id;
  for (const auto& p : counts.policies) r.failures += p.counts.failure;
  r.json = tlsrpt::report_json(meta, counts.policies);
  return r;
}

}  // namespace mtasts::reportd
