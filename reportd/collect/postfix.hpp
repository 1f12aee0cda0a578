// Postfix 3.7 smtp(8) log lines -> RFC 8460 sessions (policy not attached yet).
//
// Each smtp process (PID) handles one delivery request at a time and logs, per connection
// attempt, in this order (smtp_tls_loglevel = 1):
//   [server ]certificate verification failed for HOST[IP]:PORT: REASON      (optional)
//   Verified|Trusted|Untrusted|Anonymous TLS connection established to HOST[IP]:PORT: ...
//   QUEUEID: to=<rcpt@domain>, relay=HOST[IP]:PORT, [conn_use=N, ]delay=.., delays=.., dsn=.., status=sent|deferred|bounced (TEXT)
// and, at an MX that is not the last one tried, only "QUEUEID: TEXT" without a recipient: such
// an attempt waits (per PID) for the status line of the same queue id, which names the domain.
// A delivery over a reused connection (conn_use > 1, "TLS connection reused") is no session;
// several recipients of one domain over one connection are one session. Messages whose
// envelope sender (qmgr/pickup "QUEUEID: from=<...>") is the report sender are not counted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "reportd/collect/log_line.hpp"
#include "reportd/collect/outcome.hpp"

namespace mtasts::reportd {

// The RFC 8460 result of a Postfix/OpenSSL certificate verification reason ("certificate has
// expired", "num=62:hostname mismatch", "self-signed certificate", "untrusted issuer ...").
tlsrpt::Result verification_result(std::string_view reason) noexcept;

class PostfixParser final : public LineParser {
 public:
  explicit PostfixParser(ParserOptions options);

  void feed(std::string_view line, std::vector<Outcome>& out) override;
  void feed_record(std::int64_t time, std::string_view program, std::uint32_t pid, std::string_view message,
                   std::vector<Outcome>& out) override;
  std::string save_state() const override;
  void restore_state(std::string_view text) override;
  const ParserStats& stats() const noexcept override { return stats_; }

 private:
  struct Conn {
    std::string host;  // normalised
    std::string ip;
    TlsSeen tls = TlsSeen::none;
    std::optional<tlsrpt::Result> verify;
    std::string verify_text;
    bool reused = false;   // "TLS connection reused": not a new session
    // Once a status line used this connection: which delivery it was, for more recipients.
    bool bound = false;
    std::string qid;
    std::string delays;
    std::vector<std::string> domains;
  };
  struct Pending {
    std::string qid;
    Outcome outcome;  // domain still empty
  };
  struct Proc {
    std::optional<Conn> conn;
    std::vector<Pending> pending;
  };

  void smtp_line(std::int64_t time, std::uint32_t pid, std::string_view msg, std::vector<Outcome>& out);
  void queue_line(std::int64_t time, std::string_view msg);
  void status_line(std::int64_t time, Proc& proc, std::string_view qid, std::string_view rest,
                   std::vector<Outcome>& out);
  void attempt_line(std::int64_t time, Proc& proc, std::string_view qid, std::string_view reason);
  Proc& proc(std::uint32_t pid);
  void emit(Outcome o, std::vector<Outcome>& out);
  void saw_tls(std::vector<Outcome>& out);
  // The outcome of one finished attempt: nullopt when no TLS session took place.
  std::optional<Outcome> attempt(std::int64_t time, const Conn* conn, std::string_view host, std::string_view ip,
                                 bool sent, std::string_view reason, std::string_view dsn);

  ParserOptions options_;
  std::string sender_;  // lower case
  ParserStats stats_;
  DomainNormalizer domains_;
  std::unordered_map<std::uint32_t, Proc> procs_;
  ReportMail report_;
  bool tls_seen_ = false;       // this log has shown a TLS line (smtp_tls_loglevel >= 1)
  std::vector<Outcome> held_;   // deliveries in clear seen before that
};

}  // namespace mtasts::reportd
