// MX host patterns (RFC 8461 sections 3.2 and 4.1): validation reuses the Domain rules so
// that a pattern and a looked-up name obey the same host-name syntax.
#include "common/mx_pattern.hpp"

#include "common/domain.hpp"

namespace mtasts {
namespace {

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// `a` is compared case-insensitively against `b`, which is already lowercase.
bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != b[i]) return false;
  }
  return true;
}

}  // namespace

std::optional<MxPattern> MxPattern::parse(std::string_view text, std::string* error, bool* trailing_dot) {
  auto fail = [&](std::string why) -> std::optional<MxPattern> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  if (trailing_dot) *trailing_dot = false;
  if (text.empty()) return fail("empty mx pattern");

  bool wildcard = false;
  std::string_view base = text;
  if (base.starts_with("*.")) {
    wildcard = true;
    base.remove_prefix(2);
  }
  if (!base.empty() && base.back() == '.') {
    base.remove_suffix(1);
    if (trailing_dot) *trailing_dot = true;
  }
  if (base.empty()) return fail("mx pattern has no host name");
  for (unsigned char c : base) {
    if (c >= 0x80) return fail("mx pattern must use A-labels, not U-labels");
    if (c == '*') return fail("'*' is only allowed as the whole left-most label (\"*.\")");
  }
  if (is_ip_address(base) || is_address_literal(base)) return fail("mx pattern is an IP address, not a host name");
  // Domain::parse would silently drop a second trailing dot; a pattern gets only one.
  if (base.back() == '.') return fail("mx pattern has an empty label");
  DomainParse d = Domain::parse(base);
  if (!d.domain) {
    if (d.address_literal) return fail("mx pattern is an IP address, not a host name");
    return fail("mx pattern is not a valid host name: " + d.error);
  }
  return MxPattern(wildcard, d.domain->str());
}

bool MxPattern::matches(std::string_view host) const noexcept {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (!wildcard_) return iequals(host, base_);
  // Exactly one extra label: "x.<base>" where x is non-empty and has no dot.
  if (host.size() < base_.size() + 2) return false;
  std::size_t cut = host.size() - base_.size();
  if (host[cut - 1] != '.') return false;
  std::string_view first = host.substr(0, cut - 1);
  if (first.find('.') != std::string_view::npos) return false;
  return iequals(host.substr(cut), base_);
}

std::string MxPattern::str() const { return wildcard_ ? "*." + base_ : base_; }

}  // namespace mtasts
