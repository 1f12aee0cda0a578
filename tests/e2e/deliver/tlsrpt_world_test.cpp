// The TLS-RPT reporting infrastructure of the delivery world (issue 20), shown working with
// the real pieces before mta-sts-reportd uses it: the `_smtp._tls' records in the world's DNS,
// the SMTP sink (the MX of reports.dlv.test) reached by a real Postfix, the HTTPS sink keeping
// a POST, real OpenDKIM signing on Postfix's submission path (mail submitted with Postfix's
// sendmail command arrives signed and verifies against the world's DNS; altered, it does
// not), and the report validator on what the sinks stored.
#include <gtest/gtest.h>

#include "tests/e2e/deliver/delivery_world.hpp"
#include "tests/e2e/deliver/tls_cases.hpp"
#include "tests/e2e/milter/mail_env.hpp"
#include "tests/support/opendkim.hpp"

namespace mtasts::test::e2e {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct TlsRptWorld : ::testing::Test {
  static inline std::unique_ptr<DeliveryWorld> dw;
  static inline std::unique_ptr<Postfix> postfix;
  static inline std::string skip_reason;
  static inline std::string setup_error;

  static void SetUpTestSuite() {
    if (!DeliveryWorld::available(skip_reason)) return;
    try {
      dw = std::make_unique<DeliveryWorld>(DeliveryOptions{.tlsrpt = true});
      OpenDkim& dkim = dw->start_dkim();
      postfix = std::make_unique<Postfix>(dw->dir(), PostfixOptions{.relay_port = 0,
                                                                    .milter = dkim.milter_socket(),
                                                                    .main_cf = postfix_report_main_cf(*dw),
                                                                    .command_prefix = dw->exec_prefix()});
    } catch (const std::exception& e) {
      setup_error = e.what();
      TearDownTestSuite();
    }
  }
  static void TearDownTestSuite() {
    postfix.reset();
    dw.reset();
  }
  void SetUp() override {
    if (!skip_reason.empty()) GTEST_SKIP() << skip_reason;
    ASSERT_TRUE(setup_error.empty()) << setup_error;
  }
  std::string diag() const {
    return "--- maillog:\n" + postfix->maillog() + "--- opendkim:\n" + dw->start_dkim().log() + "--- report MX:\n" +
           dw->report_mx().log();
  }
  // The validator's verdict on a file: {exit code, output}.
  static RunResult validate(const fs::path& file) {
    return run({"/usr/bin/python3", (source_dir() / "tests/support/validate_tlsrpt.py").string(), file.string()}, 60s);
  }
  // A report mail as RFC 8460 section 5.3 has it, carrying the hand-written example report.
  static std::string report_mail(const std::string& token) {
    const std::string json = read_file(source_dir() / "tests/fixtures/reportd/example-report.json");
    const RunResult gz = run({"sh", "-c", "gzip -n | base64 -w 76"}, 30s, json);
    std::string m =
        "From: TLS reports <tlsrpt-noreply@sender.dlv.test>\r\n"
        "To: " + DeliveryWorld::report_mailbox() + "\r\n"
        "Subject: Report Domain: mixed.dlv.test Submitter: sender.dlv.test Report-ID: <" + token + "@sender.dlv.test>\r\n"
        "Message-ID: <" + token + "@sender.dlv.test>\r\n"
        "Date: Tue, 08 Dec 2026 00:30:00 +0000\r\n"
        "TLS-Report-Domain: mixed.dlv.test\r\nTLS-Report-Submitter: sender.dlv.test\r\n"
        "TLS-Required: No\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b1\"\r\n\r\n"
        "--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThis is an aggregate TLS report.\r\n"
        "--b1\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n"
        "Content-Disposition: attachment;\r\n filename=\"sender.dlv.test!mixed.dlv.test!1796601600!1796687999!" +
        token + ".json.gz\"\r\n\r\n";
    for (const auto& l : lines_of(gz.out)) m += l + "\r\n";
    m += "--b1--\r\n";
    return m;
  }
};

TEST_F(TlsRptWorld, EveryDomainPublishesTheTlsRptRecordAndTheSinksAreReachable) {
  for (const std::string& domain : std::vector<std::string>{dlv("good"), dlv("nopolicy"), dlv("mixed"), dlv("sender")}) {
    const RunResult r = run({"drill", "@" + dw->world().ip(), "_smtp._tls." + domain, "TXT"}, 10s);
    EXPECT_NE(r.out.find("\"" + DeliveryWorld::tlsrpt_record() + "\""), std::string::npos) << domain << "\n" << r.out;
  }
  EXPECT_EQ(DeliveryWorld::tlsrpt_record(),
            "v=TLSRPTv1; rua=mailto:tlsrpt@reports.dlv.test,https://reports.dlv.test/tlsrpt");
  // The HTTPS sink, by name through the namespace's resolver, over TLS verified with the test
  // CA: a POST of the example report gzip-compressed, stored with its headers.
  const fs::path gz = dw->dir() / "example.json.gz";
  ASSERT_EQ(run({"sh", "-c",
                 "gzip -n < '" + (source_dir() / "tests/fixtures/reportd/example-report.json").string() + "' > '" +
                     gz.string() + "'"},
                30s)
                .exit_code,
            0);
  std::vector<std::string> curl = dw->exec_prefix();
  curl.insert(curl.end(), {"curl", "-sS", "--fail", "--cacert", dw->world().ca_file().string(), "-H",
                           "Content-Type: application/tlsrpt+gzip", "--data-binary", "@" + gz.string(),
                           DeliveryWorld::report_url()});
  const RunResult posted = run(curl, 30s);
  ASSERT_EQ(posted.exit_code, 0) << posted.out << posted.err << dw->report_https().log();
  const auto requests = dw->report_https().wait_requests(1, 10s);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/tlsrpt");
  EXPECT_EQ(requests[0].headers.at("content-type"), "application/tlsrpt+gzip");
  EXPECT_EQ(requests[0].body, read_file(gz));
  const RunResult v = validate(requests[0].file);
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  // A refusing sink (a retry test's tool): the reply carries the status, nothing is stored.
  dw->report_https().set_status(503);
  EXPECT_NE(run(curl, 30s).exit_code, 0);
  dw->report_https().set_status(200);
  EXPECT_EQ(dw->report_https().requests().size(), 1u);
}

// RFC 8460 section 3: report mail is DKIM-signed, here by real OpenDKIM on Postfix's
// submission path (non_smtpd_milters: /usr/sbin/sendmail -> pickup -> cleanup), and arrives at
// the report MX (the SMTP sink) as it would at a report consumer, who verifies it against the
// world's DNS.
TEST_F(TlsRptWorld, ReportMailSubmittedThroughPostfixArrivesDkimSignedAndVerifies) {
  const RunResult r = postfix->sendmail("tlsrpt-noreply@sender.dlv.test", {DeliveryWorld::report_mailbox()},
                                        report_mail("dkim1"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << diag();
  const auto m = dw->report_mx().wait_message("<dkim1@sender.dlv.test>", 30s);
  ASSERT_TRUE(m.has_value()) << diag();
  const auto sigs = header_values(*m, "DKIM-Signature");
  ASSERT_EQ(sigs.size(), 1u) << *m;
  EXPECT_NE(sigs[0].find("d=sender.dlv.test"), std::string::npos) << sigs[0];
  EXPECT_NE(sigs[0].find("s=tlsrpt"), std::string::npos) << sigs[0];
  const RunResult ok = dkim_verify(*m, dw->exec_prefix());
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err << *m;
  EXPECT_NE(ok.out.find("signature ok"), std::string::npos) << ok.out << ok.err;
  // The verifier can fail: one byte of the report changed after signing.
  std::string altered = *m;
  const auto at = altered.find("This is an aggregate TLS report.");
  ASSERT_NE(at, std::string::npos);
  altered[at] = 't';
  const RunResult bad = dkim_verify(altered, dw->exec_prefix());
  EXPECT_NE(bad.exit_code, 0) << bad.out << bad.err;
  // The stored mail is a valid report mail (the sink keeps it as received, plus its first line).
  const fs::path file = dw->dir() / "dkim1.eml";
  write_file(file, m->substr(m->find('\n') + 1));
  const RunResult v = validate(file);
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

}  // namespace
}  // namespace mtasts::test::e2e
