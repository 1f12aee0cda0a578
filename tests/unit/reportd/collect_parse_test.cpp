// The Postfix 3.7 and Sendmail 8.17 parsers on real log lines: each RFC 8460 mapping, the
// non-final MX, reused connections, several recipients, report mail not counted.
#include <gtest/gtest.h>

#include <fstream>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "reportd/collect/log_line.hpp"
#include "reportd/collect/postfix.hpp"
#include "reportd/collect/sendmail.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/unit/reportd/collect_fixtures.hpp"

namespace mtasts::reportd {
namespace {

using tlsrpt::Result;
using test::FakeClock;

struct Seen {
  Result result;
  std::string mx;
  std::string ip;
};

std::multimap<std::string, Seen> by_domain(const std::vector<Outcome>& v) {
  std::multimap<std::string, Seen> m;
  for (const auto& o : v) m.emplace(o.session.domain, Seen{o.session.result, o.session.receiving_mx_hostname, o.session.receiving_ip});
  return m;
}

std::vector<Outcome> feed_all(LineParser& p, const std::string& text) {
  std::vector<Outcome> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) p.feed(line, out);
  return out;
}

class PostfixTest : public ::testing::Test {
 protected:
  FakeClock clock_{SysTime{Seconds{civil_to_unix(2026, 12, 8, 12, 0, 0)}}};
  ParserOptions options() {
    ParserOptions o;
    o.clock = &clock_;
    o.sender_address = "tlsrpt@sender.dlv.test";
    return o;
  }
};

TEST(LogLine, SplitsTheHeaderOfEachFormat) {
  FakeClock clk{SysTime{Seconds{civil_to_unix(2026, 12, 8, 12, 0, 0)}}};
  const std::int64_t t = civil_to_unix(2026, 12, 8, 0, 20, 40);
  struct Row { const char* line; std::int64_t time; };
  const Row rows[] = {
      {"Dec 08 00:20:40 mta postfix/smtp[15974]: hello", t},                    // maillog_file 3.7
      {"Dec  8 00:20:40 mta postfix/smtp[15974]: hello", t},                    // rsyslog traditional
      {"2026-12-08T00:20:40.123456+00:00 mta postfix/smtp[15974]: hello", t},   // RFC 3339
      {"2026-12-08T01:20:40+01:00 mta postfix/smtp[15974]: hello", t},
      {"2026-12-08T00:20:40Z mta postfix/smtp[15974]: hello", t},
      // A December stamp read in January belongs to the year before.
  };
  for (const auto& r : rows) {
    const auto l = split_log_line(r.line, &clk, 0);
    ASSERT_TRUE(l) << r.line;
    EXPECT_EQ(l->time, r.time) << r.line;
    EXPECT_EQ(l->program, "postfix/smtp");
    EXPECT_EQ(l->pid, 15974u);
    EXPECT_EQ(l->message, "hello");
  }
  FakeClock january{SysTime{Seconds{civil_to_unix(2027, 1, 1, 0, 5, 0)}}};
  EXPECT_EQ(split_log_line("Dec 31 23:59:59 mta postfix/smtp[1]: x", &january, 0)->time,
            civil_to_unix(2026, 12, 31, 23, 59, 59));
  for (const char* bad : {"", "Dec 08 00:20:40", "Dec 08 00:20:40 mta", "Dec 08 00:20:40 mta postfix/smtp: x",
                          "Dec 08 00:20:40 mta postfix/smtp[x]: x", "Dex 08 00:20:40 mta p[1]: x",
                          "Dec 08 25:20:40 mta p[1]: x", "2026-13-08T00:20:40Z mta p[1]: x",
                          "2026-12-08T00:20:40 mta p[1]: x", "Dec 08 00:20:40 mta p[]: x",
                          "Dec 08 00:20:40 mta p[99999999999]: x"}) {
    EXPECT_FALSE(split_log_line(bad, &clk, 0)) << bad;
  }
}

TEST_F(PostfixTest, MapsEachOutcomeOfTheRealLog) {
  PostfixParser p(options());
  const auto out = feed_all(p, fixtures::postfix_log());
  const auto m = by_domain(out);
  struct Row { const char* domain; Result result; const char* mx; };
  const Row rows[] = {
      {"good.dlv.test", Result::success, "mx.good.dlv.test"},
      {"wrongname.dlv.test", Result::certificate_host_mismatch, "mx.wrongname.dlv.test"},
      {"expired.dlv.test", Result::certificate_expired, "mx.expired.dlv.test"},
      {"selfsigned.dlv.test", Result::certificate_not_trusted, "mx.selfsigned.dlv.test"},
      {"untrusted.dlv.test", Result::certificate_not_trusted, "mx.untrusted.dlv.test"},
      {"notls.dlv.test", Result::starttls_not_supported, "mx.notls.dlv.test"},
      {"offpolicy.dlv.test", Result::certificate_host_mismatch, "mx.elsewhere.dlv.test"},
      {"testing.dlv.test", Result::success, "mx.testing.dlv.test"},
      {"nosts.dlv.test", Result::success, "mx.nosts.dlv.test"},
      // Delivered in clear (no TLS line for that connection).
      {"nopolicy.dlv.test", Result::starttls_not_supported, "mx.nopolicy.dlv.test"},
  };
  for (const auto& r : rows) {
    ASSERT_EQ(m.count(r.domain), 1u) << r.domain;
    const Seen& s = m.find(r.domain)->second;
    EXPECT_EQ(s.result, r.result) << r.domain << ": " << tlsrpt::to_string(s.result);
    EXPECT_EQ(s.mx, r.mx) << r.domain;
    EXPECT_FALSE(s.ip.empty()) << r.domain;
  }
  for (const auto& o : out) {
    EXPECT_EQ(tlsrpt::day_of(o.session.time), "2026-12-08");
    if (o.session.domain == "expired.dlv.test") {
      EXPECT_EQ(o.session.additional_information, "certificate has expired");
      EXPECT_EQ(o.session.failure_reason_code, "4.7.5");
      EXPECT_EQ(o.tls, TlsSeen::untrusted);
    }
  }
  EXPECT_EQ(p.stats().malformed, 0u);
}

TEST_F(PostfixTest, AFailureAtANonFinalMxIsASessionOfItsOwn) {
  PostfixParser p(options());
  const auto m = by_domain(feed_all(p, fixtures::postfix_log()));
  ASSERT_EQ(m.count("mixed.dlv.test"), 2u);
  auto [a, b] = m.equal_range("mixed.dlv.test");
  std::map<std::string, Seen> per_mx;
  for (auto it = a; it != b; ++it) per_mx.emplace(it->second.mx, it->second);
  ASSERT_EQ(per_mx.count("mx1.mixed.dlv.test"), 1u);
  ASSERT_EQ(per_mx.count("mx2.mixed.dlv.test"), 1u);
  EXPECT_EQ(per_mx.at("mx1.mixed.dlv.test").result, Result::certificate_host_mismatch);
  EXPECT_EQ(per_mx.at("mx1.mixed.dlv.test").ip, "127.25.0.18");
  EXPECT_EQ(per_mx.at("mx2.mixed.dlv.test").result, Result::success);
}

TEST_F(PostfixTest, AnInterleavedProcessDoesNotStealTheAttempt) {
  // Two smtp processes at once: the non-final attempt waits for its own process's status line.
  const std::string log =
      "Dec 08 00:23:58 mta postfix/smtp[100]: server certificate verification failed for mx1.a.test[10.0.0.1]:25: certificate has expired\n"
      "Dec 08 00:23:58 mta postfix/smtp[100]: Untrusted TLS connection established to mx1.a.test[10.0.0.1]:25: TLSv1.3 with cipher X (256/256 bits)\n"
      "Dec 08 00:23:58 mta postfix/smtp[200]: Verified TLS connection established to mx.b.test[10.0.0.9]:25: TLSv1.3 with cipher X (256/256 bits)\n"
      "Dec 08 00:23:58 mta postfix/smtp[100]: AAAAA11111: Server certificate not verified\n"
      "Dec 08 00:23:58 mta postfix/smtp[200]: BBBBB22222: to=<x@b.test>, relay=mx.b.test[10.0.0.9]:25, delay=0.01, delays=0/0/0.01/0, dsn=2.0.0, status=sent (250 ok)\n"
      "Dec 08 00:23:59 mta postfix/smtp[100]: AAAAA11111: to=<x@a.test>, relay=mx2.a.test[10.0.0.2]:25, delay=1, delays=0/0/1/0, dsn=4.4.1, status=deferred (connect to mx2.a.test[10.0.0.2]:25: Connection refused)\n";
  PostfixParser p(options());
  const auto m = by_domain(feed_all(p, log));
  ASSERT_EQ(m.count("a.test"), 1u);  // mx2 was never reached: no TLS session there
  EXPECT_EQ(m.find("a.test")->second.result, Result::certificate_expired);
  EXPECT_EQ(m.find("a.test")->second.mx, "mx1.a.test");
  ASSERT_EQ(m.count("b.test"), 1u);
  EXPECT_EQ(m.find("b.test")->second.result, Result::success);
}

TEST_F(PostfixTest, AReusedConnectionIsNotASession) {
  PostfixParser p(options());
  const auto out = feed_all(p, fixtures::postfix_reuse_log());
  // Three messages to good.dlv.test, one TLS handshake (conn_use=2 and 3 ride on it).
  ASSERT_EQ(by_domain(out).count("good.dlv.test"), 1u);
  EXPECT_EQ(out.front().session.result, Result::success);
  EXPECT_EQ(p.stats().reused, 2u);
}

TEST_F(PostfixTest, SeveralRecipientsOfOneDomainOverOneConnectionAreOneSession) {
  const std::string log =
      "Dec 08 00:23:58 mta postfix/smtp[100]: Verified TLS connection established to mx.a.test[10.0.0.1]:25: TLSv1.3 with cipher X (256/256 bits)\n"
      "Dec 08 00:23:58 mta postfix/smtp[100]: AAAAA11111: to=<x@a.test>, relay=mx.a.test[10.0.0.1]:25, delay=0.01, delays=0/0/0.01/0, dsn=2.0.0, status=sent (250 ok)\n"
      "Dec 08 00:23:58 mta postfix/smtp[100]: AAAAA11111: to=<y@A.test>, relay=mx.a.test[10.0.0.1]:25, delay=0.01, delays=0/0/0.01/0, dsn=2.0.0, status=sent (250 ok)\n"
      "Dec 08 00:23:58 mta postfix/smtp[100]: AAAAA11111: to=<z@a.test>, orig_to=<z, b@a.test>, relay=mx.a.test[10.0.0.1]:25, delay=0.01, delays=0/0/0.01/0, dsn=5.1.1, status=bounced (host mx.a.test[10.0.0.1] said: 550 no such user (in reply to RCPT TO command))\n"
      // The same process, a later message, a new connection: a second session.
      "Dec 08 00:25:00 mta postfix/smtp[100]: Verified TLS connection established to mx.a.test[10.0.0.1]:25: TLSv1.3 with cipher X (256/256 bits)\n"
      "Dec 08 00:25:00 mta postfix/smtp[100]: CCCCC33333: to=<x@a.test>, relay=mx.a.test[10.0.0.1]:25, delay=0.01, delays=0/0/0.01/0, dsn=2.0.0, status=sent (250 ok)\n";
  PostfixParser p(options());
  const auto out = feed_all(p, log);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].session.domain, "a.test");
  EXPECT_EQ(out[0].session.result, Result::success);
  EXPECT_EQ(out[1].session.result, Result::success);
}

TEST_F(PostfixTest, ReportMailIsNotCountedWhateverTheOrderOfRestarts) {
  std::string log = fixtures::postfix_log();
  // The report sender's message (the fixture's sender stands in for `sender-address`).
  ParserOptions o = options();
  o.sender_address = "Sender@sender.dlv.test";  // compared without case
  PostfixParser p(o);
  EXPECT_TRUE(feed_all(p, log).empty());
  EXPECT_GT(p.stats().report_mail, 9u);

  // A restart between the qmgr line and the delivery: the state saved with the position
  // still knows the queue id.
  std::istringstream in(log);
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  std::size_t cut = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find("2EBBAA72AEB: from=<") != std::string::npos || lines[i].find(": from=<") != std::string::npos) {
      cut = i + 1;
      break;
    }
  }
  ASSERT_GT(cut, 0u);
  PostfixParser first(o);
  std::vector<Outcome> out;
  for (std::size_t i = 0; i < cut; ++i) first.feed(lines[i], out);
  const std::string state = first.save_state();
  PostfixParser second(o);
  second.restore_state(state);
  for (std::size_t i = cut; i < lines.size(); ++i) second.feed(lines[i], out);
  EXPECT_TRUE(out.empty()) << out.size() << " sessions of report mail counted after the restart";
  // Without the saved state the first delivery would have been counted: the test can fail.
  PostfixParser amnesiac(o);
  std::vector<Outcome> counted;
  for (std::size_t i = cut; i < lines.size(); ++i) amnesiac.feed(lines[i], counted);
  EXPECT_FALSE(counted.empty());
}

TEST_F(PostfixTest, HostileLinesAreCountedNotTrusted) {
  PostfixParser p(options());
  std::vector<Outcome> out;
  for (const char* l : {
           "Dec 08 00:23:58 mta postfix/smtp[1]: AAAAA11111: to=<x@[127.0.0.1]>, relay=a[1.2.3.4]:25, delay=0, delays=0, dsn=2.0.0, status=sent (ok)",
           "Dec 08 00:23:58 mta postfix/smtp[1]: AAAAA11111: to=<x@bad_domain!>, relay=a[1.2.3.4]:25, delay=0, delays=0, dsn=2.0.0, status=sent (ok)",
           "Dec 08 00:23:58 mta postfix/smtp[1]: AAAAA11111: to=<x@a.test>, relay=a[1.2.3.4:25, status=sent (ok)",
           "Dec 08 00:23:58 mta postfix/smtp[1]: AAAAA11111: to=<x@a.test",
           "Dec 08 00:23:58 mta postfix/smtp[1]: Verified TLS connection established to nowhere: x",
           "Dec 08 00:23:58 mta postfix/smtp[1]: server certificate verification failed for x[1.2.3.4]:25",
           "garbage postfix/smtp[ line",
       }) {
    p.feed(l, out);
  }
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(p.stats().malformed, 7u);
}

TEST(VerificationResult, EachOpenSslReasonHasItsResultType) {
  struct Row { const char* reason; Result r; };
  const Row rows[] = {
      {"num=62:hostname mismatch", Result::certificate_host_mismatch},
      {"certificate has expired", Result::certificate_expired},
      {"num=10:certificate has expired", Result::certificate_expired},
      {"self-signed certificate", Result::certificate_not_trusted},
      {"untrusted issuer /CN=MTA-STS Untrusted Test CA", Result::certificate_not_trusted},
      {"not trusted by local or TLSA policy", Result::certificate_not_trusted},
      {"num=20:unable to get local issuer certificate", Result::certificate_not_trusted},
      {"certificate not yet valid", Result::validation_failure},
      {"not designated for use as a server certificate", Result::validation_failure},
      {"num=7:certificate signature failure", Result::validation_failure},
  };
  for (const auto& r : rows) EXPECT_EQ(verification_result(r.reason), r.r) << r.reason;
}

// ---- Sendmail --------------------------------------------------------------------------

class SendmailTest : public PostfixTest {};

TEST_F(SendmailTest, MapsEachOutcomeOfTheRealLog) {
  const std::string log = fixtures::sendmail_log();
  ASSERT_FALSE(log.empty());
  SendmailParser p(options());
  const auto m = by_domain(feed_all(p, log));
  EXPECT_EQ(m.count("good.dlv.test"), 1u);
  if (m.count("good.dlv.test")) {
    EXPECT_EQ(m.find("good.dlv.test")->second.result, Result::success);
  }
}

TEST_F(SendmailTest, MapsStartTlsLinesAndDeliveries) {
  const std::string log =
      "Dec  8 00:23:58 mta sm-mta[300]: 0B80NwAa000300: from=<alice@sender.test>, size=300, class=0, nrcpts=2, msgid=<1@x>, proto=ESMTP, daemon=MTA, relay=localhost [127.0.0.1]\n"
      "Dec  8 00:23:58 mta sm-mta[301]: STARTTLS=client, relay=mx1.a.test, version=TLSv1.3, verify=FAIL, cipher=TLS_AES_256_GCM_SHA384, bits=256/256\n"
      "Dec  8 00:23:58 mta sm-mta[301]: STARTTLS=client, cert-subject=/CN=mx1.a.test, cert-issuer=/CN=CA, verifymsg=certificate has expired\n"
      "Dec  8 00:23:58 mta sm-mta[301]: 0B80NwAa000300: ruleset=tls_server, arg1=FAIL, relay=mx1.a.test, reject=403 4.7.0 TLS handshake failed.\n"
      "Dec  8 00:23:58 mta sm-mta[301]: STARTTLS=client, relay=mx2.a.test, version=TLSv1.3, verify=OK, cipher=TLS_AES_256_GCM_SHA384, bits=256/256\n"
      "Dec  8 00:23:58 mta sm-mta[301]: 0B80NwAa000300: to=<x@a.test>,<y@a.test>, ctladdr=<alice@sender.test> (0/0), delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=120300, relay=mx2.a.test. [10.0.0.2], dsn=2.0.0, stat=Sent (ok)\n"
      // No STARTTLS offered, our policy refused: starttls-not-supported.
      "Dec  8 00:23:59 mta sm-mta[302]: 0B80NwAa000301: ruleset=tls_server, arg1=NONE, relay=mx.notls.test, reject=403 4.7.0 TLS handshake failed.\n"
      "Dec  8 00:23:59 mta sm-mta[302]: 0B80NwAa000301: to=<x@notls.test>, delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=120300, relay=mx.notls.test. [10.0.0.3], dsn=4.7.0, stat=Deferred: 403 4.7.0 TLS handshake failed.\n"
      // A cached connection of process 301 to mx2.a.test: no new STARTTLS line, not a session.
      "Dec  8 00:24:00 mta sm-mta[301]: 0B80NwAa000302: to=<z@a.test>, delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=120300, relay=mx2.a.test. [10.0.0.2], dsn=2.0.0, stat=Sent (ok)\n"
      // Delivered in clear.
      "Dec  8 00:24:01 mta sm-mta[303]: 0B80NwAa000303: to=<x@clear.test>, delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=120300, relay=mx.clear.test. [10.0.0.4], dsn=2.0.0, stat=Sent (ok)\n"
      // Local delivery is not SMTP.
      "Dec  8 00:24:01 mta sm-mta[304]: 0B80NwAa000304: to=<root@local.test>, delay=00:00:00, mailer=local, pri=120300, dsn=2.0.0, stat=Sent\n";
  SendmailParser p(options());
  const auto out = feed_all(p, log);
  const auto m = by_domain(out);
  ASSERT_EQ(m.count("a.test"), 2u);
  std::map<std::string, Seen> per_mx;
  for (auto [a, b] = m.equal_range("a.test"); a != b; ++a) per_mx.emplace(a->second.mx, a->second);
  EXPECT_EQ(per_mx.at("mx1.a.test").result, Result::certificate_expired);
  EXPECT_EQ(per_mx.at("mx2.a.test").result, Result::success);
  EXPECT_EQ(per_mx.at("mx2.a.test").ip, "10.0.0.2");
  ASSERT_EQ(m.count("notls.test"), 1u);
  EXPECT_EQ(m.find("notls.test")->second.result, Result::starttls_not_supported);
  ASSERT_EQ(m.count("clear.test"), 1u);
  EXPECT_EQ(m.find("clear.test")->second.result, Result::starttls_not_supported);
  EXPECT_EQ(m.count("local.test"), 0u);
  EXPECT_EQ(p.stats().reused, 1u);

  ParserOptions o = options();
  o.sender_address = "ALICE@sender.test";
  SendmailParser reports(o);
  const auto none = by_domain(feed_all(reports, log));
  EXPECT_EQ(none.count("a.test"), 0u);
  EXPECT_EQ(none.count("notls.test"), 1u);
}

}  // namespace
}  // namespace mtasts::reportd

namespace mtasts::reportd {
namespace {

// The world's fixtures come with the truth (sessions.tsv): for every session of every MTA,
// what its log lets a collector say. Each parser must say exactly that, session for session.
struct Truth {
  std::string domain, mx, ip, result;
  friend auto operator<=>(const Truth&, const Truth&) = default;
  friend void PrintTo(const Truth& t, std::ostream* os) {
    *os << t.domain << " " << t.mx << " " << t.ip << " " << t.result;
  }
};

std::multiset<Truth> truth_of(const std::string& mta) {
  std::multiset<Truth> out;
  std::istringstream in(fixtures::read(std::string(MTASTS_FIXTURES) + "/sessions.tsv"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    std::istringstream cols(line);
    std::string c;
    while (std::getline(cols, c, '\t')) f.push_back(c);
    if (f.size() < 12 || f[0] != mta || f[11] == "delivered-reused-connection") continue;
    // log_result: what the log lets a collector say. Without that column (an older fixture):
    // the MTA does not check names for testing mode, and Sendmail at LogLevel 9 does not say
    // why a certificate failed.
    std::string said = f.size() >= 13 ? f[12] : f[10];
    if (f.size() < 13 && f[5] == "testing") said = "success";
    if (f.size() < 13 && mta == "sendmail" && said == "certificate-expired") said = "certificate-not-trusted";
    out.insert(Truth{f[3], f[7], f[8], said});
  }
  return out;
}

template <class Parser>
std::multiset<Truth> parsed(const std::string& file, bool with_ip) {
  test::FakeClock clock{SysTime{Seconds{civil_to_unix(2026, 12, 8, 12, 0, 0)}}};
  ParserOptions o;
  o.clock = &clock;
  o.sender_address = "tlsrpt@reports.dlv.test";
  Parser p(o);
  std::multiset<Truth> out;
  for (const auto& oc : feed_all(p, fixtures::read(std::string(MTASTS_FIXTURES) + "/" + file))) {
    out.insert(Truth{oc.session.domain, oc.session.receiving_mx_hostname, with_ip ? oc.session.receiving_ip : "",
                     tlsrpt::to_string(oc.session.result)});
  }
  return out;
}

std::multiset<Truth> without_ip(std::multiset<Truth> t) {
  std::multiset<Truth> out;
  for (auto x : t) {
    x.ip.clear();
    out.insert(x);
  }
  return out;
}

TEST(Fixtures, EachPostfixSessionOfTheWorldIsMappedAsItsTruthSays) {
  if (!std::filesystem::exists(std::string(MTASTS_FIXTURES) + "/sessions.tsv")) GTEST_SKIP() << "no fixtures";
  EXPECT_EQ(parsed<PostfixParser>("postfix-3.7.log", true), truth_of("postfix"));
  EXPECT_EQ(parsed<PostfixParser>("postfix-3.7-reuse.log", true), truth_of("postfix-reuse"));
}

TEST(Fixtures, EachSendmailSessionOfTheWorldIsMappedAsItsTruthSays) {
  if (!std::filesystem::exists(std::string(MTASTS_FIXTURES) + "/sessions.tsv")) GTEST_SKIP() << "no fixtures";
  EXPECT_EQ(without_ip(parsed<SendmailParser>("sendmail-8.17.log", false)), without_ip(truth_of("sendmail")));
  EXPECT_EQ(without_ip(parsed<SendmailParser>("sendmail-8.17-loglevel14.log", false)),
            without_ip(truth_of("sendmail-loglevel14")));
}

}  // namespace
}  // namespace mtasts::reportd

namespace mtasts::reportd {
namespace {

TEST(NotAnMx, ContentFiltersSubmissionRelaysAndTheMspAreNotSessions) {
  test::FakeClock clock{SysTime{Seconds{civil_to_unix(2026, 12, 8, 12, 0, 0)}}};
  ParserOptions o;
  o.clock = &clock;
  PostfixParser pf(o);
  std::vector<Outcome> out;
  // Debian's amavis content filter (smtp-amavis on 127.0.0.1:10024), in clear.
  pf.feed("Dec 08 00:23:58 mta postfix/smtp-amavis[77]: AAAAA11111: to=<x@a.test>, relay=127.0.0.1[127.0.0.1]:10024, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 from MTA)", out);
  // smtpd's lines through the journal (no "/smtp[" filter there) are not the client's.
  pf.feed_record(1796689240, "postfix/smtpd", 78, "AAAAA11111: client=localhost[127.0.0.1]", out);
  pf.feed_record(1796689240, "postfix/smtpd", 78,
                 "NOQUEUE: reject: RCPT from x[10.0.0.1]: 554 5.7.1 <a@b.test>: Relay access denied; from=<a@c.test> to=<a@b.test> proto=ESMTP helo=<x> (in reply to RCPT TO command)",
                 out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(pf.stats().not_mx, 1u);

  SendmailParser sm(o);
  sm.feed("Dec  8 00:24:01 mta sm-msp-queue[90]: 0B80NwAa000390: to=<x@a.test>, ctladdr=root (0/0), delay=00:00:00, xdelay=00:00:00, mailer=relay, pri=30000, relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, stat=Sent (0B80NwAa000391 Message accepted for delivery)", out);
  sm.feed("Dec  8 00:24:01 mta sm-mta[91]: 0B80NwAa000391: to=<x@a.test>, delay=00:00:00, xdelay=00:00:00, mailer=relay, pri=30000, relay=smarthost.example. [10.0.0.5], dsn=2.0.0, stat=Sent (ok)", out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(sm.stats().not_mx, 1u);
}

}  // namespace
}  // namespace mtasts::reportd

namespace mtasts::reportd {
namespace {

// A restart (save_state, a new parser, restore_state) between any two lines of the real logs
// gives exactly the sessions of an uninterrupted read.
template <class Parser>
void every_cut_point(const std::string& text) {
  test::FakeClock clock{SysTime{Seconds{civil_to_unix(2026, 12, 8, 12, 0, 0)}}};
  ParserOptions o;
  o.clock = &clock;
  std::vector<std::string> lines;
  {
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l)) lines.push_back(l);
  }
  ASSERT_FALSE(lines.empty());
  const auto key = [](const std::vector<Outcome>& v) {
    std::multiset<std::string> m;
    for (const auto& x : v)
      m.insert(x.session.domain + " " + x.session.receiving_mx_hostname + " " + x.session.receiving_ip + " " +
               tlsrpt::to_string(x.session.result) + " " + x.session.additional_information);
    return m;
  };
  Parser whole(o);
  std::vector<Outcome> expected;
  for (const auto& l : lines) whole.feed(l, expected);
  for (std::size_t cut = 0; cut <= lines.size(); ++cut) {
    Parser first(o);
    std::vector<Outcome> out;
    for (std::size_t i = 0; i < cut; ++i) first.feed(lines[i], out);
    Parser second(o);
    second.restore_state(first.save_state());
    for (std::size_t i = cut; i < lines.size(); ++i) second.feed(lines[i], out);
    EXPECT_EQ(key(out), key(expected)) << "restart before line " << cut << ": " << (cut < lines.size() ? lines[cut] : "");
  }
}

TEST(Restart, AnyCutPointOfThePostfixLogsGivesTheSameSessions) {
  every_cut_point<PostfixParser>(fixtures::postfix_log());
  every_cut_point<PostfixParser>(fixtures::postfix_reuse_log());
}

TEST(Restart, AnyCutPointOfTheSendmailLogsGivesTheSameSessions) {
  every_cut_point<SendmailParser>(fixtures::sendmail_log());
  every_cut_point<SendmailParser>(fixtures::fixture("sendmail-8.17-loglevel14.log"));
}

}  // namespace
}  // namespace mtasts::reportd

namespace mtasts::reportd {
namespace {

std::string clear_delivery(int n) {
  return "Dec 08 00:23:58 mta postfix/smtp[" + std::to_string(500 + n) + "]: AAAA" + std::to_string(10000 + n) +
         ": to=<x@c" + std::to_string(n) + ".test>, relay=mx.c" + std::to_string(n) +
         ".test[10.0.0.7]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 ok)\n";
}

TEST(TlsLogLevelZero, DeliveriesInClearAreOnlyCountedOnceTheLogShowsTlsLines) {
  test::FakeClock clock{SysTime{Seconds{civil_to_unix(2026, 12, 8, 12, 0, 0)}}};
  ParserOptions o;
  o.clock = &clock;
  // smtp_tls_loglevel = 0: no TLS line ever. Nothing is claimed to be in clear.
  PostfixParser zero(o);
  std::string log;
  for (int i = 0; i < 1100; ++i) log += clear_delivery(i);
  EXPECT_TRUE(feed_all(zero, log).empty());
  EXPECT_EQ(zero.stats().unconfirmed_clear, 100u);

  // A log with TLS lines: the deliveries in clear seen before the first one are counted
  // then, also across a restart in between.
  PostfixParser first(o);
  std::vector<Outcome> out;
  for (int i = 0; i < 3; ++i) first.feed(clear_delivery(i), out);
  EXPECT_TRUE(out.empty());
  PostfixParser second(o);
  second.restore_state(first.save_state());
  second.feed("Dec 08 00:23:59 mta postfix/smtp[9]: Verified TLS connection established to mx.a.test[10.0.0.1]:25: TLSv1.3 with cipher X (256/256 bits)", out);
  ASSERT_EQ(out.size(), 3u);
  for (const auto& x : out) EXPECT_EQ(x.session.result, Result::starttls_not_supported);
  EXPECT_EQ(out[0].session.domain, "c0.test");
  second.feed(clear_delivery(7), out);
  EXPECT_EQ(out.size(), 4u);  // from now on at once
}

}  // namespace
}  // namespace mtasts::reportd

namespace mtasts::reportd {
namespace {

TEST(TlsLogLevelZero, SendmailBelowLogLevel9ClaimsNothingInClear) {
  test::FakeClock clock{SysTime{Seconds{civil_to_unix(2026, 12, 8, 12, 0, 0)}}};
  ParserOptions o;
  o.clock = &clock;
  const auto clear = [](int n) {
    return "Dec  8 00:24:01 mta sm-mta[" + std::to_string(700 + n) + "]: 0B80NwAa" + std::to_string(100000 + n) +
           ": to=<x@c" + std::to_string(n) + ".test>, delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=120300, relay=mx.c" +
           std::to_string(n) + ".test. [10.0.0.4], dsn=2.0.0, stat=Sent (ok)\n";
  };
  SendmailParser quiet(o);
  std::string log;
  for (int i = 0; i < 1005; ++i) log += clear(i);
  EXPECT_TRUE(feed_all(quiet, log).empty());
  EXPECT_EQ(quiet.stats().unconfirmed_clear, 5u);

  SendmailParser first(o);
  std::vector<Outcome> out;
  first.feed(clear(1), out);
  SendmailParser second(o);
  second.restore_state(first.save_state());
  second.feed("Dec  8 00:25:33 mta sm-mta[2467]: STARTTLS=client, relay=mx.good.dlv.test., version=TLSv1.3, verify=OK, cipher=TLS_AES_256_GCM_SHA384, bits=256/256", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].session.domain, "c1.test");
  EXPECT_EQ(out[0].session.result, Result::starttls_not_supported);
}

}  // namespace
}  // namespace mtasts::reportd
