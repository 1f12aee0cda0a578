// MX host patterns of a policy and their matching (RFC 8461 sections 3.2 and 4.1).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mtasts {

class MxPattern {
 public:
  // Accepts "host.name" or "*.host.name", case-insensitive, a trailing dot tolerated
  // (`*trailing_dot` set when one was removed). U-labels are not allowed in a pattern
  // (policy files carry A-labels). On failure returns nullopt and sets *error.
  static std::optional<MxPattern> parse(std::string_view text, std::string* error,
                                        bool* trailing_dot = nullptr);

  // Case-insensitive; trailing dots on `host` ignored. "*.example.com" matches exactly one
  // extra left-most label.
  bool matches(std::string_view host) const noexcept;

  bool wildcard() const noexcept { return wildcard_; }
  // Canonical text: lowercase, no trailing dot, "*." prefix for wildcards.
  std::string str() const;

  friend bool operator==(const MxPattern&, const MxPattern&) = default;

 private:
  MxPattern(bool wildcard, std::string base) : wildcard_(wildcard), base_(std::move(base)) {}
  bool wildcard_ = false;
  std::string base_;  // lowercase, without "*." and trailing dot
};

}  // namespace mtasts
