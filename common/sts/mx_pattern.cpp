// MX host patterns (RFC 8461 sections 3.2 and 4.1): validation reuses the Domain rules so
// that a pattern and a looked-up name obey the same host-name syntax.
#include "common/sts/mx_pattern.hpp"

#include "common/sts/domain.hpp"

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

// One LDH label (RFC 1123), not all digits (RFC 3696 section 2, as Domain::parse).
bool single_label(std::string_view l, std::string* why) {
  if (l.size() > 63) return *why = "label longer than 63 octets", false;
  bool digits = true;
  for (char c : l) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && c != '-') {
      *why = c == '_' ? "underscore is not allowed in a host name"
                      : "character not allowed in a host name (letters, digits, hyphen only)";
      return false;
    }
    digits = digits && c >= '0' && c <= '9';
  }
  if (l.front() == '-' || l.back() == '-') return *why = "label begins or ends with a hyphen", false;
  if (digits) return *why = "top-level label is all-numeric", false;
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
  bool ascii = true;
  for (unsigned char c : base) {
    if (c >= 0x80) ascii = false;
    if (c == '*') return fail("'*' is only allowed as the whole left-most label (\"*.\")");
  }
  if (!ascii) {
    // Two different mistakes, two different fixes for the domain owner.
    if (!is_utf8(base)) return fail("mx pattern is not valid UTF-8 text (a host name is ASCII)");
    return fail("mx pattern must use A-labels (\"xn--...\"), not U-labels");
  }
  if (is_ip_address(base) || is_address_literal(base)) return fail("mx pattern is an IP address, not a host name");
  // Domain::parse would silently drop a second trailing dot; a pattern gets only one.
  if (base.back() == '.') return fail("mx pattern has an empty label");
  // RFC 8461 section 3.2: mx = ["*."] Domain, and a single label is a Domain ("com",
  // "*.example"): parsers must accept syntactically valid policies.
  if (base.find('.') == std::string_view::npos) {
    std::string why;
    if (!single_label(base, &why)) return fail("mx pattern is not a valid host name: " + why);
    std::string label;
    for (char c : base) label += lower(c);
    return MxPattern(wildcard, std::move(label));
  }
  DomainParse d = Domain::parse(base);
  if (!d.domain) {
    if (d.address_literal) return fail("mx pattern is an IP address, not a host name");
    return fail("mx pattern is not a valid host name: " + d.error);
  }
  return MxPattern(wildcard, d.domain->str());
}

bool MxPattern::matches(std::string_view host) const noexcept {
  // RFC 6125 section 6.4.2: a host in Unicode form is compared in A-label form.
  std::string alabel;
  for (unsigned char c : host) {
    if (c < 0x80) continue;
    try {
      DomainParse d = Domain::parse(host);
      if (!d.domain) return false;
      alabel = d.domain->str();
      host = alabel;
    } catch (...) {  // memory exhaustion: no match, never a throw from here
      return false;
    }
    break;
  }
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
