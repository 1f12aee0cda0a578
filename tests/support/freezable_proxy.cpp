// Test support: see freezable_proxy.hpp.
#include "tests/support/freezable_proxy.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <regex>
#include <stdexcept>

namespace mtasts::test {

struct FreezableProxy::Pair {
  int client = -1;
  int server = -1;
  std::atomic<bool> frozen{false};
  std::atomic<bool> halted{false};  // the pump saw `frozen`, or ended
  ~Pair() {
    if (client >= 0) ::close(client);
    if (server >= 0) ::close(server);
  }
};

namespace {
int unix_socket(const std::filesystem::path& p, bool listen) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, p.c_str(), sizeof a.sun_path - 1);
  const int rc = listen ? ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a)
                        : ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  if (rc != 0 || (listen && ::listen(fd, 64) != 0)) {
    ::close(fd);
    return -1;
  }
  return fd;
}
}  // namespace

FreezableProxy::FreezableProxy(std::filesystem::path path, std::filesystem::path target)
    : path_(std::move(path)), target_(std::move(target)) {
  std::filesystem::remove(path_);
  fd_ = unix_socket(path_, true);
  if (fd_ < 0) throw std::runtime_error("proxy: cannot listen on " + path_.string());
  accepter_ = std::thread([this] { accept_loop(); });
}

FreezableProxy::~FreezableProxy() {
  stop_ = true;
  ::shutdown(fd_, SHUT_RDWR);
  accepter_.join();
  ::close(fd_);
  for (auto& t : threads_) t.join();
}

void FreezableProxy::freeze() {
  std::vector<std::shared_ptr<Pair>> pairs;
  {
    std::lock_guard lk(mu_);
    pairs = pairs_;
  }
  for (auto& p : pairs) p->frozen = true;
  // Nothing is passed on from here: every pump has seen it.
  for (auto& p : pairs)
    while (!p->halted) ::usleep(1000);
}

void FreezableProxy::accept_loop() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    auto pair = std::make_shared<Pair>();
    pair->client = c;
    pair->server = unix_socket(target_, false);
    std::lock_guard lk(mu_);
    pairs_.push_back(pair);
    threads_.emplace_back([this, pair] { serve(pair); });
  }
}

void FreezableProxy::serve(std::shared_ptr<Pair> p) {
  pump(*p);
  p->halted = true;
  // One side closed: the other one is closed too.
  ::shutdown(p->client, SHUT_RDWR);
  if (p->server >= 0) ::shutdown(p->server, SHUT_RDWR);
}

void FreezableProxy::pump(Pair& pr) {
  Pair* p = &pr;
  if (p->server < 0) return;
  if (p->frozen) p->halted = true;
  char buf[16384];
  while (!stop_) {
    if (p->frozen) {  // hold everything, close nothing
      p->halted = true;
      ::usleep(50'000);
      continue;
    }
    pollfd fds[2] = {{p->client, POLLIN, 0}, {p->server, POLLIN, 0}};
    if (::poll(fds, 2, 50) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) return;
      const int to = i == 0 ? p->server : p->client;
      std::string rewritten;
      const char* out = buf;
      std::size_t len = static_cast<std::size_t>(n);
      if (i == 1 && rewrite_) {
        rewritten = rewrite_(std::string_view(buf, len));
        out = rewritten.data();
        len = rewritten.size();
      }
      for (std::size_t off = 0; off < len;) {
        const ssize_t w = ::send(to, out + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) return;
        off += static_cast<std::size_t>(w);
      }
    }
  }
}

FreezableProxy::Rewrite shift_redis_time(std::chrono::seconds shift) {
  return [shift](std::string_view in) {
    static const std::regex time_reply(R"(\*2\r\n\$10\r\n([0-9]{10})\r\n(\$[0-9]+\r\n[0-9]+\r\n))");
    std::string out;
    std::string rest(in);
    std::smatch m;
    while (std::regex_search(rest, m, time_reply)) {
      out += m.prefix().str();
      const long long secs = std::stoll(m[1].str()) + shift.count();
      out += "*2\r\n$10\r\n" + std::to_string(secs) + "\r\n" + m[2].str();
      rest = m.suffix().str();
    }
    return out + rest;
  };
}

}  // namespace mtasts::test
