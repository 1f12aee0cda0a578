// MTA-STS enforced at delivery by a real Sendmail 8.17.1.9 (Debian 12's binaries, built with
// _FFR_MTA_STS and _FFR_TLS_ALTNAMES) configured with the shipped etc/sendmail-tlsmap.mc
// (FEATURE(`sts') pointed at mta-sts-tlsmap, the SMTP connection cache off), its CA file and
// map address replaced by the test's. Mail goes by MX to real STARTTLS hosts in a network
// namespace of the test's own (see delivery_world.hpp for the domains); each test looks at
// which MX host received what, over what, and at Sendmail's queue.
#include <gtest/gtest.h>

#include "tests/e2e/deliver/delivery_world.hpp"
#include "tests/e2e/milter/mail_env.hpp"

namespace mtasts::test::e2e {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> kNone;

struct SendmailDelivery : ::testing::Test {
  static inline std::unique_ptr<DeliveryWorld> dw;
  static inline std::unique_ptr<Sendmail> sendmail;
  static inline std::string skip_reason;
  static inline std::string setup_error;  // the world or the MTA failed to start

  static void SetUpTestSuite() {
    if (!DeliveryWorld::available(skip_reason)) return;
    try {
      if (!Sendmail::available())
        throw std::runtime_error("Sendmail not unpacked at " + Sendmail::root().string() + " (scripts/install-deps.sh)");
      dw = std::make_unique<DeliveryWorld>();
      const SendmailMc mc = shipped_sendmail_mc(*dw);
      sendmail = std::make_unique<Sendmail>(
          dw->dir(), SendmailOptions{.relay_port = 0,
                                     .mc_lines = mc.before,
                                     .mc_tail_lines = mc.after,
                                     .command_prefix = dw->exec_prefix()});
    } catch (const std::exception& e) {
      setup_error = e.what();
      TearDownTestSuite();
    }
  }
  static void TearDownTestSuite() {
    sendmail.reset();
    dw.reset();
  }
  void SetUp() override {
    if (!skip_reason.empty()) GTEST_SKIP() << skip_reason;
    ASSERT_TRUE(setup_error.empty()) << setup_error;
  }
  void TearDown() override {
    if (dw) dw->restore();  // a test that fixed an MX leaves the world as the next one expects
  }

  static std::string tail(const std::string& s, std::size_t n) { return s.size() > n ? s.substr(s.size() - n) : s; }
  std::string diag() {
    return dw->logs() + "--- sendmail log:\n" + tail(sendmail->log(), 4000) + "--- mailq:\n" + mailq();
  }
  std::string mailq() { return sendmail->command({"-bp"}).out; }

  void submit(const std::string& token, const std::vector<std::string>& to) {
    const RunResult r = swaks(sendmail->smtp_port(), "sender@sender.dlv.test", to, make_message(token, to));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << diag();
  }
  // Why Sendmail keeps a recipient in its queue: the M line of the queue file that holds it
  // (mailq cuts it to the width of a terminal), once a delivery attempt has written one; ""
  // if none within the timeout.
  std::string wait_queued(const std::string& rcpt, std::chrono::milliseconds timeout) {
    std::string why;
    wait_until(
        [&] {
          std::error_code ec;
          for (const auto& e : std::filesystem::directory_iterator(sendmail->queue_dir(), ec)) {
            if (e.path().filename().string().rfind("qf", 0) != 0) continue;
            const std::string qf = read_file(e.path());
            if (qf.find("\nrRFC822; " + rcpt + "\n") == std::string::npos) continue;
            const auto m = qf.find("\nM");
            if (m == std::string::npos) continue;
            why = qf.substr(m + 2, qf.find('\n', m + 1) - m - 2);
            return !why.empty();
          }
          return false;
        },
        timeout);
    return why;
  }
  void expect_delivered_over_tls(const std::string& token, const std::string& host) {
    auto m = dw->mx(host).wait_message("END-" + token, 30s);
    ASSERT_TRUE(m.has_value()) << token << " never reached " << host << "\n" << diag();
    EXPECT_EQ(m->find("tls=none"), std::string::npos) << *m;
    EXPECT_EQ(dw->hosts_that_received("END-" + token), std::vector<std::string>{host});
  }
};

TEST_F(SendmailDelivery, DeliveredWhereThePolicyAllowsAndAsBeforeWithoutOne) {
  submit("sm-good", {"alice@" + dlv("good")});
  submit("sm-wild", {"frank@" + dlv("wild")});
  submit("sm-mixed", {"heidi@" + dlv("mixed")});
  submit("sm-testing", {"ivan@" + dlv("testing")});
  submit("sm-nopolicy", {"judy@" + dlv("nopolicy")});
  submit("sm-wcert", {"kim@" + dlv("wcert")});
  {
    SCOPED_TRACE("enforce, good certificate");
    expect_delivered_over_tls("sm-good", dlv("mx.good"));
  }
  {
    // The shipped STS rules take a `.suffix' in match= as exactly one label and their
    // wildcard rule cannot match: tlsmap's list of the exact MX hosts is what works.
    SCOPED_TRACE("enforce, *.mx.wild covers a.mx.wild (one label)");
    expect_delivered_over_tls("sm-wild", dlv("a.mx.wild"));
  }
  {
    SCOPED_TRACE("enforce, first MX with a wrong-name certificate skipped for the good second");
    expect_delivered_over_tls("sm-mixed", dlv("mx2.mixed"));
  }
  {
    SCOPED_TRACE("enforce, the MX's certificate is a wildcard (*.wcert) covering it");
    expect_delivered_over_tls("sm-wcert", dlv("mx.wcert"));
  }
  {
    SCOPED_TRACE("testing and no policy: delivered as before");
    ASSERT_TRUE(dw->mx(dlv("mx.testing")).wait_message("END-sm-testing", 30s).has_value()) << diag();
    auto n = dw->mx(dlv("mx.nopolicy")).wait_message("END-sm-nopolicy", 30s);
    ASSERT_TRUE(n.has_value()) << diag();
    EXPECT_NE(n->find("tls=none"), std::string::npos) << *n;
  }
}

TEST_F(SendmailDelivery, FailuresStayQueuedAndAreDeliveredOnceFixed) {
  struct Case {
    std::string token, domain, reason;
  };
  // Sendmail's own reasons: TLS refused by the binary (StrictTransportSecurity, verification
  // against confCACERT), or by the STS rules (match= list, certificate names).
  const std::vector<Case> cases = {
      {"sm-notls", dlv("notls"), "4.7.0 other side does not support STARTTLS"},
      {"sm-untrusted", dlv("untrusted"), "4.7.0 authentication failed"},
      {"sm-wrongname", dlv("wrongname"), dlv("mx.wrongname") + " is not among the certificate names"},
      {"sm-offpolicy", dlv("offpolicy"), dlv("mx.elsewhere") + " not found in"},
      // The STS rules' own one-label rule is not trusted here: tlsmap lists no host for it.
      {"sm-deep", dlv("deep"), dlv("a.b.mx.deep") + " not found in"},
      // A wildcard certificate covers one label only: *.wdeep does not name a.mx.wdeep.
      {"sm-wdeep", dlv("wdeep"), dlv("a.mx.wdeep") + " is not among the certificate names"},
  };
  for (const auto& c : cases) submit(c.token, {"rcpt@" + c.domain});
  for (const auto& c : cases) {
    SCOPED_TRACE(c.domain);
    const std::string why = wait_queued("rcpt@" + c.domain, 30s);
    EXPECT_NE(why.find(c.reason), std::string::npos) << why << "\n" << diag();
    EXPECT_EQ(dw->hosts_that_received("END-" + c.token), kNone);
  }

  dw->mx(dlv("mx.notls")).restart(CertKind::valid);
  dw->mx(dlv("mx.untrusted")).restart(CertKind::valid);
  dw->mx(dlv("mx.wrongname")).restart(CertKind::valid);
  dw->set_mx(dlv("offpolicy"), {dlv("mx.offpolicy")});
  const RunResult q = sendmail->command({"-q"}, 120s);
  EXPECT_EQ(q.exit_code, 0) << q.out << q.err;
  expect_delivered_over_tls("sm-notls", dlv("mx.notls"));
  expect_delivered_over_tls("sm-untrusted", dlv("mx.untrusted"));
  expect_delivered_over_tls("sm-wrongname", dlv("mx.wrongname"));
  expect_delivered_over_tls("sm-offpolicy", dlv("mx.offpolicy"));
  // Nothing fixed for deep and wdeep: still queued, still refused.
  EXPECT_NE(wait_queued("rcpt@" + dlv("deep"), 5s).find("not found in"), std::string::npos) << diag();
  EXPECT_EQ(dw->hosts_that_received("END-sm-deep"), kNone);
  EXPECT_NE(wait_queued("rcpt@" + dlv("wdeep"), 5s).find("not among"), std::string::npos) << diag();
  EXPECT_EQ(dw->hosts_that_received("END-sm-wdeep"), kNone);
}

// mta-sts-tlsmap down: the shipped `-T<TMPF>' makes the map failure a temporary error, so
// Sendmail defers rather than send anything unprotected; a queue run once it is back
// delivers.
TEST_F(SendmailDelivery, PolicyServerDownDefersEveryDomainUntilItIsBack) {
  dw->stop_tlsmap();
  submit("sm-down-good", {"alice@" + dlv("good")});
  submit("sm-down-nopolicy", {"judy@" + dlv("nopolicy")});
  for (const auto& [token, rcpt] : {std::pair{std::string("sm-down-good"), "alice@" + dlv("good")},
                                    {std::string("sm-down-nopolicy"), "judy@" + dlv("nopolicy")}}) {
    SCOPED_TRACE(rcpt);
    EXPECT_FALSE(wait_queued(rcpt, 30s).empty()) << diag();
    EXPECT_EQ(dw->hosts_that_received("END-" + token), kNone);
  }
  dw->start_tlsmap();
  const RunResult q = sendmail->command({"-q"}, 120s);
  EXPECT_EQ(q.exit_code, 0) << q.out << q.err;
  expect_delivered_over_tls("sm-down-good", dlv("mx.good"));
  ASSERT_TRUE(dw->mx(dlv("mx.nopolicy")).wait_message("END-sm-down-nopolicy", 30s).has_value()) << diag();
}

// The connection-cache trap. Sendmail checks a connection's certificate names in the class
// {cert_altnames}, filled at each TLS handshake; a connection taken from its SMTP connection
// cache is checked against whatever the last handshake of the process left there. Here one
// queue run delivers, in this order: to `testing' (its MX mx.testing, with a wrong-name
// certificate, is fine for a testing policy; the connection stays cached), to `multi' (a new
// connection to mx.multi, whose certificate names mx.multi AND mx.testing), then to `shared',
// an enforce domain whose MX is mx.testing. With the cache on, the cached connection to
// mx.testing is checked against mx.multi's names, mx.testing is among them, and the mail goes
// to a host whose own certificate does not name it. The shipped lines turn the cache off.
TEST_F(SendmailDelivery, ConnectionCacheTrap) {
  struct Instance {
    std::string label;
    std::unique_ptr<Sendmail> sendmail;
  };
  std::vector<Instance> instances;
  for (const std::string label : {"shipped", "cache-on"}) {
    auto [lines, tail] = shipped_sendmail_mc(*dw);
    if (label == "cache-on") {
      for (auto& l : lines)
        if (l.find("confMCI_CACHE_SIZE") != std::string::npos) l = "define(`confMCI_CACHE_SIZE', `4')dnl";
    }
    // Queued on receipt, delivered by one queue run in the order received.
    lines.push_back("define(`confDELIVERY_MODE', `queueonly')dnl");
    lines.push_back("define(`confQUEUE_SORT_ORDER', `modification')dnl");
    std::filesystem::create_directories(dw->dir() / label);
    instances.push_back({label, std::make_unique<Sendmail>(
                                    dw->dir() / label, SendmailOptions{.relay_port = 0, .mc_lines = lines,
                                                                       .mc_tail_lines = tail,
                                                                       .command_prefix = dw->exec_prefix()})});
  }
  const std::vector<std::string> order = {"testing", "multi", "shared"};
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i > 0) {
      struct timespec ts{1, 100'000'000};  // queue files' modification times are in seconds
      nanosleep(&ts, nullptr);
    }
    for (auto& in : instances) {
      const std::string token = "trap-" + in.label + "-" + order[i];
      const std::vector<std::string> to{"rcpt-" + in.label + "@" + dlv(order[i])};
      const RunResult r = swaks(in.sendmail->smtp_port(), "sender@sender.dlv.test", to, make_message(token, to));
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    }
  }
  for (auto& in : instances) {
    const RunResult q = in.sendmail->command({"-q", "-v"}, 120s);
    for (const char* d : {"testing", "multi"})
      EXPECT_TRUE(dw->mx(dlv(std::string("mx.") + d)).wait_message("END-trap-" + in.label + "-" + d, 10s))
          << in.label << " " << d << "\n" << q.out;
    const bool leaked = dw->mx(dlv("mx.testing")).received("END-trap-" + in.label + "-shared");
    if (in.label == "shipped") {
      EXPECT_FALSE(leaked) << "enforce mail reached an MX whose certificate does not name it\n" << q.out;
      EXPECT_NE(q.out.find(dlv("mx.testing") + " is not among the certificate names"), std::string::npos) << q.out;
    } else {
      // The control: the order above does reach the trap on this Sendmail (if a later Sendmail
      // fixes it, this fails, and the shipped line may go).
      EXPECT_TRUE(leaked) << q.out;
      EXPECT_NE(q.out.find("Using cached ESMTP connection to " + dlv("mx.testing")), std::string::npos) << q.out;
    }
  }
}

}  // namespace
}  // namespace mtasts::test::e2e
