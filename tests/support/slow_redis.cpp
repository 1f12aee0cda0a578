#include "tests/support/slow_redis.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

namespace mtasts::test {

SlowRedis::SlowRedis(const std::filesystem::path& path, std::chrono::milliseconds delay, Mode mode)
    : path_(path), delay_(delay), mode_(mode) {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd_, 16) != 0) {
    ::close(fd_);
    throw std::runtime_error("SlowRedis: cannot listen on " + path.string());
  }
  accepter_ = std::thread([this] { accept_loop(); });
}

SlowRedis::~SlowRedis() {
  stop_ = true;
  ::shutdown(fd_, SHUT_RDWR);
  ::close(fd_);
  accepter_.join();
  for (auto& t : conns_) t.join();
}

void SlowRedis::accept_loop() {
  for (;;) {
    const int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0 || stop_) {
      if (c >= 0) ::close(c);
      return;
    }
    conns_.emplace_back([this, c] { serve(c); });
  }
}

void SlowRedis::serve(int c) {
  std::string buf;
  char tmp[4096];
  while (!stop_) {
    pollfd p{c, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = ::read(c, tmp, sizeof tmp);
    if (n <= 0) break;
    buf.append(tmp, static_cast<std::size_t>(n));
    std::string reply;
    for (;;) {
      std::size_t pos = 0;
      std::vector<std::string> argv;
      if (!parse(buf, &pos, &argv)) break;
      buf.erase(0, pos);
      const std::string cmd = argv.empty() ? "" : argv[0];
      if (cmd == "SUBSCRIBE" && argv.size() == 2) {
        reply += "*3\r\n$9\r\nsubscribe\r\n$" + std::to_string(argv[1].size()) + "\r\n" + argv[1] + "\r\n:1\r\n";
      } else if (mode_ == Mode::loading && cmd != "AUTH" && cmd != "SELECT") {  // as Redis: PING too
        reply += "-LOADING Redis is loading the dataset in memory\r\n";
      } else if (cmd == "MGET") {
        reply += "*" + std::to_string(argv.size() - 1) + "\r\n";
        for (std::size_t i = 1; i < argv.size(); ++i) reply += "$-1\r\n";
      } else if (cmd == "AUTH" || cmd == "SELECT") {
        reply += "+OK\r\n";
      } else {
        reply += cmd == "GET" ? "$-1\r\n" : cmd == "PING" ? "+PONG\r\n" : ":1\r\n";
      }
    }
    if (reply.empty()) continue;
    std::this_thread::sleep_for(delay_);
    if (::write(c, reply.data(), reply.size()) < 0) break;
  }
  ::close(c);
}

bool SlowRedis::parse(const std::string& b, std::size_t* pos, std::vector<std::string>* argv) {
  auto line = [&](std::size_t at, std::string* out) -> std::size_t {
    const std::size_t e = b.find("\r\n", at);
    if (e == std::string::npos) return std::string::npos;
    *out = b.substr(at, e - at);
    return e + 2;
  };
  std::string l;
  std::size_t at = line(0, &l);
  if (at == std::string::npos || l.empty() || l[0] != '*') return false;
  const long count = std::stol(l.substr(1));
  for (long i = 0; i < count; ++i) {
    at = line(at, &l);
    if (at == std::string::npos || l.empty() || l[0] != '$') return false;
    const auto len = static_cast<std::size_t>(std::stol(l.substr(1)));
    if (b.size() < at + len + 2) return false;
    argv->push_back(b.substr(at, len));
    at += len + 2;
  }
  *pos = at;
  return true;
}

}  // namespace mtasts::test
