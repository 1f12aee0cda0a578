// mta-sts-reportd (issue 20) with the real thing: in the TLS-RPT delivery world
// (DeliveryOptions::tlsrpt: every domain publishes `_smtp._tls' with a mailto: rua, the SMTP
// sink, and an https: rua, the HTTPS sink) a real Postfix 3.7 asking mta-sts-tlsmap, with real
// OpenDKIM on its submission path, delivers one message per TLS case (tls_cases.hpp: a good
// certificate, another name's, an expired one, a self-signed one, another CA's, no STARTTLS, an
// MX outside the policy, a failing preferred MX before a good one, a testing policy, no policy
// with and without TLS). mta-sts-reportd follows Postfix's maillog_file into the world's Redis;
// then `mta-sts-reportd -c CONF --send DAY' sends the day's reports. Each report must arrive
// exactly once per domain and rua, validate against the RFC 8460 schema, carry exactly the
// sessions the test caused, be DKIM-signed and verify; the report mail's own deliveries
// (through the same Postfix, from sender-address) must never be counted.
//
// The day is today (UTC); `--send' runs a day later on its own clock (libfaketime), as an
// operator would run it after midnight.
#include <gtest/gtest.h>

#include <csignal>
#include <functional>
#include <ctime>
#include <map>
#include <set>
#include <thread>

#include "tests/e2e/deliver/delivery_world.hpp"
#include "tests/e2e/deliver/tls_cases.hpp"
#include "tests/e2e/milter/mail_env.hpp"
#include "tests/support/opendkim.hpp"
#include "tests/support/syslog_sink.hpp"

namespace mtasts::test::e2e {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kReportSender = "tlsrpt-noreply@" + dlv("sender");

std::string utc_day() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

std::string header(const std::string& message, const std::string& name) {
  const auto v = header_values(message, name);
  return v.empty() ? std::string() : v.front();
}

// What the validator's --summary must print for `domain` after the cases were delivered
// through an MTA of kind `mta`: the policy line, then one line per (result, MX, IP).
// Several MTAs (a fleet: each delivered every case once): the sums.
std::vector<std::string> expected_summary(const std::string& domain, const std::vector<Mta>& mtas, DeliveryWorld& dw) {
  std::vector<std::string> out;
  unsigned ok = 0, failed = 0;
  std::map<std::string, unsigned> details;
  std::string type;
  for (const Mta mta : mtas)
  for (const auto& c : tls_cases()) {
    if (c.domain != domain) continue;
    type = c.policy_type;
    for (const auto& a : c.attempts) {
      const std::string& r = log_result(a, mta);
      if (r == "success") {
        ++ok;
      } else {
        ++failed;
        ++details["failure " + domain + " " + r + " mx=" + a.mx_host + " ip=" + dw.mx(a.mx_host).ip() +
                  " from=" + kSendingIp];
      }
    }
  }
  out.push_back("policy " + domain + " " + type + " success=" + std::to_string(ok) + " failure=" + std::to_string(failed));
  for (const auto& [line, n] : details) out.push_back(line + " count=" + std::to_string(n));
  std::sort(out.begin(), out.end());
  return out;
}
std::vector<std::string> expected_summary(const std::string& domain, Mta mta, DeliveryWorld& dw) {
  return expected_summary(domain, std::vector<Mta>{mta}, dw);
}

// The validator's --summary of a stored report (mail or POST), sorted; a test failure if it is
// not a valid report.
std::vector<std::string> report_summary(const fs::path& file) {
  const RunResult r = run({"/usr/bin/python3", (source_dir() / "tests/support/validate_tlsrpt.py").string(),
                           "--summary", file.string()},
                          60s);
  EXPECT_EQ(r.exit_code, 0) << file << ": " << r.err << r.out;
  // Failure details that differ only in what the summary leaves out (additional-information,
  // failure-reason-code: e.g. Postfix's and Sendmail's words for one failure) are added up.
  std::map<std::string, unsigned long> counts;
  std::vector<std::string> lines;
  for (const auto& l : lines_of(r.out)) {
    const auto at = l.rfind(" count=");
    if (l.rfind("failure ", 0) == 0 && at != std::string::npos)
      counts[l.substr(0, at)] += std::stoul(l.substr(at + 7));
    else
      lines.push_back(l);
  }
  for (const auto& [k, n] : counts) lines.push_back(k + " count=" + std::to_string(n));
  std::sort(lines.begin(), lines.end());
  return lines;
}

// Every report the sinks received must be exactly `expected(domain)`, one per case domain and
// rua (the mail sink and the HTTPS sink).
void expect_one_exact_report_per_domain_and_rua(
    DeliveryWorld& dw, const std::function<std::vector<std::string>(const std::string&)>& expected,
    const std::string& diag) {
  std::set<std::string> domains;
  for (const auto& c : tls_cases()) domains.insert(c.domain);
  std::vector<std::string> mails;
  wait_until([&] { return (mails = dw.report_mx().messages()).size() >= domains.size(); }, 60s);
  std::map<std::string, unsigned> mailed, posted;
  for (std::size_t i = 0; i < mails.size(); ++i) {
    const std::string m = mails[i].substr(mails[i].find('\n') + 1);
    const std::string domain = header(m, "TLS-Report-Domain");
    ++mailed[domain];
    const fs::path file = dw.dir() / ("report-mail-" + std::to_string(i) + ".eml");
    write_file(file, m);
    EXPECT_EQ(report_summary(file), expected(domain)) << "report mail for " << domain;
  }
  const auto posts = dw.report_https().wait_requests(domains.size(), 60s);
  for (const auto& p : posts) {
    const auto lines = report_summary(p.file);
    if (lines.empty()) continue;
    const std::string domain = lines.back().substr(7, lines.back().find(' ', 7) - 7);
    ++posted[domain];
    EXPECT_EQ(lines, expected(domain)) << "POST for " << domain;
  }
  for (const auto& d : domains) {
    EXPECT_EQ(mailed[d], 1u) << d << "\n" << diag;
    EXPECT_EQ(posted[d], 1u) << d << "\n" << diag;
  }
  EXPECT_EQ(mails.size(), domains.size()) << diag;
  EXPECT_EQ(posts.size(), domains.size()) << diag;
}

// `mta-sts-ctl report show --day DAY` until its output holds `needle` (60 s); the last output.
std::string wait_shown(const fs::path& conf, const std::string& day, const std::string& needle) {
  RunResult r;
  wait_until(
      [&] {
        r = run({MTASTS_CTL_BIN, "-c", conf.string(), "report", "show", "--day", day}, 60s);
        return r.out.find(needle) != std::string::npos;
      },
      60s);
  return r.out + r.err;
}


// `mta-sts-reportd -c CONF --send DAY` for today's DAY: --send refuses a day that is not over,
// so the one-shot runs a day later on its own clock (libfaketime; the MTAs and Redis keep the
// real time, and write_reportd_conf's sendmail-command drops the fake clock for the MTA).
RunResult send_day(const fs::path& conf, const std::string& day) {
  return run({"faketime", "-f", "+1d", MTASTS_REPORTD_BIN, "-c", conf.string(), "--send", day}, 120s);
}

std::vector<std::string> with_netns(const DeliveryWorld& dw, std::vector<std::string> argv) {
  std::vector<std::string> out = dw.exec_prefix();
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

// mta-sts-reportd's configuration in the world: `source' and `sendmail-command' as given, the
// world's Redis, DNS and CA, sender-address kReportSender, send = yes without delay.
void write_reportd_conf(const fs::path& file, DeliveryWorld& dw, const std::string& source,
                        const std::string& sendmail_command, const fs::path& state) {
  fs::create_directories(state);
  write_file(file, "[redis]\naddress = " + dw.world().redis().address() +
                       "\n[reportd]\nlog = stderr\nlog-level = debug\n"
                       "source = " + source + "\n"
                       "state-directory = " + state.string() + "\n"
                       "host-id = mta1\nsending-mta-ip = " + kSendingIp + "\nflush-interval = 1s\n"
                       "send = yes\nsend-delay-max = 0\n"
                       "organization-name = MTA-STS test fleet\ncontact-info = tlsrpt@" + dlv("sender") + "\n"
                       "sender-address = " + kReportSender + "\n"
                       "sendmail-command = /usr/bin/env -u LD_PRELOAD -u FAKETIME " + sendmail_command + "\n"
                       "ca-file = " + dw.world().ca_file().string() + "\n"
                       "resolver = " + dw.world().resolver() + "\ndns-timeout = 1000ms\n");
}

struct ReportdPostfix : ::testing::Test {
  static inline std::unique_ptr<DeliveryWorld> dw;
  static inline std::unique_ptr<Postfix> postfix;
  static inline std::unique_ptr<Process> reportd;
  static inline std::string day;
  static inline RunResult first_send;
  static inline std::string skip_reason;
  static inline std::string setup_error;

  static fs::path conf() { return dw->dir() / "reportd.conf"; }
  static fs::path maillog() { return dw->dir() / "postfix" / "maillog"; }
  static std::string reportd_log() { return read_file(dw->dir() / "reportd.log"); }

  static void SetUpTestSuite() {
    if (!DeliveryWorld::available(skip_reason)) return;
    if (!fs::exists(MTASTS_REPORTD_BIN)) {
      skip_reason = std::string("mta-sts-reportd is not built yet: ") + MTASTS_REPORTD_BIN;
      return;
    }
    try {
      dw = std::make_unique<DeliveryWorld>(DeliveryOptions{.tlsrpt = true});
      OpenDkim& dkim = dw->start_dkim();
      postfix = std::make_unique<Postfix>(dw->dir(), PostfixOptions{.relay_port = 0,
                                                                    .milter = dkim.milter_socket(),
                                                                    .main_cf = postfix_report_main_cf(*dw),
                                                                    .command_prefix = dw->exec_prefix()});
      write_reportd_conf(conf(), *dw, "postfix-log:" + maillog().string(),
                         "/usr/sbin/sendmail -C " + postfix->config_dir().string() + " -i", dw->dir() / "reportd-state");
      start_reportd();
      day = utc_day();
      deliver_cases(*postfix, tls_cases(), "rd");
      if (utc_day() != day) throw std::runtime_error("the UTC day changed during the deliveries: run again");
      stop_reportd();  // SIGTERM: the counts flushed to Redis
      first_send = send_day(conf(), day);
    } catch (const std::exception& e) {
      setup_error = e.what();
      if (dw) setup_error += "\n--- reportd log:\n" + reportd_log();
      TearDownTestSuite();
    }
  }
  static void TearDownTestSuite() {
    reportd.reset();
    postfix.reset();
    dw.reset();
  }
  static void start_reportd() {
    reportd = std::make_unique<Process>(std::vector<std::string>{MTASTS_REPORTD_BIN, "-c", conf().string()},
                                        dw->dir() / "reportd.log");
  }
  static void stop_reportd() {
    if (!reportd) return;
    const int status = reportd->stop(20s);
    reportd.reset();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      throw std::runtime_error("mta-sts-reportd did not stop cleanly (status " + std::to_string(status) + ")");
  }
  static RunResult ctl(const std::vector<std::string>& args) {
    std::vector<std::string> argv{MTASTS_CTL_BIN, "-c", conf().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, 60s);
  }

  void SetUp() override {
    if (!skip_reason.empty()) GTEST_SKIP() << skip_reason;
    ASSERT_TRUE(setup_error.empty()) << setup_error;
    ASSERT_EQ(first_send.exit_code, 0) << first_send.out << first_send.err << diag();
  }
  std::string diag() const {
    return "--- reportd log (tail):\n" + tail(reportd_log()) + "--- maillog (tail):\n" + tail(postfix->maillog()) +
           "--- https sink:\n" + dw->report_https().log();
  }
  static std::string tail(const std::string& s, std::size_t n = 8000) {
    return s.size() > n ? s.substr(s.size() - n) : s;
  }
  // The domains the cases delivered to: one report each.
  static std::set<std::string> case_domains() {
    std::set<std::string> d;
    for (const auto& c : tls_cases()) d.insert(c.domain);
    return d;
  }
  // The report mails at the SMTP sink (each without the sink's first line), waiting for `n`.
  std::vector<std::string> report_mails(std::size_t n) const {
    std::vector<std::string> mails;
    wait_until(
        [&] {
          mails.clear();
          for (const auto& m : dw->report_mx().messages()) mails.push_back(m.substr(m.find('\n') + 1));
          return mails.size() >= n;
        },
        60s);
    return mails;
  }
  // The validator's --summary of a file, sorted; fails the test if it is not a valid report.
  std::vector<std::string> summary(const fs::path& file) const {
    const RunResult r = run({"/usr/bin/python3", (source_dir() / "tests/support/validate_tlsrpt.py").string(),
                             "--summary", file.string()},
                            60s);
    EXPECT_EQ(r.exit_code, 0) << file << ": " << r.err << r.out;
    auto lines = lines_of(r.out);
    std::sort(lines.begin(), lines.end());
    return lines;
  }
};

TEST_F(ReportdPostfix, OneReportPerDomainAndRuaWithExactlyTheSessionsOfPostfixsLog) {
  const auto domains = case_domains();
  // mailto: one report mail per domain, each valid and exact.
  const auto mails = report_mails(domains.size());
  std::map<std::string, unsigned> mailed;
  for (std::size_t i = 0; i < mails.size(); ++i) {
    const std::string domain = header(mails[i], "TLS-Report-Domain");
    SCOPED_TRACE("report mail for " + domain);
    ++mailed[domain];
    EXPECT_EQ(header(mails[i], "TLS-Report-Submitter"), dlv("sender"));
    EXPECT_EQ(header(mails[i], "TLS-Required"), "No");
    EXPECT_EQ(header(mails[i], "Auto-Submitted"), "auto-generated");
    EXPECT_NE(mails[i].find("multipart/report"), std::string::npos);
    const fs::path file = dw->dir() / ("report-mail-" + std::to_string(i) + ".eml");
    write_file(file, mails[i]);
    EXPECT_EQ(summary(file), expected_summary(domain, Mta::postfix, *dw));
  }
  for (const auto& d : domains) EXPECT_EQ(mailed[d], 1u) << d << "\n" << diag();
  EXPECT_EQ(mails.size(), domains.size()) << diag();
  // https: one POST per domain, each valid and exact.
  const auto posts = dw->report_https().wait_requests(domains.size(), 60s);
  std::map<std::string, unsigned> posted;
  for (const auto& p : posts) {
    EXPECT_EQ(p.method, "POST");
    EXPECT_EQ(p.target, "/tlsrpt");
    EXPECT_EQ(p.headers.count("content-type") ? p.headers.at("content-type") : "", "application/tlsrpt+gzip");
    const auto lines = summary(p.file);
    ASSERT_FALSE(lines.empty()) << p.file;
    // "policy <domain> ..."
    const std::string domain = lines[lines.size() - 1].substr(7, lines.back().find(' ', 7) - 7);
    ++posted[domain];
    EXPECT_EQ(lines, expected_summary(domain, Mta::postfix, *dw)) << p.file;
  }
  for (const auto& d : domains) EXPECT_EQ(posted[d], 1u) << d << "\n" << diag();
  EXPECT_EQ(posts.size(), domains.size()) << diag();
}

// RFC 8460 section 3: report mail is DKIM-signed, here by OpenDKIM on Postfix's submission
// path (the sendmail-command), and verifies against the world's DNS.
TEST_F(ReportdPostfix, EveryReportMailIsDkimSignedAndVerifies) {
  const auto mails = report_mails(case_domains().size());
  ASSERT_EQ(mails.size(), case_domains().size()) << diag();
  for (const auto& m : mails) {
    SCOPED_TRACE(header(m, "TLS-Report-Domain"));
    EXPECT_NE(header(m, "DKIM-Signature").find("d=" + dlv("sender")), std::string::npos) << m;
    const RunResult v = dkim_verify(m, dw->exec_prefix());
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  }
}

// The report mails went out through the same Postfix, from sender-address, to the report
// domain's MX (reports.dlv.test publishes a TLSRPT record too): the collector reads those
// deliveries and must not count them, or the next report would be about the reports (a loop).
// Nothing is sent twice either.
TEST_F(ReportdPostfix, ReportMailIsNotCountedAndNothingIsSentTwice) {
  const std::size_t n = case_domains().size();
  ASSERT_EQ(report_mails(n).size(), n) << diag();
  // Every report mail's delivery is in the log.
  ASSERT_TRUE(wait_until(
      [&] {
        std::size_t sent = 0;
        for (const auto& l : lines_of(postfix->maillog()))
          if (l.find("to=<" + DeliveryWorld::report_mailbox() + ">") != std::string::npos &&
              l.find("status=sent") != std::string::npos)
            ++sent;
        return sent >= n;
      },
      60s))
      << diag();
  // The collector follows on from where it stopped; one more message to good.dlv.test after
  // the report mails shows when it has read past them.
  start_reportd();
  TlsCase again = tls_cases().front();
  again.label = "after-reports";
  deliver_cases(*postfix, {again}, "rd");
  const bool counted = wait_until(
      [&] {
        const RunResult r = ctl({"report", "show", "--day", day, dlv("good")});
        return r.exit_code == 0 && r.out.find(dlv("good") + ": 2 sessions, 2 successful") != std::string::npos;
      },
      60s);
  stop_reportd();
  const RunResult shown = ctl({"report", "show", "--day", day});
  EXPECT_TRUE(counted) << shown.out << shown.err << diag();
  EXPECT_NE(shown.out.find(dlv("good")), std::string::npos) << shown.out;
  EXPECT_EQ(shown.out.find(dlv("reports")), std::string::npos) << "report mail counted:\n" << shown.out;
  EXPECT_EQ(shown.out.find(dlv("sender")), std::string::npos) << shown.out;
  // Sent again: every report of the day was claimed and sent already.
  const RunResult again_sent = send_day(conf(), day);
  EXPECT_EQ(again_sent.exit_code, 0) << again_sent.out << again_sent.err;
  std::this_thread::sleep_for(3s);  // what a wrongly repeated send would have delivered by now
  EXPECT_EQ(dw->report_mx().messages().size(), n) << diag();
  EXPECT_EQ(dw->report_https().requests().size(), n) << diag();
}

// The same with a real Sendmail 8.17 (the shipped etc/sendmail-tlsmap.mc): mta-sts-reportd
// follows its syslog lines (as rsyslog writes them to a mail log; here a SyslogSink bound as
// Sendmail's /dev/log), and report mail is submitted through that Sendmail too
// (sendmail-command runs its binary in the world's namespace), so that its deliveries of the
// reports are in the log followed and must not be counted. Sendmail at LogLevel 9 does not
// say why a certificate failed: expired shows as certificate-not-trusted (tls_cases.hpp).
struct ReportdSendmail : ::testing::Test {
  static inline std::unique_ptr<DeliveryWorld> dw;
  static inline std::unique_ptr<SendmailHost> host;
  static inline SyslogSink* syslog = nullptr;
  static inline Sendmail* sendmail = nullptr;
  static inline std::string day;
  static inline RunResult sent;
  static inline std::string skip_reason;
  static inline std::string setup_error;

  static fs::path conf() { return dw->dir() / "reportd.conf"; }
  static std::string reportd_log() { return read_file(dw->dir() / "reportd.log"); }

  static void SetUpTestSuite() {
    if (!DeliveryWorld::available(skip_reason)) return;
    if (!fs::exists(MTASTS_REPORTD_BIN)) {
      skip_reason = std::string("mta-sts-reportd is not built yet: ") + MTASTS_REPORTD_BIN;
      return;
    }
    try {
      dw = std::make_unique<DeliveryWorld>(DeliveryOptions{.tlsrpt = true});
      host = std::make_unique<SendmailHost>(*dw, dw->dir());
      syslog = host->syslog.get();
      sendmail = host->sendmail.get();
      write_reportd_conf(conf(), *dw, host->source(), host->sendmail_command(), dw->dir() / "reportd-state");
      reportd = std::make_unique<Process>(std::vector<std::string>{MTASTS_REPORTD_BIN, "-c", conf().string()},
                                          dw->dir() / "reportd.log");
      day = utc_day();
      deliver_cases(*sendmail, *syslog, tls_cases(), "rs");
      if (utc_day() != day) throw std::runtime_error("the UTC day changed during the deliveries: run again");
      // Counts flush in log order: once the last case's domain is counted, all are.
      const std::string last = tls_cases().back().domain + ": 1 session";
      RunResult shown;
      if (!wait_until(
              [&] {
                shown = run({MTASTS_CTL_BIN, "-c", conf().string(), "report", "show", "--day", day}, 60s);
                return shown.out.find(last) != std::string::npos;
              },
              60s))
        throw std::runtime_error("the collector did not count " + last + ":\n" + shown.out + shown.err);
      sent = send_day(conf(), day);
    } catch (const std::exception& e) {
      setup_error = e.what();
      if (dw) setup_error += "\n--- reportd log:\n" + reportd_log();
      TearDownTestSuite();
    }
  }
  static inline std::unique_ptr<Process> reportd;
  static void TearDownTestSuite() {
    reportd.reset();
    host.reset();
    dw.reset();
  }
  void SetUp() override {
    if (!skip_reason.empty()) GTEST_SKIP() << skip_reason;
    ASSERT_TRUE(setup_error.empty()) << setup_error;
    ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err << diag();
  }
  std::string diag() const {
    const auto tail = [](const std::string& s) { return s.size() > 8000 ? s.substr(s.size() - 8000) : s; };
    return "--- reportd log (tail):\n" + tail(reportd_log()) + "--- sendmail syslog (tail):\n" + tail(syslog->log());
  }
};

TEST_F(ReportdSendmail, OneReportPerDomainAndRuaWithExactlyTheSessionsOfSendmailsLog) {
  std::set<std::string> domains;
  for (const auto& c : tls_cases()) domains.insert(c.domain);
  expect_one_exact_report_per_domain_and_rua(
      *dw, [&](const std::string& d) { return expected_summary(d, Mta::sendmail, *dw); }, diag());

  // Sendmail delivered the report mails, from sender-address, logged in the followed log:
  // once the collector has read past them (one more message to good.dlv.test after them), the
  // report domain must not be counted.
  ASSERT_TRUE(wait_until(
      [&] {
        std::size_t n = 0;
        for (const auto& l : lines_of(syslog->log()))
          // "to=tlsrpt@reports.dlv.test, ctladdr=...": submitted on the command line.
          if (l.find("to=" + DeliveryWorld::report_mailbox() + ",") != std::string::npos &&
              l.find("stat=Sent") != std::string::npos)
            ++n;
        return n >= domains.size();
      },
      60s))
      << diag();
  TlsCase again = tls_cases().front();
  again.label = "after-reports";
  deliver_cases(*sendmail, *syslog, {again}, "rs");
  const auto show = [&] { return run({MTASTS_CTL_BIN, "-c", conf().string(), "report", "show", "--day", day}, 60s); };
  RunResult shown;
  EXPECT_TRUE(wait_until(
      [&] {
        shown = show();
        return shown.out.find(dlv("good") + ": 2 sessions, 2 successful") != std::string::npos;
      },
      60s))
      << shown.out << shown.err << diag();
  EXPECT_EQ(shown.out.find(dlv("reports")), std::string::npos) << "report mail counted:\n" << shown.out;
}

// A fleet of two MTA hosts, a Postfix one and a Sendmail one, each with its own collector
// (host-id mta1, mta2; own state) on the one Redis: every case delivered through both. One
// report per domain and rua for the fleet, sent by one of them, with the counts of both hosts
// summed.
TEST(ReportdFleet, TwoHostsWithTheirOwnCollectorsMakeOneReportWithTheCountsSummed) {
  std::string why;
  if (!DeliveryWorld::available(why)) GTEST_SKIP() << why;
  if (!fs::exists(MTASTS_REPORTD_BIN)) GTEST_SKIP() << "mta-sts-reportd is not built yet: " << MTASTS_REPORTD_BIN;
  DeliveryWorld dw(DeliveryOptions{.tlsrpt = true});
  Postfix postfix(dw.dir() / "mta1", PostfixOptions{.relay_port = 0,
                                                    .main_cf = postfix_report_main_cf(dw),
                                                    .command_prefix = dw.exec_prefix()});
  SendmailHost sm(dw, dw.dir() / "mta2");
  const fs::path conf1 = dw.dir() / "mta1.conf", conf2 = dw.dir() / "mta2.conf";
  write_reportd_conf(conf1, dw, "postfix-log:" + (dw.dir() / "mta1" / "postfix" / "maillog").string(),
                     "/usr/sbin/sendmail -C " + postfix.config_dir().string() + " -i", dw.dir() / "mta1" / "state");
  write_reportd_conf(conf2, dw, sm.source(), sm.sendmail_command(), dw.dir() / "mta2" / "state");
  {  // the second host's own name
    std::string c = read_file(conf2);
    c.replace(c.find("host-id = mta1"), 14, "host-id = mta2");
    write_file(conf2, c);
  }
  Process r1({MTASTS_REPORTD_BIN, "-c", conf1.string()}, dw.dir() / "mta1.log");
  Process r2({MTASTS_REPORTD_BIN, "-c", conf2.string()}, dw.dir() / "mta2.log");
  const std::string day = utc_day();
  deliver_cases(postfix, tls_cases(), "f1");
  deliver_cases(*sm.sendmail, *sm.syslog, tls_cases(), "f2");
  ASSERT_EQ(utc_day(), day) << "the UTC day changed during the test: run again";
  // Both hosts' last case counted (in log order: then all of them are).
  const std::string shown = wait_shown(conf1, day, tls_cases().back().domain + ": 2 sessions");
  ASSERT_NE(shown.find(tls_cases().back().domain + ": 2 sessions"), std::string::npos)
      << shown << read_file(dw.dir() / "mta1.log") << read_file(dw.dir() / "mta2.log");
  const RunResult sent = send_day(conf2, day);
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;
  // The same day sent from the other host: claimed already, nothing more.
  const RunResult again = send_day(conf1, day);
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  expect_one_exact_report_per_domain_and_rua(
      dw, [&](const std::string& d) { return expected_summary(d, {Mta::postfix, Mta::sendmail}, dw); },
      read_file(dw.dir() / "mta1.log") + read_file(dw.dir() / "mta2.log"));
}

// The collector's bad days, with a real Postfix: killed with SIGKILL in the middle of the
// stream and started again, the log rotated by `postfix logrotate' (renamed, compressed,
// reopened), and (freeze_redis) Redis unreachable for a while (SIGSTOP: no answer, no error)
// while sessions are read. The day's counts and so the reports are still exactly the sessions
// delivered, each under its policy: nothing lost, nothing twice.
void fault_scenario(bool freeze_redis) {
  DeliveryWorld dw(DeliveryOptions{.tlsrpt = true});
  Postfix postfix(dw.dir(), PostfixOptions{.relay_port = 0,
                                           .main_cf = postfix_report_main_cf(dw),
                                           .command_prefix = dw.exec_prefix()});
  const fs::path conf = dw.dir() / "reportd.conf";
  write_reportd_conf(conf, dw, "postfix-log:" + (dw.dir() / "postfix" / "maillog").string(),
                     "/usr/sbin/sendmail -C " + postfix.config_dir().string() + " -i", dw.dir() / "state");
  const fs::path log = dw.dir() / "reportd.log";
  auto reportd = std::make_unique<Process>(std::vector<std::string>{MTASTS_REPORTD_BIN, "-c", conf.string()}, log);
  const std::string day = utc_day();
  const auto& cases = tls_cases();
  const auto part = [&](std::size_t from, std::size_t to) {
    return std::vector<TlsCase>(cases.begin() + static_cast<long>(from), cases.begin() + static_cast<long>(to));
  };
  // 1. Three cases counted, two more delivered, and the collector killed at once.
  deliver_cases(postfix, part(0, 3), "k");
  ASSERT_NE(wait_shown(conf, day, cases[2].domain + ": 1 session").find(cases[2].domain + ": 1 session"),
            std::string::npos)
      << read_file(log);
  deliver_cases(postfix, part(3, 5), "k");
  reportd->kill9();
  reportd = std::make_unique<Process>(std::vector<std::string>{MTASTS_REPORTD_BIN, "-c", conf.string()}, log);
  // 2. The log rotated between two cases.
  deliver_cases(postfix, part(5, 6), "k");
  const RunResult rotated =
      run(with_netns(dw, {"postfix", "-c", postfix.config_dir().string(), "logrotate"}), 60s);
  ASSERT_EQ(rotated.exit_code, 0) << rotated.out << rotated.err;
  deliver_cases(postfix, part(6, 8), "k");
  // 3. Redis frozen while two cases are delivered and a few flushes fail, then back.
  if (freeze_redis) {
    ASSERT_EQ(::kill(dw.world().redis().pid(), SIGSTOP), 0);
  }
  deliver_cases(postfix, part(8, 10), "k");
  if (freeze_redis) {
    std::this_thread::sleep_for(3s);  // flush-interval 1 s: flushes (and policy reads) that find no Redis
    ASSERT_EQ(::kill(dw.world().redis().pid(), SIGCONT), 0);
  }
  deliver_cases(postfix, part(10, cases.size()), "k");
  ASSERT_EQ(utc_day(), day) << "the UTC day changed during the test: run again";
  const std::string last = cases.back().domain + ": 1 session";
  ASSERT_NE(wait_shown(conf, day, last).find(last), std::string::npos) << read_file(log);
  const int status = reportd->stop(20s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  const RunResult sent = send_day(conf, day);
  ASSERT_EQ(sent.exit_code, 0) << sent.out << sent.err;
  expect_one_exact_report_per_domain_and_rua(
      dw, [&](const std::string& d) { return expected_summary(d, Mta::postfix, dw); }, read_file(log));
}

TEST(ReportdFaults, KilledMidStreamAndLogRotatedTheCountsStayExact) {
  std::string why;
  if (!DeliveryWorld::available(why)) GTEST_SKIP() << why;
  if (!fs::exists(MTASTS_REPORTD_BIN)) GTEST_SKIP() << "mta-sts-reportd is not built yet: " << MTASTS_REPORTD_BIN;
  fault_scenario(false);
}

// Sessions read while Redis does not answer keep their policy (before main 2726879 they were
// attached no-policy-found: mixed, offpolicy and testing reported as such).
TEST(ReportdFaults, RedisUnreachableForAWhileTheCountsAndPoliciesStayExact) {
  std::string why;
  if (!DeliveryWorld::available(why)) GTEST_SKIP() << why;
  if (!fs::exists(MTASTS_REPORTD_BIN)) GTEST_SKIP() << "mta-sts-reportd is not built yet: " << MTASTS_REPORTD_BIN;
  fault_scenario(true);
}

}  // namespace
}  // namespace mtasts::test::e2e
