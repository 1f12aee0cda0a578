// The fleet's aggregates as reports; see store_source.hpp.
#include "reportd/send/store_source.hpp"

#include "common/tlsrpt/report.hpp"

namespace mtasts::reportd {

std::string send_report_id(std::string_view day, std::string_view domain, std::string_view submitter) {
  return std::string(day) + "." + std::string(domain) + "@" + std::string(submitter);
}

StoreReportSource::StoreReportSource(ReportStore& store, std::string organization_name, std::string contact_info,
                                     std::string submitter)
    : store_(store), organization_name_(std::move(organization_name)), contact_info_(std::move(contact_info)),
      submitter_(std::move(submitter)) {
  if (submitter_.empty()) submitter_ = default_submitter(contact_info_);
}

std::vector<std::string> StoreReportSource::domains(std::string_view day) { return store_.domains(day); }

std::optional<ReportText> StoreReportSource::report(std::string_view day, std::string_view domain) {
  ReportStore::DayCounts counts = store_.read(day, domain);
  if (counts.policies.empty()) return std::nullopt;
  tlsrpt::ReportMeta meta;
  meta.organization_name = organization_name_;
  meta.contact_info = contact_info_;
  meta.report_id = send_report_id(day, domain, submitter_);
  meta.day = std::string(day);
  meta.policy_domain = std::string(domain);
  ReportText r;
  r.report_id = meta.report_id;
  for (const auto& p : counts.policies) r.failures += p.counts.failure;
  r.json = tlsrpt::report_json(meta, counts.policies);
  return r;
}

}  // namespace mtasts::reportd
