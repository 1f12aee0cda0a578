// Sendmail 8.17 syslog lines -> RFC 8460 sessions (policy not attached yet).
//
// A delivering sendmail process (PID) logs, per connection (LogLevel >= 9):
//   STARTTLS=client, relay=HOST, version=TLSv1.3, verify=OK|FAIL|NO|NOT|NONE|TRUSTED|..., cipher=.., bits=..
//   STARTTLS=client, cert-subject=.., cert-issuer=.., verifymsg=REASON          (LogLevel >= 12)
//   STARTTLS=client, error: connect failed=.., reason=.., relay=HOST            (handshake failed)
//   [QUEUEID: ]ruleset=tls_server, arg1=VERIFY, relay=HOST, reject=403 4.7.0 ...  (our policy refused it)
// and, once per delivery, "QUEUEID: to=<rcpt>,..., relay=HOST. [IP], dsn=.., stat=Sent|Deferred.."
// naming the domain and the last MX tried: the attempts logged before it by the same process
// are that delivery's sessions. A to= line without a new STARTTLS line to a host this process
// already spoke TLS with is a cached connection (not a session). The envelope sender comes
// from "QUEUEID: from=<...>".
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "reportd/collect/log_line.hpp"
#include "reportd/collect/outcome.hpp"

namespace mtasts::reportd {

class SendmailParser final : public LineParser {
 public:
  explicit SendmailParser(ParserOptions options);

  void feed(std::string_view line, std::vector<Outcome>& out) override;
  void feed_record(std::int64_t time, std::string_view program, std::uint32_t pid, std::string_view message,
                   std::vector<Outcome>& out) override;
  std::string save_state() const override;
  void restore_state(std::string_view text) override;
  const ParserStats& stats() const noexcept override { return stats_; }

 private:
  struct Attempt {
    std::string host;  // normalised
    TlsSeen tls = TlsSeen::none;
    std::optional<tlsrpt::Result> failure;  // set when the attempt failed for a TLS reason
    std::string info;
    std::string verify_msg;
    std::int64_t time = 0;
  };
  struct Proc {
    std::vector<Attempt> attempts;
    std::set<std::string> tls_hosts;  // hosts this process negotiated TLS with (cached connections)
    std::string last_qid, last_relay; // the last delivery's to= line (more recipients)
  };

  void delivery(std::int64_t time, Proc& p, std::string_view qid, std::string_view rest, std::vector<Outcome>& out);
  Proc& proc(std::uint32_t pid);
  void emit(Outcome o, std::vector<Outcome>& out);
  void saw_tls(std::vector<Outcome>& out);

  ParserOptions options_;
  std::string sender_;
  ParserStats stats_;
  DomainNormalizer domains_;
  std::unordered_map<std::uint32_t, Proc> procs_;
  ReportMail report_;
  bool tls_seen_ = false;       // this log has shown STARTTLS=client lines
  std::vector<Outcome> held_;   // deliveries in clear seen before that
};

}  // namespace mtasts::reportd
