// Test support: a unix-socket proxy in front of a Redis (or any stream server) whose open
// connections can be frozen: their bytes are no longer passed on either way, yet nothing is
// closed (no FIN, no RST), as when a host vanishes (crash, partition). Connections made after
// freeze() are passed on normally: the server is reachable again, as after a failover.
// It can also rewrite what the server sends (rewrite_replies), e.g. shift_redis_time: a
// Redis whose clock is off, where libfaketime would crash redis-server.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mtasts::test {

class FreezableProxy {
 public:
  // Listens on `path`, connects each client to the unix socket `target`.
  FreezableProxy(std::filesystem::path path, std::filesystem::path target);
  ~FreezableProxy();
  FreezableProxy(const FreezableProxy&) = delete;
  FreezableProxy& operator=(const FreezableProxy&) = delete;
  std::string address() const { return "unix:" + path_.string(); }
  void freeze();  // every connection open now
  // Bytes from the server pass through `f` (one read's worth per call) before the client
  // gets them. Set it before the first client connects.
  using Rewrite = std::function<std::string(std::string_view)>;
  void rewrite_replies(Rewrite f) { rewrite_ = std::move(f); }

 private:
  struct Pair;
  void accept_loop();
  void serve(std::shared_ptr<Pair> p);
  void pump(Pair& p);

  std::filesystem::path path_, target_;
  Rewrite rewrite_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::shared_ptr<Pair>> pairs_;
  std::vector<std::thread> threads_;
  std::thread accepter_;
};

// A Rewrite that moves the seconds of every Redis TIME reply (an array of two bulk strings,
// ten digits of seconds then microseconds) by `shift`: the server's clock seen that far off.
FreezableProxy::Rewrite shift_redis_time(std::chrono::seconds shift);

}  // namespace mtasts::test
