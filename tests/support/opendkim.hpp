// Test support: real DKIM signing and verification for report mail (RFC 8460 section 3: TLS
// reports sent by mail must be DKIM-signed). OpenDkim runs Debian's opendkim (a milter) with a
// key made at start (opendkim-genkey) for one domain and selector; the MTA's submission path
// points at milter_socket() (Postfix: smtpd_milters and non_smtpd_milters), and the selector's
// TXT record (txt_name(), txt_record()) goes into the test world's DNS. dkim_verify() checks
// a received message with python3-dkim's dkimverify, which asks the DNS (run it behind the
// network namespace's exec prefix, so that it asks the world's DNS).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.hpp"
#include "tests/support/syslog_sink.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {

class OpenDkim {
 public:
  // Generates a 2048-bit RSA key for `domain`/`selector` in `dir` (created) and starts opendkim
  // in the foreground (signing mail whose From is in `domain`, verifying the rest) on
  // inet:127.0.0.1:<free port>, its syslog lines caught in dir/syslog/syslog.log. Throws
  // std::runtime_error (with the logs) if it does not listen.
  OpenDkim(const std::filesystem::path& dir, std::string domain, std::string selector);
  ~OpenDkim();
  OpenDkim(const OpenDkim&) = delete;
  OpenDkim& operator=(const OpenDkim&) = delete;

  const std::string& domain() const noexcept { return domain_; }
  const std::string& selector() const noexcept { return selector_; }
  // "inet:127.0.0.1:PORT": for Postfix's smtpd_milters / non_smtpd_milters (PostfixOptions::milter).
  std::string milter_socket() const { return "inet:127.0.0.1:" + std::to_string(port_); }
  // "<selector>._domainkey.<domain>" and its TXT record (strings of at most 255 octets).
  std::string txt_name() const { return selector_ + "._domainkey." + domain_; }
  const TxtRecord& txt_record() const noexcept { return txt_; }
  std::string log() const { return syslog_->log(); }

 private:
  std::string domain_, selector_;
  std::filesystem::path dir_;
  unsigned port_ = 0;
  TxtRecord txt_{""};
  std::unique_ptr<SyslogSink> syslog_;
  std::unique_ptr<Process> proc_;
};

// Verifies the DKIM signatures of `message` (CRLF or LF lines; a first "X-Test-MX:" line
// added by SmtpMx is dropped) with dkimverify, run behind `exec_prefix` (e.g. a network
// namespace's). exit_code 0: "signature ok".
RunResult dkim_verify(const std::string& message, const std::vector<std::string>& exec_prefix);

}  // namespace mtasts::test
