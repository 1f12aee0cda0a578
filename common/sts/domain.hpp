// A host/domain name as the rest of the code sees it: normalized once, at the edge.
// Promise: a Domain is lowercase, has no trailing dot, is in A-label form (IDNA2008 via
// libidn2), has 1..63-octet LDH labels, at least two labels, and is at most 253 octets.
// Address literals ("[192.0.2.1]", "[IPv6:...]") and bare IP addresses are recognised and
// rejected as names: they never have an MTA-STS policy.
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace mtasts {

struct DomainParse;

class Domain {
 public:
  // Parses untrusted text (may contain U-labels, upper case, a trailing dot).
  static DomainParse parse(std::string_view text);

  const std::string& str() const noexcept { return name_; }
  // True when this name is `other` or below it ("a.b.example.com" is below "example.com").
  bool is_subdomain_of(const Domain& other) const noexcept;

  friend bool operator==(const Domain&, const Domain&) = default;
  friend auto operator<=>(const Domain&, const Domain&) = default;

 private:
  explicit Domain(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

// Defined after Domain: std::optional needs the complete type.
struct DomainParse {
  std::optional<Domain> domain;  // set on success
  std::string error;             // set on failure: why the text is not a host name
  bool address_literal = false;  // the text was "[...]" (or a bare IP): recognised, no policy
};

// "[...]" in the sense of RFC 5321 section 4.1.3 (no validation of the inside needed).
bool is_address_literal(std::string_view text) noexcept;
// A dotted-quad IPv4 address or an IPv6 address in text form.
bool is_ip_address(std::string_view text) noexcept;
// Well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or values past U+10FFFF), so
// that a diagnostic can tell "not UTF-8 at all" from "Unicode where ASCII is required".
bool is_utf8(std::string_view text) noexcept;

}  // namespace mtasts

template <>
struct std::hash<mtasts::Domain> {
  size_t operator()(const mtasts::Domain& d) const noexcept { return std::hash<std::string>{}(d.str()); }
};
