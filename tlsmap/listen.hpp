// mta-sts-tlsmap's listening sockets, from the `listen` option's syntax (checked by the
// configuration): "unix:/PATH" or "inet:HOST:PORT" (HOST numeric IPv4 or [IPv6]).
#pragma once

#include <string>

#include "common/daemon/config.hpp"
#include "tlsmap/server.hpp"

namespace mtasts::tlsmap {

// Binds and listens. A unix socket is born with `socket_mode` (no wider window), a stale one
// is replaced, a live one is an error, and it is given to the daemon's user. Throws
// std::runtime_error with the reason.
UniqueFd open_listener(const std::string& spec, unsigned socket_mode, const DaemonConfig& daemon);

// The port a listener was bound to (inet, for tests that listen on port 0); 0 for unix.
unsigned bound_port(int fd);

}  // namespace mtasts::tlsmap
