// DANE before MTA-STS (RFC 8461 section 2), end to end: a zone signed with ldns-signzone and
// served by nsd, a validating unbound as the resolver of Postfix 3.7
// (smtp_dns_support_level = dnssec) and of mta-sts-tlsmap, and domains that have both TLSA
// records and an enforce MTA-STS policy whose MX certificates pass a WebPKI check. Where every
// MX host has validated TLSA records the answer is dane-only, where some do it is dane, and
// never secure: the domain whose TLSA record does not match its MX's key is refused although
// the MTA-STS check alone would have let the mail through.
#include <gtest/gtest.h>

#include "tests/e2e/deliver/delivery_world.hpp"
#include "tests/e2e/milter/mail_env.hpp"

namespace mtasts::test::e2e {
namespace {

using namespace std::chrono_literals;

struct PostfixDane : ::testing::Test {
  static inline std::unique_ptr<DeliveryWorld> dw;
  static inline std::unique_ptr<Postfix> postfix;
  static inline std::string skip_reason;
  static inline std::string setup_error;  // the world or the MTA failed to start

  static void SetUpTestSuite() {
    if (!DeliveryWorld::available(skip_reason)) return;
    try {
      dw = std::make_unique<DeliveryWorld>(DeliveryOptions{.dane = true});
      postfix = std::make_unique<Postfix>(
          dw->dir(), PostfixOptions{.relay_port = 0,
                                    .main_cf = {"smtp_dns_support_level = dnssec", "smtp_tls_security_level = may",
                                                "smtp_tls_CAfile = " + dw->world().ca_file().string(),
                                                "smtp_tls_policy_maps = " + dw->postfix_policy_map(),
                                                "smtp_tls_loglevel = 1", "smtp_host_lookup = dns",
                                                "smtp_connect_timeout = 5s"},
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
  static std::string tail(const std::string& s, std::size_t n) { return s.size() > n ? s.substr(s.size() - n) : s; }
  std::string diag() const { return dw->logs() + "--- maillog (tail):\n" + tail(postfix->maillog(), 8000); }

  // Postfix's log line for a recipient with the given status, waiting for it.
  std::string wait_rcpt(const std::string& rcpt, const std::string& status) {
    return postfix->wait_log_line(": to=<" + rcpt + ">", status, 30s);
  }
};

TEST_F(PostfixDane, DaneOnlyWhereEveryMxHasTlsaDaneWhereSomeDoNeverSecure) {
  const std::string full = dw->socketmap("postfix", "full.dane.test");
  const std::string bad = dw->socketmap("postfix", "bad.dane.test");
  const std::string some = dw->socketmap("postfix", "some.dane.test");
  EXPECT_EQ(full.rfind("OK dane-only", 0), 0u) << full << "\n" << diag();
  EXPECT_EQ(bad.rfind("OK dane-only", 0), 0u) << bad;
  EXPECT_TRUE(some == "OK dane" || some.rfind("OK dane ", 0) == 0) << some;
  // The same domains without DNSSEC would be "secure" (see the plain world's good.dlv.test).
  EXPECT_EQ(dw->socketmap("postfix", dlv("good")).rfind("OK secure", 0), 0u);

  for (const auto& [domain, hosts] : DeliveryWorld::dane_domains()) {
    const std::vector<std::string> to{"rcpt@" + domain};
    const RunResult r = swaks(postfix->smtp_port(), "sender@sender.dlv.test", to, make_message("dane-" + domain, to));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  {
    SCOPED_TRACE("full: TLSA matches, delivered over DANE-verified TLS");
    auto m = dw->mx("mx.full.dane.test").wait_message("END-dane-full.dane.test", 30s);
    ASSERT_TRUE(m.has_value()) << diag();
    EXPECT_EQ(m->find("tls=none"), std::string::npos) << *m;
    EXPECT_NE(postfix->maillog().find("Verified TLS connection established to mx.full.dane.test"), std::string::npos)
        << diag();
  }
  {
    SCOPED_TRACE("bad: TLSA of another key; the WebPKI-valid certificate must not help");
    const std::string line = wait_rcpt("rcpt@bad.dane.test", "deferred");
    EXPECT_NE(line.find("dsn=4.7.5"), std::string::npos) << line << "\n" << diag();
    EXPECT_TRUE(dw->hosts_that_received("END-dane-bad.dane.test").empty());
  }
  {
    SCOPED_TRACE("plain: TLSA published but no STARTTLS (as if stripped): deferred, not sent in clear");
    const std::string line = wait_rcpt("rcpt@plain.dane.test", "deferred");
    EXPECT_NE(line.find("dsn=4.7.4"), std::string::npos) << line << "\n" << diag();
    EXPECT_TRUE(dw->hosts_that_received("END-dane-plain.dane.test").empty());
  }
  {
    SCOPED_TRACE("some: the MX with TLSA, DANE-verified");
    auto m = dw->mx("mx1.some.dane.test").wait_message("END-dane-some.dane.test", 30s);
    ASSERT_TRUE(m.has_value()) << diag();
    EXPECT_NE(postfix->maillog().find("Verified TLS connection established to mx1.some.dane.test"), std::string::npos);
  }
}

// Sendmail (Debian 12's is built without DANE: `sendmail -d0.1 -bt' lists no DANE) with the
// shipped etc/sendmail-tlsmap.mc in the same DNSSEC world. It reads any reply but `secure' as
// "no STS check", so a `dane-only' answer leaves a domain that publishes both DANE and an
// enforce MTA-STS policy with no protection at all from this Sendmail: with STARTTLS stripped
// its mail goes out in clear, where the same domain without DANE would be deferred.
struct SendmailDane : ::testing::Test {
  static inline std::unique_ptr<DeliveryWorld> dw;
  static inline std::unique_ptr<Sendmail> sendmail;
  static inline std::string skip_reason;
  static inline std::string setup_error;

  static void SetUpTestSuite() {
    if (!DeliveryWorld::available(skip_reason)) return;
    try {
      if (!Sendmail::available())
        throw std::runtime_error("Sendmail not unpacked at " + Sendmail::root().string() + " (scripts/install-deps.sh)");
      dw = std::make_unique<DeliveryWorld>(DeliveryOptions{.dane = true});
      const SendmailMc mc = shipped_sendmail_mc(*dw);
      sendmail = std::make_unique<Sendmail>(dw->dir(), SendmailOptions{.relay_port = 0,
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
};

// Debian 12's Sendmail has no DANE and reads a dane/dane-only reply as "no STS check": the
// `sts' dialect answers `secure' for an enforce domain whatever its TLSA records, so that a
// stripped STARTTLS does not send its mail in clear.
TEST_F(SendmailDane, EnforceDomainWithTlsaIsStillProtected) {
  EXPECT_EQ(dw->socketmap("sts", "plain.dane.test").rfind("OK secure match=", 0), 0u)
      << dw->socketmap("sts", "plain.dane.test");
  const std::vector<std::string> to{"rcpt@plain.dane.test"};
  const RunResult r = swaks(sendmail->smtp_port(), "sender@sender.dlv.test", to, make_message("sm-dane-plain", to));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto leaked = dw->mx("mx.plain.dane.test").wait_message("END-sm-dane-plain", 15s);
  EXPECT_FALSE(leaked.has_value()) << "sent in clear to an MX that offered no STARTTLS:\n"
                                   << leaked.value_or("") << "\nsts reply: " << dw->socketmap("sts", "plain.dane.test");
}

}  // namespace
}  // namespace mtasts::test::e2e
