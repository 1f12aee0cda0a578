// Test harness for mta-sts-tlsmap; see harness.hpp.
#include "tests/integration/tlsmap/harness.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace mtasts::test {

namespace fs = std::filesystem;

fs::path tlsmap_binary() {
  if (const char* b = std::getenv("MTASTS_TLSMAP_BIN")) return b;
  return MTASTS_TLSMAP_BIN;
}

TlsmapDaemon::TlsmapDaemon(const fs::path& dir, TlsmapOptions o) : dir_(dir) {
  if (o.listen.empty()) {
    port_ = free_tcp_port();
    listen_ = "inet:127.0.0.1:" + std::to_string(port_);
  } else {
    listen_ = o.listen;
    if (listen_.starts_with("inet:")) port_ = static_cast<unsigned>(std::stoul(listen_.substr(listen_.rfind(':') + 1)));
  }
  std::string c = "[redis]\naddress = " + o.redis_address + "\n";
  for (const auto& l : o.redis_lines) c += l + "\n";
  c += "\n[tlsmap]\nlisten = " + listen_ + "\nlog = stderr\n";
  // Test defaults, each replaced by a line of tlsmap_lines with the same key.
  const std::vector<std::string> defaults{"log-level = debug", "redis-budget = 500ms", "dns-timeout = 500ms"};
  const auto key = [](const std::string& l) { return l.substr(0, l.find(" =")); };
  for (const auto& d : defaults) {
    bool given = false;
    for (const auto& l : o.tlsmap_lines) given = given || key(l) == key(d);
    if (!given) c += d + "\n";
  }
  for (const auto& l : o.tlsmap_lines) c += l + "\n";
  write_file(config_path(), c);
  std::vector<std::string> argv = o.wrapper;
  argv.push_back(tlsmap_binary().string());
  argv.push_back("--config=" + config_path().string());
  for (const auto& a : o.extra_args) argv.push_back(a);
  proc_ = std::make_unique<Process>(argv, log_path());
  const bool up = wait_until([&] { return log().find("notice: started") != std::string::npos || !proc_->running(); },
                              std::chrono::seconds(30));
  if (!up || !proc_->running()) throw std::runtime_error("mta-sts-tlsmap did not start; log:\n" + log());
}

TlsmapDaemon::~TlsmapDaemon() {
  if (proc_) proc_->stop(std::chrono::seconds(20));
}

bool TlsmapDaemon::wait_log(const std::string& needle, std::chrono::milliseconds timeout) const {
  return wait_until([&] { return log().find(needle) != std::string::npos; }, timeout);
}

int TlsmapDaemon::stop(std::chrono::milliseconds grace) { return proc_->stop(grace); }

// ---- client -------------------------------------------------------------------------------

SocketmapClient::SocketmapClient(const std::string& address) {
  if (address.starts_with("unix:")) {
    const std::string path = address.substr(5);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      const int e = errno;
      ::close(fd_);
      throw std::runtime_error("connect " + path + ": " + std::strerror(e));
    }
    return;
  }
  if (!address.starts_with("inet:")) throw std::runtime_error("bad socketmap address " + address);
  const std::string hp = address.substr(5);
  const auto colon = hp.rfind(':');
  const std::string host = hp.substr(0, colon);
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoul(hp.substr(colon + 1))));
  inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int e = errno;
    ::close(fd_);
    throw std::runtime_error("connect " + hp + ": " + std::strerror(e));
  }
}

SocketmapClient::~SocketmapClient() {
  if (fd_ >= 0) ::close(fd_);
}

void SocketmapClient::send_raw(const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    off += static_cast<std::size_t>(n);
  }
}

void SocketmapClient::send(const std::string& request) {
  send_raw(std::to_string(request.size()) + ":" + request + ",");
}

std::string SocketmapClient::receive(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // A complete netstring in the buffer?
    const auto colon = buf_.find(':');
    if (colon != std::string::npos && colon > 0 && colon <= 7) {
      const std::size_t len = std::stoul(buf_.substr(0, colon));
      if (buf_.size() >= colon + 1 + len + 1) {
        std::string payload = buf_.substr(colon + 1, len);
        if (buf_[colon + 1 + len] != ',') return "bad reply: no comma";
        buf_.erase(0, colon + 2 + len);
        return payload;
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "timeout";
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return "timeout";
    char tmp[65536];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) {
      closed_ = true;
      return "";
    }
    buf_.append(tmp, static_cast<std::size_t>(n));
  }
}

bool SocketmapClient::wait_closed(std::chrono::milliseconds timeout) {
  const std::string r = receive(timeout);
  return r.empty() && closed_;
}

}  // namespace mtasts::test
