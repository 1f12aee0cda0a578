// Listening sockets; see listen.hpp.
#include "tlsmap/listen.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "common/daemon/daemon.hpp"

namespace mtasts::tlsmap {

namespace {

std::runtime_error sys_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

UniqueFd listen_unix(const std::string& path, unsigned mode, const DaemonConfig& daemon) {
  sockaddr_un a{};
  if (path.size() >= sizeof a.sun_path) throw std::runtime_error("unix socket path too long: " + path);
  daemon::clear_stale_socket(path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw sys_error("socket");
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  const mode_t old = ::umask(static_cast<mode_t>(~mode & 0777));
  const int r = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a);
  ::umask(old);
  if (r != 0) throw sys_error("bind " + path);
  if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) throw sys_error("chmod " + path);
  daemon::chown_socket(path, daemon);
  if (::listen(fd.get(), SOMAXCONN) != 0) throw sys_error("listen " + path);
  return fd;
}

UniqueFd listen_inet(const std::string& hostport) {
  const auto colon = hostport.rfind(':');
  std::string host = hostport.substr(0, colon);
  const int port = std::stoi(hostport.substr(colon + 1));
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (host.size() >= 2 && host.front() == '[') {
    host = host.substr(1, host.size() - 2);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.c_str(), &a.sin6_addr) != 1) throw std::runtime_error("bad IPv6 address " + host);
    std::memcpy(&ss, &a, sizeof a);
    len = sizeof a;
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) throw std::runtime_error("bad IPv4 address " + host);
    std::memcpy(&ss, &a, sizeof a);
    len = sizeof a;
  }
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw sys_error("socket");
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0) throw sys_error("bind " + hostport);
  if (::listen(fd.get(), SOMAXCONN) != 0) throw sys_error("listen " + hostport);
  return fd;
}

}  // namespace

UniqueFd open_listener(const std::string& spec, unsigned socket_mode, const DaemonConfig& daemon) {
  if (spec.starts_with("unix:")) return listen_unix(spec.substr(5), socket_mode, daemon);
  if (spec.starts_with("inet:")) return listen_inet(spec.substr(5));
  throw std::runtime_error("bad listen address " + spec);
}

unsigned bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

}  // namespace mtasts::tlsmap
