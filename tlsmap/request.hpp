// One socketmap request, "NAME KEY", taken apart: the dialect chosen by NAME and what the KEY
// is. Only a policy domain (normalised by Domain: lowercase, A-labels, no trailing dot) is
// looked up; everything else Postfix or Sendmail may send as a next-hop is answered NOTFOUND
// without touching Redis and without signalling a miss: "[host]", "[host]:port",
// "host:port", IP addresses, Postfix's parent-domain probes (".example.com") and text that is
// not a host name.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/sts/domain.hpp"

namespace mtasts::tlsmap {

enum class Dialect {
  postfix,         // Postfix 3.4 to 3.9: policy attributes only
  postfix_tlsrpt,  // Postfix 3.10+: plus the TLSRPT attributes
  sts,             // Sendmail FEATURE(`sts')
};
const char* to_string(Dialect d) noexcept;
std::optional<Dialect> dialect_from_name(std::string_view name) noexcept;

enum class KeyKind {
  domain,      // a policy domain: look it up
  not_domain,  // a next-hop that is not a policy domain: NOTFOUND, no lookup
};

struct Request {
  std::optional<Dialect> dialect;  // nullopt: unknown NAME (reply PERM)
  std::string name;                // NAME as sent (for the log)
  KeyKind kind = KeyKind::not_domain;
  std::optional<Domain> domain;    // set for KeyKind::domain
  std::string why;                 // for not_domain: "address-literal", "port", "parent-probe", ...
  bool malformed = false;          // no space between NAME and KEY: PERM
};

Request parse_request(std::string_view payload);

}  // namespace mtasts::tlsmap
