// `--check-redis` of every program: connect as the program's own Redis user and try every
// command the program needs, harmlessly (see RedisProbe), so that a wrong password, a
// missing ACL permission or an unreachable server is found before mail depends on it.
// `--check` stays offline: a daemon must be able to start while Redis is down.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/daemon/config.hpp"
#include "common/fleet/redis.hpp"
#include "common/fleet/store.hpp"

namespace mtasts {

// What `program` does with Redis. A new program adds its line in redis_check.cpp.
const std::vector<RedisNeed>& redis_needs(Program program);

// The Redis commands `program` runs (upper case, besides AUTH, SELECT and PING): what its
// ACL user must be allowed, and all that it needs.
std::vector<std::string> redis_commands(Program program);

struct RedisCheckResult {
  bool ok = false;
  RedisTrouble trouble = RedisTrouble::other;  // when !ok
  std::string message;   // one line for the operator: what failed and what to do
  std::vector<std::string> checked;  // commands tried successfully, in order
  // Server settings that put the fleet's data at risk (programs that read INFO): not failures.
  std::vector<std::string> warnings;
};

// What is unsafe in a server's INFO text (the memory and persistence sections): a
// maxmemory-policy other than noeviction (Redis would evict entries, claims or the sets),
// and no persistence at all (a primary restarting empty wipes its replicas). Pure.
std::vector<std::string> server_warnings(std::string_view info);

// `extra`: probes a program adds of its own (mta-sts-reportd's sending claims, whose code
// lives in reportd/), run directly after the needs of redis_needs(program).
RedisCheckResult check_redis(const RedisOptions& opts, const StoreOptions& store, Program program,
                             const std::vector<RedisProbe>& extra = {});

// Runs check_redis for `cfg` (as loaded for `program`), prints the outcome (stdout on
// success, stderr on failure, prefixed with the program's name) and returns the exit status.
int run_check_redis(const Config& cfg, Program program, const std::vector<RedisProbe>& extra = {});

// At a daemon's start: check_redis, logged. Info when all is well; a warning when Redis is
// unreachable (not fatal: the daemon waits for it); an error for WRONGPASS and NOPERM, which
// no waiting cures.
void log_redis_check(const Config& cfg, Program program);

}  // namespace mtasts
