// Test support: a TLS-RPT report message read back by an independent MIME parser (Python's
// email package, tests/support/report_mail.py), for the sender's unit and integration tests.
#pragma once

#include <map>
#include <stdexcept>
#include <string>

#include "tests/support/process.hpp"

namespace mtasts::test {

struct ParsedReportMail {
  std::multimap<std::string, std::string> fields;  // "header:Subject", "part1.filename", ...
  std::string json;                                // the gunzipped report ("" when none)
  std::string get(const std::string& name) const {
    auto it = fields.find(name);
    return it == fields.end() ? std::string() : it->second;
  }
  std::size_t count(const std::string& name) const { return fields.count(name); }
};

inline ParsedReportMail parse_report_mail(const std::string& message) {
  TempDir dir("mtasts-mail");
  write_file(dir / "msg.eml", message);
  RunResult r = run({"python3", (source_dir() / "tests/support/report_mail.py").string(), (dir / "msg.eml").string(),
                     (dir / "report.json").string()});
  if (r.exit_code != 0) throw std::runtime_error("report_mail.py failed: " + r.err);
  ParsedReportMail p;
  for (const auto& line : lines_of(r.out)) {
    const auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    p.fields.emplace(line.substr(0, tab), line.substr(tab + 1));
  }
  if (std::filesystem::exists(dir / "report.json")) p.json = read_file(dir / "report.json");
  return p;
}

}  // namespace mtasts::test
