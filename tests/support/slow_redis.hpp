// Test support: a Redis that answers, but slowly. Every batch of commands is answered `delay`
// after it arrives (GET, MGET: not found, PING: PONG, AUTH, SELECT: OK, SUBSCRIBE: confirmed,
// anything else: 1), one thread per connection, on a unix socket. As `loading`, it is a Redis
// still loading its data set (after a restart or a full resync): as there, AUTH, SELECT and
// SUBSCRIBE work and every other command (PING included) answers -LOADING. Each step of a lookup then stays under its own timeout while the lookup as
// a whole (GET, then the miss signal) would not, unless one deadline covers all of it.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace mtasts::test {

class SlowRedis {
 public:
  enum class Mode { slow, loading };
  SlowRedis(const std::filesystem::path& path, std::chrono::milliseconds delay, Mode mode = Mode::slow);
  ~SlowRedis();
  SlowRedis(const SlowRedis&) = delete;
  SlowRedis& operator=(const SlowRedis&) = delete;
  std::string address() const { return "unix:" + path_.string(); }

 private:
  void accept_loop();
  void serve(int c);
  // Minimal RESP: one complete command ("*N" then N bulk strings) from the front of `b`.
  static bool parse(const std::string& b, std::size_t* pos, std::vector<std::string>* argv);

  std::filesystem::path path_;
  std::chrono::milliseconds delay_;
  Mode mode_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread accepter_;
  std::vector<std::thread> conns_;
};

}  // namespace mtasts::test
