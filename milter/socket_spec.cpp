// Milter socket option parsing; see socket_spec.hpp.
#include "milter/socket_spec.hpp"

#include <charconv>

namespace mtasts::milter {

std::string SocketSpec::libmilter() const {
  switch (kind) {
    case Kind::unix_path: return "unix:" + path;
    case Kind::inet: return "inet:" + std::to_string(port) + (host.empty() ? "" : "@" + host);
    case Kind::inet6: return "inet6:" + std::to_string(port) + (host.empty() ? "" : "@" + host);
  }
  return {};
}

SocketSpec parse_socket_spec(std::string_view text) {
  SocketSpec s;
  const auto colon = text.find(':');
  std::string_view proto = colon == std::string_view::npos ? std::string_view{} : text.substr(0, colon);
  std::string_view rest = colon == std::string_view::npos ? text : text.substr(colon + 1);
  if (colon == std::string_view::npos || proto == "unix" || proto == "local") {
    s.kind = SocketSpec::Kind::unix_path;
    s.path = std::string(rest);
    if (s.path.empty() || s.path.front() != '/') s.error = "unix socket path must be absolute";
    else if (s.path.size() > 107) s.error = "unix socket path longer than 107 bytes";
    return s;
  }
  if (proto != "inet" && proto != "inet6") {
    s.error = "unknown socket type '" + std::string(proto) + "' (unix:, inet: or inet6:)";
    return s;
  }
  s.kind = proto == "inet" ? SocketSpec::Kind::inet : SocketSpec::Kind::inet6;
  const auto at = rest.find('@');
  const std::string_view port = rest.substr(0, at);
  if (at != std::string_view::npos) {
    s.host = std::string(rest.substr(at + 1));
    if (s.host.empty()) s.error = "empty host after '@'";
  }
  unsigned v = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || v == 0 || v > 65535)
    s.error = "port must be 1..65535";
  s.port = v;
  return s;
}

}  // namespace mtasts::milter
