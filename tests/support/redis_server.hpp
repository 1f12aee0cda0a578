// Test support: a real redis-server on a private unix socket (no TCP, no persistence),
// restartable on the same socket to test reconnects.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "tests/support/process.hpp"

namespace mtasts::test {

class RedisServer {
 public:
  // Starts at once; throws if redis-server is not up within 5 s. `extra_conf` lines are
  // appended to its config (e.g. ACL users).
  explicit RedisServer(std::string extra_conf = "");
  ~RedisServer();
  std::string socket_path() const { return (dir_.path() / "redis.sock").string(); }
  std::string address() const { return "unix:" + socket_path(); }
  void kill();     // SIGKILL: as if it crashed
  void start();    // after kill(): same socket, empty data
  bool running();
  // Runs redis-cli against this server; returns its stdout (trimmed).
  std::string cli(const std::vector<std::string>& args);
  // redis-server's pid (-1 after kill()).
  pid_t pid() const { return proc_ ? proc_->pid() : -1; }
  // A numeric field of INFO, e.g. "connected_clients" or "total_connections_received"; -1
  // when absent. Its own redis-cli connection counts in the figures it reads.
  long long info(const std::string& field);

 private:
  TempDir dir_{"mtasts-redis"};
  std::string extra_conf_;
  std::unique_ptr<Process> proc_;
};

}  // namespace mtasts::test
