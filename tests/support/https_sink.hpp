// Test support: an HTTPS endpoint that keeps every POST it receives, e.g. the `https:' rua of a
// TLS-RPT record (RFC 8460 section 5.2). A real HTTPS server (tests/support/https_sink.py:
// python3's http.server with ssl) on IP:PORT with a test-CA certificate for its host name;
// each POST (or PUT) is stored as a file (request line, header lines, blank line, body).
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {

class HttpsSink {
 public:
  struct Request {
    std::string method;  // "POST"
    std::string target;  // "/tlsrpt"
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;    // as received (e.g. gzip data)
    std::filesystem::path file;  // where it is stored (validate_tlsrpt.py reads it as is)
  };

  // Starts the server for `host` on ip:port with a valid test-CA certificate for `host`; waits
  // until it listens (throws std::runtime_error with its log otherwise). `dir` is created.
  HttpsSink(std::string host, std::string ip, TestCa& ca, std::filesystem::path dir, unsigned port = 443);
  ~HttpsSink();
  HttpsSink(const HttpsSink&) = delete;
  HttpsSink& operator=(const HttpsSink&) = delete;

  const std::string& host() const noexcept { return host_; }
  const std::string& ip() const noexcept { return ip_; }
  unsigned port() const noexcept { return port_; }
  // "https://<host>[:port]<path>"
  std::string url(const std::string& path) const;
  // The status of every reply from now on (default 200; >= 300: the request is not stored).
  void set_status(int code);

  // Every stored request so far, oldest first.
  std::vector<Request> requests() const;
  // Waits until at least `n` requests are stored; returns them (fewer on timeout).
  std::vector<Request> wait_requests(std::size_t n, std::chrono::milliseconds timeout) const;
  std::string log() const { return read_file(dir_ / "sink.log"); }

 private:
  std::string host_, ip_;
  unsigned port_;
  std::filesystem::path dir_;
  std::unique_ptr<Process> proc_;
};

}  // namespace mtasts::test
