// Socketmap request parsing; see request.hpp.
#include "tlsmap/request.hpp"

namespace mtasts::tlsmap {

const char* to_string(Dialect d) noexcept {
  switch (d) {
    case Dialect::postfix: return "postfix";
    case Dialect::postfix_tlsrpt: return "postfix-tlsrpt";
    case Dialect::sts: return "sts";
  }
  return "postfix";
}

std::optional<Dialect> dialect_from_name(std::string_view name) noexcept {
  if (name == "postfix") return Dialect::postfix;
  if (name == "postfix-tlsrpt") return Dialect::postfix_tlsrpt;
  if (name == "sts") return Dialect::sts;
  return std::nullopt;
}

Request parse_request(std::string_view payload) {
  Request r;
  const auto sp = payload.find(' ');
  if (sp == std::string_view::npos) {
    r.malformed = true;
    r.name = std::string(payload.substr(0, 64));
    return r;
  }
  const std::string_view name = payload.substr(0, sp);
  const std::string_view key = payload.substr(sp + 1);
  r.name = std::string(name.substr(0, 64));
  r.dialect = dialect_from_name(name);
  if (!r.dialect) return r;

  const auto not_domain = [&r](const char* why) {
    r.kind = KeyKind::not_domain;
    r.why = why;
    return r;
  };
  if (key.empty()) return not_domain("empty");
  if (key.front() == '[') return not_domain("address-literal");  // [host], [host]:port, [ip]
  if (key.front() == '.') return not_domain("parent-probe");
  // A colon never belongs to a host name: host:port from a transport, or an IPv6 address.
  if (key.find(':') != std::string_view::npos) return not_domain("port-or-ipv6");
  if (is_ip_address(key)) return not_domain("ip-address");
  DomainParse p = Domain::parse(key);
  if (!p.domain) return not_domain(p.address_literal ? "address-literal" : "invalid");
  r.kind = KeyKind::domain;
  r.domain = std::move(p.domain);
  return r;
}

}  // namespace mtasts::tlsmap
