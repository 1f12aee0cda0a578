// Test support: child processes and scratch directories for integration tests. Servers are
// real programs (redis-server, dnsmasq, nginx, postfix, our daemons) started on loopback or
// unix sockets inside a private directory; everything is torn down by destructors.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/types.h>
#include <time.h>
#include <vector>

namespace mtasts::test {

// A fresh directory under $TMPDIR (or /tmp), removed recursively on destruction unless
// MTASTS_KEEP_TEST_DIRS is set in the environment.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "mtasts");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
 private:
  std::filesystem::path path_;
};

void write_file(const std::filesystem::path& p, const std::string& content);
std::string read_file(const std::filesystem::path& p);
// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read, released).
unsigned free_tcp_port();
// The lines of a text, without their newlines.
std::vector<std::string> lines_of(const std::string& text);

// A child process. stdout and stderr go to `log_file` (appended) when given, else /dev/null.
// The destructor sends SIGTERM, waits up to 5 s, then SIGKILL.
class Process {
 public:
  Process(std::vector<std::string> argv, std::optional<std::filesystem::path> log_file = {},
          std::vector<std::string> extra_env = {});
  ~Process();
  Process(Process&& o) noexcept;
  Process& operator=(Process&&) = delete;
  Process(const Process&) = delete;

  pid_t pid() const noexcept { return pid_; }
  bool running();                       // not yet exited
  void signal(int sig);                 // no-op once exited
  // Waits for exit up to `timeout`; returns the wait status (as from waitpid) or nullopt.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // SIGTERM, wait, then SIGKILL. Returns the wait status.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  void kill9();

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Runs a command to completion (stdin from /dev/null), capturing stdout and stderr.
struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  std::string out;
  std::string err;
};
RunResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = std::chrono::seconds(60),
              const std::string& stdin_data = "");

// Polls `ready` every 10 ms until true or timeout. Returns whether it became true.
template <class F>
bool wait_until(F ready, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (ready()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    struct timespec ts{0, 10'000'000};
    nanosleep(&ts, nullptr);
  }
}

// The project's build and source directories, from the environment (set by CTest) or the
// compile-time defaults.
std::filesystem::path build_dir();
std::filesystem::path source_dir();

}  // namespace mtasts::test
