// Test harness for mta-sts-tlsmap: runs the real binary with a generated configuration, and a
// socketmap client of our own (netstrings over TCP or a unix socket). Shared by the
// integration tests, the end-to-end delivery tests and the benchmark.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace mtasts::test {

std::filesystem::path tlsmap_binary();

struct TlsmapOptions {
  std::string redis_address;               // unix:/path or host:port
  std::vector<std::string> tlsmap_lines;   // extra "key = value" lines for [tlsmap]
  std::vector<std::string> redis_lines;    // extra lines for [redis]
  std::string listen;                      // default: inet:127.0.0.1:<free port>
  std::vector<std::string> extra_args;     // command-line options
  std::vector<std::string> wrapper;        // e.g. {"ip", "netns", "exec", "NS"} or valgrind
};

class TlsmapDaemon {
 public:
  // Writes <dir>/tlsmap.conf and starts mta-sts-tlsmap; waits until it logs "started".
  TlsmapDaemon(const std::filesystem::path& dir, TlsmapOptions o);
  ~TlsmapDaemon();
  TlsmapDaemon(const TlsmapDaemon&) = delete;
  TlsmapDaemon& operator=(const TlsmapDaemon&) = delete;

  const std::string& listen() const noexcept { return listen_; }  // as configured
  unsigned port() const noexcept { return port_; }                // 0 for a unix socket
  // "inet:127.0.0.1:PORT" or "unix:/path": the Postfix socketmap address after "socketmap:".
  std::string postfix_address() const { return listen_; }
  std::filesystem::path config_path() const { return dir_ / "tlsmap.conf"; }
  std::filesystem::path log_path() const { return dir_ / "tlsmap.log"; }
  std::string log() const { return read_file(log_path()); }
  bool wait_log(const std::string& needle, std::chrono::milliseconds timeout) const;
  Process& process() { return *proc_; }
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(20));

 private:
  std::filesystem::path dir_;
  std::string listen_;
  unsigned port_ = 0;
  std::unique_ptr<Process> proc_;
};

// A blocking socketmap client.
class SocketmapClient {
 public:
  // "inet:HOST:PORT" or "unix:/path". Throws std::runtime_error when it cannot connect.
  explicit SocketmapClient(const std::string& address);
  ~SocketmapClient();
  SocketmapClient(const SocketmapClient&) = delete;
  SocketmapClient& operator=(const SocketmapClient&) = delete;

  void send_raw(const std::string& bytes);
  void send(const std::string& request);  // as a netstring
  // The next reply; "" with closed() true when the server closed the connection, "timeout".
  std::string receive(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  std::string query(const std::string& request) {
    send(request);
    return receive();
  }
  bool closed() const noexcept { return closed_; }
  // Waits for the server to close the connection (true) or for the timeout (false).
  bool wait_closed(std::chrono::milliseconds timeout);
  int fd() const noexcept { return fd_; }

 private:
  int fd_ = -1;
  std::string buf_;
  bool closed_ = false;
};

}  // namespace mtasts::test
