// The milter socket option in libmilter's syntax, checked before libmilter sees it so that a
// typo is a configuration error (with --check) instead of a failure at start-up:
//   unix:/path | local:/path | /path       a unix-domain socket (absolute path)
//   inet:PORT | inet:PORT@HOST             IPv4, HOST a name or dotted quad (default: any)
//   inet6:PORT | inet6:PORT@HOST           IPv6
#pragma once

#include <string>
#include <string_view>

namespace mtasts::milter {

struct SocketSpec {
  enum class Kind { unix_path, inet, inet6 } kind = Kind::unix_path;
  std::string path;     // unix
  unsigned port = 0;    // inet, inet6
  std::string host;     // inet, inet6 ("" = any)
  std::string error;    // set when the text is not valid
  bool ok() const noexcept { return error.empty(); }
  // The text libmilter expects (smfi_setconn).
  std::string libmilter() const;
};

SocketSpec parse_socket_spec(std::string_view text);

}  // namespace mtasts::milter
