// The real MTA logs the collector tests read: the world's fixtures (tests/fixtures/reportd,
// written by tests/e2e/deliver/fixtures_main.cpp from real Postfix 3.7 and Sendmail 8.17)
// when present, else the copies of real Postfix 3.7.11 maillog_file output kept beside the
// tests (tests/unit/reportd/data).
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace mtasts::reportd::fixtures {

inline std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string first_of(const std::string& fixture, const std::string& interim) {
  const std::string f = std::string(MTASTS_FIXTURES) + "/" + fixture;
  if (std::filesystem::exists(f)) return read(f);
  return interim.empty() ? std::string() : read(std::string(MTASTS_COLLECT_DATA) + "/" + interim);
}

inline std::string postfix_log() { return first_of("postfix-3.7.log", "interim-pf.log"); }
inline std::string postfix_reuse_log() { return first_of("postfix-3.7-reuse.log", "interim-pf-reuse.log"); }
inline std::string sendmail_log() { return first_of("sendmail-8.17.log", ""); }

}  // namespace mtasts::reportd::fixtures
