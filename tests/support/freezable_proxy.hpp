// Test support: a unix-socket proxy in front of a Redis (or any stream server) whose open
// connections can be frozen: their bytes are no longer passed on either way, yet nothing is
// closed (no FIN, no RST), as when a host vanishes (crash, partition). Connections made after
// freeze() are passed on normally: the server is reachable again, as after a failover.
#pragma once

#include <atomic>
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

 private:
  struct Pair;
  void accept_loop();
  void serve(std::shared_ptr<Pair> p);
  void pump(Pair& p);

  std::filesystem::path path_, target_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::shared_ptr<Pair>> pairs_;
  std::vector<std::thread> threads_;
  std::thread accepter_;
};

}  // namespace mtasts::test
