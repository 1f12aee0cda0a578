// Test support: SyslogSink; see syslog_sink.hpp.
#include "tests/support/syslog_sink.hpp"

#include <stdexcept>

namespace mtasts::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {
// with-dev-log.sh COMMAND...: COMMAND in a mount namespace of its own whose /dev is a tmpfs
// with the usual device nodes bound in from the real /dev (kept reachable under DIR/olddev)
// and /dev/log a link to the sink's socket.
const char* kWrapper = R"(#!/bin/sh
set -e
dir=$(dirname "$0")
exec unshare --mount --propagation private /bin/sh -c '
set -e
dir=$0
mount --rbind /dev "$dir/olddev"
mount -t tmpfs -o mode=0755 syslog-sink-dev /dev
for n in null zero full random urandom tty; do
  if [ -e "$dir/olddev/$n" ]; then : > "/dev/$n"; mount --bind "$dir/olddev/$n" "/dev/$n"; fi
done
mkdir /dev/pts /dev/shm
mount --bind "$dir/olddev/pts" /dev/pts 2>/dev/null || true
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
ln -s "$dir/log.sock" /dev/log
exec "$@"' "$dir" "$@"
)";
}  // namespace

SyslogSink::SyslogSink(const fs::path& dir, std::string host) : dir_(dir) {
  fs::create_directories(dir_ / "olddev");
  write_file(dir_ / "with-dev-log.sh", kWrapper);
  write_file(log_file(), "");
  proc_ = std::make_unique<Process>(
      std::vector<std::string>{"setpriv", "--pdeathsig", "TERM", "/usr/bin/python3",
                               (source_dir() / "tests/support/syslog_sink.py").string(), "--socket",
                               socket_path().string(), "--out", log_file().string(), "--host", std::move(host)},
      dir_ / "sink.out");
  if (!wait_until([&] { return !proc_->running() || read_file(dir_ / "sink.out").find("ready") != std::string::npos; },
                  15s) ||
      !proc_->running())
    throw std::runtime_error("syslog sink did not start: " + read_file(dir_ / "sink.out"));
}

SyslogSink::~SyslogSink() {
  if (proc_) proc_->stop(5s);
}

std::vector<std::string> SyslogSink::exec_prefix(const std::vector<std::string>& outer) const {
  std::vector<std::string> out = outer;
  out.insert(out.end(), {"/bin/sh", (dir_ / "with-dev-log.sh").string()});
  return out;
}

std::string SyslogSink::wait_line(const std::vector<std::string>& needles, std::chrono::milliseconds timeout) const {
  std::string found;
  wait_until(
      [&] {
        for (const auto& l : lines_of(log())) {
          bool all = true;
          for (const auto& n : needles) all = all && l.find(n) != std::string::npos;
          if (all) {
            found = l;
            return true;
          }
        }
        return false;
      },
      timeout);
  return found;
}

}  // namespace mtasts::test
