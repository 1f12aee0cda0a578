// Test support: a receiving MX host for delivery tests. A real SMTP server (aiosmtpd, run by
// tests/support/smtp_mx.py with Debian's python3) on IP:25 that offers STARTTLS with a test-CA
// certificate of a chosen kind, or no STARTTLS at all, and keeps every message it receives in
// a file of its own, so that a test sees which host got a message and whether over TLS.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/process.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {

class SmtpMx {
 public:
  // Launches the server for `host` on ip:port with a certificate of kind `cert` (nullopt: no
  // STARTTLS) whose names are `cert_names` (e.g. a wildcard, or several hosts sharing one
  // certificate; valid and untrusted kinds only) or, when empty, just `host`. Does not wait:
  // call wait_ready() (many hosts start in parallel). `dir` must exist and outlive this object.
  SmtpMx(std::string host, std::string ip, std::optional<CertKind> cert, TestCa& ca, std::filesystem::path dir,
         std::vector<std::string> cert_names = {}, unsigned port = 25);
  ~SmtpMx();
  SmtpMx(const SmtpMx&) = delete;
  SmtpMx& operator=(const SmtpMx&) = delete;

  // Throws std::runtime_error (with the server's log) unless it accepts connections in time.
  void wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // Stops the server and starts it again offering `cert` (nullopt: no STARTTLS); waits until
  // ready. What it received before is kept.
  void restart(std::optional<CertKind> cert);

  const std::string& host() const noexcept { return host_; }
  const std::string& ip() const noexcept { return ip_; }
  std::optional<CertKind> cert() const noexcept { return cert_; }
  std::string log() const { return read_file(dir_ / "mx.log"); }

  // Every message received so far (the first line is "X-Test-MX: host=...; tls=...; rcpt=...").
  std::vector<std::string> messages() const;
  // The received message whose text contains `needle`, waiting up to `timeout`.
  std::optional<std::string> wait_message(const std::string& needle, std::chrono::milliseconds timeout) const;
  bool received(const std::string& needle) const { return wait_message(needle, std::chrono::milliseconds(0)).has_value(); }

 private:
  void launch();
  std::string host_;
  std::string ip_;
  unsigned port_;
  std::optional<CertKind> cert_;
  std::vector<std::string> cert_names_;
  TestCa& ca_;
  std::filesystem::path dir_;
  std::unique_ptr<Process> proc_;
};

}  // namespace mtasts::test
