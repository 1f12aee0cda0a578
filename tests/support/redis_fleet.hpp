// Test support: a replicated Redis as a fleet runs it, all real and on 127.0.0.1 TCP ports: a
// primary, one replica (or more) and three redis-sentinel processes (quorum 2, down-after 1 s,
// failover-timeout 5 s), each with its own writable config file (Sentinel rewrites it).
// As the README tells an operator: both Redis servers load the shipped etc/redis-acl.conf
// (default user off), replicate as its replication user, and the sentinels log in as its
// sentinel user; every password is password_of(user).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace mtasts::test {

class RedisFleet {
 public:
  static constexpr const char* kMasterName = "mtasts";
  // Starts everything and returns once the replica is in sync and every sentinel knows the
  // replica and the two other sentinels (so that a failover can be agreed). Throws on failure.
  // `server_lines`: further redis.conf lines for every Redis server (e.g. min-replicas-to-write).
  explicit RedisFleet(int replicas = 1, const std::string& server_lines = "");
  ~RedisFleet();
  RedisFleet(const RedisFleet&) = delete;
  RedisFleet& operator=(const RedisFleet&) = delete;

  int primary_port() const noexcept { return ports_[0]; }
  int replica_port() const noexcept { return ports_[1]; }
  std::vector<int> replica_ports() const;  // every replica the fleet started with
  std::vector<std::string> sentinel_addresses() const;
  // "[redis]" lines for our programs: the three sentinels and the master name, and when
  // `acl_user` is given, that user of the shipped ACL file with its password.
  std::vector<std::string> redis_lines(const std::string& acl_user = "") const;
  // The password the fleet gave a user of the shipped ACL file ("CHANGE-ME-milter" there).
  static std::string password_of(const std::string& acl_user);

  // redis-cli against a server by port, as the ACL file's admin user on the Redis servers;
  // stdout trimmed.
  std::string cli(int port, const std::vector<std::string>& args);
  // What sentinel `i` says the primary is ("127.0.0.1:PORT", or "" when it does not answer).
  std::string master_per_sentinel(int i);
  void kill_primary();  // SIGKILL, as a crash
  // SIGSTOP / SIGCONT the first primary: cut off from everyone (sentinels, replicas, clients)
  // while it keeps its data and its own idea that it is the primary; resumed, it meets a
  // fleet that may have promoted another server (a partition and its healing).
  void pause_primary();
  void resume_primary();
  // Waits until every sentinel names the former replica as the primary and it takes writes.
  bool wait_failover(std::chrono::milliseconds timeout);
  // The same for any of the replicas: the port of the promoted one, or 0 on timeout.
  int wait_promoted(std::chrono::milliseconds timeout);

 private:
  TempDir dir_{"mtasts-redis-fleet"};
  std::vector<int> ports_;  // primary, replica, sentinel 0..2, further replicas
  std::unique_ptr<Process> primary_;
  std::vector<std::unique_ptr<Process>> replicas_;
  std::vector<std::unique_ptr<Process>> sentinels_;
};

}  // namespace mtasts::test
