// Test harness for mta-sts-milter: runs the real binary with a generated configuration
// against a RedisServer, fills the cache the way a fetcher would (PolicyStore::put), and runs
// miltertest scripts. Shared by the integration and end-to-end tests.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/sts/cache_entry.hpp"
#include "common/fleet/redis.hpp"
#include "common/fleet/store.hpp"
#include "tests/support/process.hpp"

namespace mtasts::test {

std::filesystem::path milter_binary();
std::filesystem::path miltertest_dir();

struct MilterOptions {
  std::string redis_address;                 // unix:/path or host:port
  std::vector<std::string> milter_lines;     // extra "key = value" lines for [milter]
  std::vector<std::string> redis_lines;      // extra lines for [redis]
  std::string socket;                        // default: unix:<dir>/milter.sock
  bool valgrind = false;                     // run under valgrind (leak check)
  std::vector<std::string> extra_args;       // command-line options
};

class MilterDaemon {
 public:
  // Writes <dir>/milter.conf and starts the milter; waits until it logs "started".
  MilterDaemon(const std::filesystem::path& dir, MilterOptions o);
  ~MilterDaemon();
  MilterDaemon(const MilterDaemon&) = delete;
  MilterDaemon& operator=(const MilterDaemon&) = delete;

  const std::string& socket() const noexcept { return socket_; }
  std::filesystem::path config_path() const { return dir_ / "milter.conf"; }
  std::filesystem::path log_path() const { return dir_ / "milter.log"; }
  std::filesystem::path valgrind_log() const { return dir_ / "valgrind.log"; }
  std::string log() const { return read_file(log_path()); }
  bool wait_log(const std::string& needle, std::chrono::milliseconds timeout) const;
  Process& process() { return *proc_; }
  // The lines of the log where a sanitizer (ASan, LSan, UBSan build) reported something; ""
  // when clean. Meaningful after stop(): leaks are reported at exit.
  std::string sanitizer_report() const;
  // SIGTERM and wait; returns the wait status.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(20));

 private:
  std::filesystem::path dir_;
  std::string socket_;
  std::unique_ptr<Process> proc_;
};

// Writes the configuration file only (for --check tests and custom starts).
std::string milter_config(const MilterOptions& o, const std::string& socket);

// Runs `script` (a file in miltertest_dir()) against the socket with extra -D definitions.
RunResult run_miltertest(const std::string& script, const std::string& socket,
                         const std::vector<std::string>& defines = {});

// The shared cache as the fetchers fill it.
class CacheFiller {
 public:
  explicit CacheFiller(const std::string& redis_address, StoreOptions opts = {});
  void put(const std::string& domain, const CacheEntry& e, bool announce = false);
  bool miss_signalled(const std::string& domain);
  // The four kinds of known domain the tests use: enforce.example, testing.example,
  // none.example (mode none) and nopolicy.example (negative entry).
  void fill_standard();
  PolicyStore& store() { return store_; }

 private:
  Pool pool_;
  PolicyStore store_;
};

CacheEntry make_policy(Mode mode, const std::string& id, const std::vector<std::string>& mx,
                       std::chrono::seconds life = std::chrono::seconds(86400));
CacheEntry make_negative(std::chrono::seconds life = std::chrono::seconds(3600));

// The header values fill_standard() produces.
inline const char* kEnforceField =
    "enforce.example; mode=enforce; id=20260424T120000Z; mx=mail.enforce.example,*.mx.enforce.example";
inline const char* kTestingField = "testing.example; mode=testing; id=testid1; mx=mx.testing.example";

}  // namespace mtasts::test
