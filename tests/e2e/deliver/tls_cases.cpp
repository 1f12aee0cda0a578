// The TLS-RPT cases of the delivery world; see tls_cases.hpp.
#include "tests/e2e/deliver/tls_cases.hpp"

#include <stdexcept>

namespace mtasts::test::e2e {

using namespace std::chrono_literals;

const std::vector<TlsCase>& tls_cases() {
  static const std::vector<TlsCase> c = {
      {"good", dlv("good"), "sts", "enforce", {{dlv("mx.good"), "success"}}, true},
      {"wrongname", dlv("wrongname"), "sts", "enforce", {{dlv("mx.wrongname"), "certificate-host-mismatch"}}, false},
      {"expired", dlv("expired"), "sts", "enforce", {{dlv("mx.expired"), "certificate-expired"}}, false},
      {"selfsigned", dlv("selfsigned"), "sts", "enforce", {{dlv("mx.selfsigned"), "certificate-not-trusted"}}, false},
      {"untrusted", dlv("untrusted"), "sts", "enforce", {{dlv("mx.untrusted"), "certificate-not-trusted"}}, false},
      {"notls", dlv("notls"), "sts", "enforce", {{dlv("mx.notls"), "starttls-not-supported"}}, false},
      {"offpolicy", dlv("offpolicy"), "sts", "enforce", {{dlv("mx.elsewhere"), "validation-failure"}}, false},
      {"mixed",
       dlv("mixed"),
       "sts",
       "enforce",
       {{dlv("mx1.mixed"), "certificate-host-mismatch"}, {dlv("mx2.mixed"), "success"}},
       true},
      {"testing", dlv("testing"), "sts", "testing", {{dlv("mx.testing"), "certificate-host-mismatch"}}, true},
      {"nosts", dlv("nosts"), "no-policy-found", "", {{dlv("mx.nosts"), "success"}}, true},
      {"nopolicy", dlv("nopolicy"), "no-policy-found", "", {{dlv("mx.nopolicy"), "starttls-not-supported"}}, true},
  };
  return c;
}

namespace {

std::string tail(const std::string& s, std::size_t n = 6000) { return s.size() > n ? s.substr(s.size() - n) : s; }

}  // namespace

std::vector<std::string> postfix_report_main_cf(const DeliveryWorld& dw) {
  return {"smtp_tls_security_level = may",
          "smtp_tls_CAfile = " + dw.world().ca_file().string(),
          "smtp_tls_policy_maps = " + dw.postfix_policy_map(),
          "smtp_tls_loglevel = 1",
          "smtp_host_lookup = dns",
          "smtp_connect_timeout = 5s",
          "smtp_helo_timeout = 10s",
          // A retry is one more session: none while a test counts (these follow the defaults of
          // mail_env.cpp, and the last assignment in main.cf wins).
          "queue_run_delay = 3600s",
          "minimal_backoff_time = 3600s",
          "maximal_backoff_time = 3600s"};
}

std::vector<CaseOutcome> deliver_cases(Postfix& postfix, const std::vector<TlsCase>& cases, const std::string& tag,
                                       std::chrono::milliseconds per_case) {
  std::vector<CaseOutcome> out;
  for (const auto& c : cases) {
    CaseOutcome o{c, tag + "-" + c.label, "rcpt-" + c.label + "@" + c.domain, "", ""};
    const RunResult r = swaks(postfix.smtp_port(), kCaseSender, {o.recipient}, make_message(o.token, {o.recipient}));
    if (r.exit_code != 0) throw std::runtime_error("swaks to Postfix failed for " + o.token + ": " + r.out + r.err);
    if (!wait_until([&] { return !(o.queue_id = postfix.queue_id(o.token)).empty(); }, per_case))
      throw std::runtime_error("no queue id for " + o.token + "; maillog:\n" + tail(postfix.maillog()));
    const std::string status = c.delivered ? "sent" : "deferred";
    o.status_line = postfix.wait_log_line(" " + o.queue_id + ": to=<" + o.recipient + ">", status, per_case);
    if (o.status_line.empty())
      throw std::runtime_error(o.token + " (" + o.queue_id + ") did not end with status=" + status + "; maillog:\n" +
                               tail(postfix.maillog()));
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<CaseOutcome> deliver_cases(Sendmail& sendmail, const SyslogSink& syslog, const std::vector<TlsCase>& cases,
                                       const std::string& tag, std::chrono::milliseconds per_case) {
  std::vector<CaseOutcome> out;
  for (const auto& c : cases) {
    CaseOutcome o{c, tag + "-" + c.label, "rcpt-" + c.label + "@" + c.domain, "", ""};
    const RunResult r = swaks(sendmail.smtp_port(), kCaseSender, {o.recipient}, make_message(o.token, {o.recipient}));
    if (r.exit_code != 0) throw std::runtime_error("swaks to Sendmail failed for " + o.token + ": " + r.out + r.err);
    // "QID: from=<...>, ..., msgid=<TOKEN@...>, ..."
    const std::string from = syslog.wait_line({"msgid=<" + o.token + "@"}, per_case);
    const auto colon = from.find(": ", from.find("]: ") + 3);
    if (from.empty() || colon == std::string::npos)
      throw std::runtime_error("no queue id for " + o.token + "; syslog:\n" + tail(syslog.log()));
    const auto start = from.find("]: ") + 3;
    o.queue_id = from.substr(start, colon - start);
    const std::string stat = c.delivered ? "stat=Sent" : "stat=Deferred";
    o.status_line = syslog.wait_line({" " + o.queue_id + ": to=<" + o.recipient + ">", stat}, per_case);
    if (o.status_line.empty())
      throw std::runtime_error(o.token + " (" + o.queue_id + ") did not end with " + stat + "; syslog:\n" +
                               tail(syslog.log()));
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace mtasts::test::e2e
