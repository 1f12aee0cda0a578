// `mta-sts-ctl report ...` over ReportStore (which alone knows the key names) and
// tlsrpt::report_json (which alone writes reports).
#include "ctl/report.hpp"

#include <array>
#include <cstdio>
#include <string>

#include "common/sts/domain.hpp"
#include "common/util/json.hpp"

namespace mtasts::ctl {
namespace {

Output usage(std::string why) {
  Output o;
  o.code = kExitUsage;
  o.err = "mta-sts-ctl: " + why + "\n";
  return o;
}

Output redis_failure(const std::exception& e) {
  Output o;
  o.code = kExitFailed;
  o.err = std::string("mta-sts-ctl: ") + e.what() + "\n";
  return o;
}

// Checks DAY and DOMAIN (when given); the A-label of DOMAIN in *a_label.
std::optional<Output> check_operands(std::string_view domain, std::string_view day, std::string* a_label) {
  if (!tlsrpt::day_start(day)) return usage("\"" + terminal_safe(day) + "\" is not a day (YYYY-MM-DD)");
  if (domain.empty()) return std::nullopt;
  DomainParse p = Domain::parse(domain);
  if (!p.domain) return usage("\"" + terminal_safe(domain) + "\" is not a domain: " + p.error);
  *a_label = p.domain->str();
  return std::nullopt;
}

// The fleet's counts of one (day, domain), summed over its policies.
struct Row {
  std::string domain;
  std::size_t policies = 0;
  std::uint64_t success = 0, failure = 0;
  std::array<std::uint64_t, tlsrpt::kResultCount> by_result{};
  std::uint64_t undetailed = 0;  // failures whose detail was over the cap
  std::uint64_t dropped_policy_sessions = 0;
  std::uint64_t skipped_fields = 0;
};

Row row_of(std::string domain, const ReportStore::DayCounts& c) {
  Row r;
  r.domain = std::move(domain);
  r.policies = c.policies.size();
  for (const auto& pc : c.policies) {
    r.success += pc.counts.success;
    r.failure += pc.counts.failure;
    std::uint64_t detailed = 0;
    for (const auto& [d, n] : pc.counts.details) {
      r.by_result[static_cast<std::size_t>(d.result)] += n;
      detailed += n;
    }
    r.undetailed += pc.counts.failure - detailed;
  }
  r.dropped_policy_sessions = c.dropped_policy_sessions;
  r.skipped_fields = c.skipped_fields;
  return r;
}

std::int64_t num(std::uint64_t v) { return static_cast<std::int64_t>(v); }

std::string render(std::string_view day, const std::vector<Row>& rows, bool json) {
  if (json) {
    json::Array domains;
    for (const Row& r : rows) {
      json::Object types;
      for (std::size_t i = 1; i < tlsrpt::kResultCount; ++i) {
        if (r.by_result[i]) types.num(tlsrpt::to_string(static_cast<tlsrpt::Result>(i)), num(r.by_result[i]));
      }
      domains.raw(json::Object()
                      .str("domain", r.domain)
                      .num("policies", num(r.policies))
                      .num("successful", num(r.success))
                      .num("failed", num(r.failure))
                      .raw("result-types", types.take())
                      .num("undetailed-failures", num(r.undetailed))
                      .num("dropped-policy-sessions", num(r.dropped_policy_sessions))
                      .num("invalid-fields", num(r.skipped_fields))
                      .take());
    }
    return json::Object().str("day", day).raw("domains", domains.take()).take() + "\n";
  }
  std::string out = "day " + std::string(day) + " (UTC), " + std::to_string(rows.size()) + " domain" +
                    (rows.size() == 1 ? "" : "s") + "\n";
  for (const Row& r : rows) {
    const std::uint64_t sessions = r.success + r.failure;
    out += r.domain + ": " + std::to_string(sessions) + (sessions == 1 ? " session, " : " sessions, ") + std::to_string(r.success) +
           " successful, " + std::to_string(r.failure) + " failed\n";
    for (std::size_t i = 1; i < tlsrpt::kResultCount; ++i) {
      if (r.by_result[i]) {
        out += "  " + std::string(tlsrpt::to_string(static_cast<tlsrpt::Result>(i))) + ": " +
               std::to_string(r.by_result[i]) + "\n";
      }
    }
    if (r.undetailed) out += "  (over the failure-detail cap, type not kept): " + std::to_string(r.undetailed) + "\n";
    if (r.dropped_policy_sessions) {
      out += "  (sessions of policies over the cap, not reported): " + std::to_string(r.dropped_policy_sessions) + "\n";
    }
    if (r.skipped_fields) out += "  (invalid fields in Redis, skipped): " + std::to_string(r.skipped_fields) + "\n";
  }
  return out;
}

}  // namespace

Output report_show(ReportStore& store, std::string_view domain, std::string_view day, bool json) {
  std::string a_label;
  if (auto bad = check_operands(domain, day, &a_label)) return *bad;
  try {
    std::vector<Row> rows;
    if (!a_label.empty()) {
      auto c = store.read(day, a_label);
      if (c.policies.empty() && c.dropped_policy_sessions == 0) {
        Output o;
        o.code = kExitNo;
        if (json) {
          o.out = render(day, rows, true);
        } else {
          o.out = a_label + ": no sessions on " + std::string(day) + "\n";
        }
        return o;
      }
      rows.push_back(row_of(a_label, c));
    } else {
      for (const std::string& d : store.domains(day)) {
        auto c = store.read(day, d);
        if (c.policies.empty() && c.dropped_policy_sessions == 0) continue;  // expired meanwhile
        rows.push_back(row_of(d, c));
      }
    }
    Output o;
    o.out = render(day, rows, json);
    return o;
  } catch (const RedisError& e) {
    return redis_failure(e);
  }
}

Output report_json_of(ReportStore& store, const tlsrpt::Reporter& who, std::string_view domain,
                      std::string_view day) {
  if (domain.empty()) return usage("report json takes one DOMAIN");
  std::string a_label;
  if (auto bad = check_operands(domain, day, &a_label)) return *bad;
  try {
    const auto c = store.read(day, a_label);
    Output o;
    if (c.policies.empty()) {
      o.code = kExitNo;
      o.err = "mta-sts-ctl: " + a_label + ": no sessions on " + std::string(day) + ", no report\n";
      return o;
    }
    o.out = tlsrpt::report_json(tlsrpt::report_meta(who, day, a_label), c.policies) + "\n";
    return o;
  } catch (const RedisError& e) {
    return redis_failure(e);
  }
}

}  // namespace mtasts::ctl
