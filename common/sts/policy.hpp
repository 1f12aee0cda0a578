// The policy file model and parser (RFC 8461 sections 3.2 and 3.3), with the project's
// decisions from RFC-NOTES.md: max_age clamped to 31557600, blank lines tolerated, trailing
// dots on mx removed, bad mx patterns dropped (the policy stays valid while one good pattern
// remains, unless mode is none). Every tolerated deviation is a warning.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/sts/mx_pattern.hpp"

namespace mtasts {

enum class Mode { enforce, testing, none };

const char* to_string(Mode m) noexcept;
std::optional<Mode> mode_from_string(std::string_view s) noexcept;

inline constexpr std::chrono::seconds kMaxAgeLimit{31557600};
inline constexpr std::size_t kMaxPolicyBytes = 65536;

struct Policy {
  Mode mode = Mode::none;
  std::chrono::seconds max_age{0};  // effective (clamped) value
  std::vector<MxPattern> mx;        // valid patterns only, in file order

  // True when `host` matches one of the mx patterns.
  bool mx_matches(std::string_view host) const noexcept;

  friend bool operator==(const Policy&, const Policy&) = default;
};

struct Diagnostic {
  std::size_t line = 0;  // 1-based line in the file; 0 when it concerns the whole file
  std::string message;
  friend bool operator==(const Diagnostic&, const Diagnostic&) = default;
};

struct PolicyParseResult {
  std::optional<Policy> policy;  // set only when errors is empty
  std::vector<Diagnostic> errors;
  std::vector<Diagnostic> warnings;
};

PolicyParseResult parse_policy(std::string_view text);

// "mode=enforce; mx=a,b" style one-line summary, used in logs.
std::string summarize(const Policy& p);

}  // namespace mtasts
