// The TLS sessions of the TLS-RPT (RFC 8460) tests of issue 20: one message per case of the
// delivery world (delivery_world.hpp), each case an SMTP session (or two, for a domain whose
// preferred MX fails) with a known RFC 8460 outcome; delivered through a real Postfix or a real
// Sendmail one case at a time, so that each case's log lines form a group of their own.
// Shared by the fixture generator (fixtures_main.cpp -> tests/fixtures/reportd/) and the
// end-to-end tests of mta-sts-reportd.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "tests/e2e/deliver/delivery_world.hpp"
#include "tests/e2e/milter/mail_env.hpp"
#include "tests/support/syslog_sink.hpp"

namespace mtasts::test::e2e {

// One SMTP session of a delivery attempt: the MX host tried and the RFC 8460 result,
// "success" or a result-type (certificate-host-mismatch, certificate-expired, ...).
struct TlsAttempt {
  std::string mx_host;
  std::string result;
};

struct TlsCase {
  std::string label;  // e.g. "expired"; the message token is "<tag>-<label>"
  std::string domain;  // the recipient domain = the policy domain
  // "sts" (with the mode in policy_mode) or "no-policy-found".
  std::string policy_type;
  std::string policy_mode;  // "enforce", "testing", "" for no-policy-found
  std::vector<TlsAttempt> attempts;  // in order, one per SMTP session
  bool delivered = false;  // else deferred (kept in the queue)
};

// The cases, in the order they are delivered:
//   good        sts enforce  mx.good        success                        delivered
//   wrongname   sts enforce  mx.wrongname   certificate-host-mismatch      deferred
//   expired     sts enforce  mx.expired     certificate-expired            deferred
//   selfsigned  sts enforce  mx.selfsigned  certificate-not-trusted        deferred
//   untrusted   sts enforce  mx.untrusted   certificate-not-trusted        deferred (other CA)
//   notls       sts enforce  mx.notls       starttls-not-supported         deferred
//   offpolicy   sts enforce  mx.elsewhere   validation-failure             deferred (MX not in
//                                                                          the policy)
//   mixed       sts enforce  mx1.mixed      certificate-host-mismatch, then
//                            mx2.mixed      success                        delivered
//   testing     sts testing  mx.testing     certificate-host-mismatch      delivered
//   nosts       no-policy-found mx.nosts    success                        delivered
//   nopolicy    no-policy-found mx.nopolicy starttls-not-supported         delivered in clear
const std::vector<TlsCase>& tls_cases();

// What became of one case in one MTA.
struct CaseOutcome {
  TlsCase tls_case;
  std::string token;      // the message's token (Message-ID <token@...>)
  std::string recipient;  // "rcpt-<label>@<domain>"
  std::string queue_id;   // the MTA's queue id
  std::string status_line;  // the MTA's log line that ended the attempt (status=/stat=)
};

// The sending address of every case's message.
inline const std::string kCaseSender = "sender@sender.dlv.test";

// Submits each case's message over SMTP, one at a time, and waits until the MTA logged its
// end (Postfix: status=sent or deferred; Sendmail: stat=Sent or Deferred) before the next.
// Throws std::runtime_error (with the log) when one does not end as the case says within
// `per_case`. Postfix should have long backoff times (postfix_report_main_cf()) so that no
// retry adds sessions meanwhile.
std::vector<CaseOutcome> deliver_cases(Postfix& postfix, const std::vector<TlsCase>& cases, const std::string& tag,
                                       std::chrono::milliseconds per_case = std::chrono::seconds(60));
// Sendmail's log lines come from its syslog(3): `syslog` must be the sink behind Sendmail's
// command prefix.
std::vector<CaseOutcome> deliver_cases(Sendmail& sendmail, const SyslogSink& syslog, const std::vector<TlsCase>& cases,
                                       const std::string& tag,
                                       std::chrono::milliseconds per_case = std::chrono::seconds(60));

// main.cf lines for a Postfix that delivers by MX in the delivery world asking mta-sts-tlsmap,
// with tls loglevel 1 (Debian's default is 0: then nothing about TLS is logged) and retries
// of deferred mail an hour away (a retry would be one more session in the counts).
std::vector<std::string> postfix_report_main_cf(const DeliveryWorld& dw);

// The sending IP address of both MTAs in the world (the source address the kernel picks for
// 127.25.0.x on lo).
inline const std::string kSendingIp = "127.0.0.1";

}  // namespace mtasts::test::e2e
