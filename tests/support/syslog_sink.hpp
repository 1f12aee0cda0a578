// Test support: a syslog daemon for one MTA in a test (there is none on the test machine).
// tests/support/syslog_sink.py receives syslog(3) datagrams on a unix socket of the test's own
// and appends them to a file in rsyslog's traditional format (Debian 12's /var/log/mail.log):
//   "Dec  8 00:31:02 mta sm-mta[4242]: 0B80V2Xo004242: to=<a@b>, ..., stat=Sent (...)"
// A program reaches it as /dev/log when run behind exec_prefix(): a mount namespace of the
// command's own with a private /dev (the usual device nodes bound in from the real one, and
// `log' a link to the socket), so the machine's /dev is never touched.
//
//   SyslogSink sink(dir / "syslog", "mta");
//   Sendmail sm(dir, {.command_prefix = sink.exec_prefix(netns.exec_prefix())});
//   ... sink.log() holds Sendmail's lines.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace mtasts::test {

class SyslogSink {
 public:
  // Starts the receiver on DIR/log.sock writing DIR/syslog.log; `host` is the host name put
  // in each line (rsyslog writes the short one). `dir` is created. Throws std::runtime_error
  // if the receiver does not come up.
  SyslogSink(const std::filesystem::path& dir, std::string host);
  ~SyslogSink();
  SyslogSink(const SyslogSink&) = delete;
  SyslogSink& operator=(const SyslogSink&) = delete;

  // `outer` (e.g. a NetNamespace's exec_prefix()) followed by the wrapper that gives the
  // command its own /dev with /dev/log = this sink. For command_prefix options.
  std::vector<std::string> exec_prefix(const std::vector<std::string>& outer = {}) const;
  std::filesystem::path socket_path() const { return dir_ / "log.sock"; }
  std::filesystem::path log_file() const { return dir_ / "syslog.log"; }
  std::string log() const { return read_file(log_file()); }
  // Waits until the log holds a line containing every one of `needles`; returns that line
  // ("" on timeout).
  std::string wait_line(const std::vector<std::string>& needles, std::chrono::milliseconds timeout) const;

 private:
  std::filesystem::path dir_;
  std::unique_ptr<Process> proc_;
};

}  // namespace mtasts::test
