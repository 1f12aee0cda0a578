// The real MTA logs the collector tests read: the world's fixtures (tests/fixtures/reportd,
// written by tests/e2e/deliver/fixtures_main.cpp from real Postfix 3.7 and Sendmail 8.17).
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

inline std::string fixture(const std::string& name) { return read(std::string(MTASTS_FIXTURES) + "/" + name); }

inline std::string postfix_log() { return fixture("postfix-3.7.log"); }
inline std::string postfix_reuse_log() { return fixture("postfix-3.7-reuse.log"); }
inline std::string sendmail_log() { return fixture("sendmail-8.17.log"); }

}  // namespace mtasts::reportd::fixtures
