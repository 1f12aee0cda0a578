// mtasts-reportd-fixtures: regenerates tests/fixtures/reportd/ (see its README.md) from the real
// thing. In the delivery world (delivery_world.hpp; root only) a private Postfix 3.7
// (maillog_file) and Sendmail 8.17 (its syslog(3) lines caught by a SyslogSink as /dev/log)
// deliver one message per TLS-RPT case (tls_cases.hpp), one at a time; then a second Postfix
// with TLS connection reuse (tlsproxy) delivers three messages to one domain over one cached
// connection. Writes, into OUTDIR (default: the source tree's tests/fixtures/reportd):
//   postfix-3.7.log        Postfix's maillog_file, verbatim
//   postfix-3.7-reuse.log  the reuse Postfix's maillog_file, verbatim
//   sendmail-8.17.log      Sendmail's syslog lines, as rsyslog writes them (traditional format)
//   sendmail-8.17-loglevel14.log  the same for six cases at LogLevel 14 (verification reasons)
//   sessions.tsv           one row per SMTP session: what the collector must find in the logs
// Not a test (the logs differ at every run: times, queue ids, pids); run by hand:
//   sudo build/default/tests/world/mtasts-reportd-fixtures [OUTDIR]
#include <unistd.h>

#include <thread>
#include <iostream>

#include "tests/e2e/deliver/delivery_world.hpp"
#include "tests/e2e/deliver/tls_cases.hpp"
#include "tests/e2e/milter/mail_env.hpp"
#include "tests/support/syslog_sink.hpp"

namespace e2e = mtasts::test::e2e;
namespace fs = std::filesystem;
using mtasts::test::read_file;
using mtasts::test::RunResult;
using mtasts::test::SyslogSink;
using mtasts::test::wait_until;
using mtasts::test::write_file;
using namespace std::chrono_literals;

namespace {

std::string tsv_rows(const std::string& mta, const std::vector<e2e::CaseOutcome>& outcomes, e2e::DeliveryWorld& dw) {
  std::string out;
  for (const auto& o : outcomes) {
    const auto& c = o.tls_case;
    for (std::size_t i = 0; i < c.attempts.size(); ++i) {
      const auto& a = c.attempts[i];
      const bool last = i + 1 == c.attempts.size();
      out += mta + "\t" + o.queue_id + "\t" + o.token + "\t" + c.domain + "\t" + c.policy_type + "\t" +
             (c.policy_mode.empty() ? "-" : c.policy_mode) + "\t" + std::to_string(i + 1) + "\t" + a.mx_host + "\t" +
             dw.mx(a.mx_host).ip() + "\t" + e2e::kSendingIp + "\t" + a.result + "\t" +
             (last ? (c.delivered ? "delivered" : "deferred") : "next-mx") + "\n";
    }
  }
  return out;
}

int generate(const fs::path& out) {
  fs::create_directories(out);
  e2e::DeliveryWorld dw;
  std::cerr << "world up in " << dw.dir() << "\n";
  std::string tsv =
      "# mta\tqueue_id\ttoken\tpolicy_domain\tpolicy_type\tpolicy_mode\tattempt\tmx_host\tmx_ip\tsending_ip\t"
      "result\toutcome\n";

  {
    e2e::Postfix postfix(dw.dir() / "pf", e2e::PostfixOptions{.relay_port = 0,
                                                              .main_cf = e2e::postfix_report_main_cf(dw),
                                                              .command_prefix = dw.exec_prefix()});
    const auto outcomes = e2e::deliver_cases(postfix, e2e::tls_cases(), "pf");
    tsv += tsv_rows("postfix", outcomes, dw);
    postfix.stop();
    write_file(out / "postfix-3.7.log", postfix.maillog());
    std::cerr << "postfix-3.7.log written\n";
  }
  {
    // TLS connection reuse (Postfix >= 3.4: tlsproxy keeps the TLS session of a cached
    // connection): three messages to good.dlv.test, each after the previous was sent, go over
    // one connection (conn_use=2, 3 in their status lines): one TLS session, not three.
    auto main_cf = e2e::postfix_report_main_cf(dw);
    main_cf.insert(main_cf.end(), {"smtp_tls_connection_reuse = yes",
                                   "smtp_connection_cache_destinations = " + e2e::dlv("good"),
                                   "smtp_connection_cache_time_limit = 30s"});
    e2e::Postfix postfix(dw.dir() / "pf-reuse", e2e::PostfixOptions{.relay_port = 0,
                                                                    .main_cf = main_cf,
                                                                    .master_cf = {"tlsproxy  unix  - - n - 0 tlsproxy"},
                                                                    .command_prefix = dw.exec_prefix()});
    const e2e::TlsCase good = e2e::tls_cases().front();
    std::vector<e2e::TlsCase> three;
    for (const char* n : {"reuse1", "reuse2", "reuse3"}) {
      three.push_back(good);
      three.back().label = n;
    }
    const auto outcomes = e2e::deliver_cases(postfix, three, "pf");
    std::string rows = tsv_rows("postfix-reuse", outcomes, dw);
    // The 2nd and 3rd went over the cached connection: no new session.
    for (std::size_t i = 1; i < outcomes.size(); ++i) {
      if (outcomes[i].status_line.find("conn_use=") == std::string::npos)
        std::cerr << "WARNING: no conn_use= in " << outcomes[i].status_line << "\n";
      const auto at = rows.find(outcomes[i].token);
      const auto end = rows.find('\n', at);
      const auto tab = rows.rfind('\t', end);
      rows.replace(tab + 1, end - tab - 1, "delivered-reused-connection");
    }
    tsv += rows;
    postfix.stop();
    write_file(out / "postfix-3.7-reuse.log", postfix.maillog());
    std::cerr << "postfix-3.7-reuse.log written\n";
  }
  {
    SyslogSink syslog(dw.dir() / "syslog", "mta");
    const e2e::SendmailMc mc = e2e::shipped_sendmail_mc(dw);
    e2e::Sendmail sendmail(dw.dir() / "sm", e2e::SendmailOptions{.relay_port = 0,
                                                                 .mc_lines = mc.before,
                                                                 .mc_tail_lines = mc.after,
                                                                 .command_prefix = syslog.exec_prefix(dw.exec_prefix())});
    const auto outcomes = e2e::deliver_cases(sendmail, syslog, e2e::tls_cases(), "sm");
    tsv += tsv_rows("sendmail", outcomes, dw);
    std::this_thread::sleep_for(1s);  // the last lines of the delivering process
    write_file(out / "sendmail-8.17.log", syslog.log());
    std::cerr << "sendmail-8.17.log written\n";
  }
  {
    // The same Sendmail at LogLevel 14: its certificate verification errors are then logged
    // with their reason ("cert verify: depth=0 ..., reason=certificate has expired").
    SyslogSink syslog(dw.dir() / "syslog14", "mta");
    e2e::SendmailMc mc = e2e::shipped_sendmail_mc(dw);
    mc.before.push_back("define(`confLOG_LEVEL', `14')dnl");
    e2e::Sendmail sendmail(dw.dir() / "sm14", e2e::SendmailOptions{.relay_port = 0,
                                                                   .mc_lines = mc.before,
                                                                   .mc_tail_lines = mc.after,
                                                                   .command_prefix = syslog.exec_prefix(dw.exec_prefix())});
    std::vector<e2e::TlsCase> cases;
    for (const auto& c : e2e::tls_cases())
      if (c.label == "good" || c.label == "wrongname" || c.label == "expired" || c.label == "selfsigned" ||
          c.label == "untrusted" || c.label == "notls")
        cases.push_back(c);
    const auto outcomes = e2e::deliver_cases(sendmail, syslog, cases, "sm14");
    tsv += tsv_rows("sendmail-loglevel14", outcomes, dw);
    std::this_thread::sleep_for(1s);
    write_file(out / "sendmail-8.17-loglevel14.log", syslog.log());
    std::cerr << "sendmail-8.17-loglevel14.log written\n";
  }
  write_file(out / "sessions.tsv", tsv);
  std::cout << tsv;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (::geteuid() != 0) {
    std::cerr << "mtasts-reportd-fixtures: run as root (network namespace, port 25, Postfix, Sendmail)\n";
    return 2;
  }
  const fs::path out = argc > 1 ? fs::path(argv[1]) : mtasts::test::source_dir() / "tests/fixtures/reportd";
  try {
    return generate(out);
  } catch (const std::exception& e) {
    std::cerr << "mtasts-reportd-fixtures: " << e.what() << "\n";
    return 1;
  }
}
