// DANE before MTA-STS (RFC 8461 section 2), end to end: a zone signed with ldns-signzone and
// served by nsd, a validating unbound as the resolver of Postfix 3.7
// (smtp_dns_support_level = dnssec) and of mta-sts-tlsmap, and domains that have both TLSA
// records and an enforce MTA-STS policy whose MX certificates pass a WebPKI check. Where every
// MX host has usable, validated TLSA records the answer is dane-only, and the domain whose
// TLSA record does not match its MX's key is refused although the MTA-STS check alone would
// have let the mail through. Where only some hosts have usable TLSA (or none: PKIX-only
// records, an address that is not validated) the answer is the MTA-STS check, never `dane'
// (which sends mail in clear to the hosts without TLSA once STARTTLS is stripped); a host
// whose TLSA RRset is bogus is never used; and a resolver that does not validate, or is not
// on loopback, gives no DANE answer at all.
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

TEST_F(PostfixDane, DaneOnlyWhereEveryMxHasTlsaMtaStsWhereSomeDo) {
  const std::string full = dw->socketmap("postfix", "full.dane.test");
  const std::string bad = dw->socketmap("postfix", "bad.dane.test");
  const std::string some = dw->socketmap("postfix", "some.dane.test");
  EXPECT_EQ(full.rfind("OK dane-only", 0), 0u) << full << "\n" << diag();
  EXPECT_EQ(bad.rfind("OK dane-only", 0), 0u) << bad;
  EXPECT_EQ(some.rfind("OK secure match=mx1.some.dane.test:mx2.some.dane.test ", 0), 0u) << some;
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
    SCOPED_TRACE("some: the first MX (with TLSA), verified by the MTA-STS check");
    auto m = dw->mx("mx1.some.dane.test").wait_message("END-dane-some.dane.test", 30s);
    ASSERT_TRUE(m.has_value()) << diag();
    EXPECT_NE(postfix->maillog().find("Verified TLS connection established to mx1.some.dane.test"), std::string::npos);
  }
}

// Sends one message to `domain` tagged `tag` through the private Postfix.
void send_to(Postfix& postfix, const std::string& domain, const std::string& tag) {
  const std::vector<std::string> to{"rcpt@" + domain};
  const RunResult r = swaks(postfix.smtp_port(), "sender@sender.dlv.test", to, make_message(tag, to));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
}

// One MX host with usable TLSA, the preferred one without TLSA and without STARTTLS (as if
// stripped). `OK dane' would give that host Postfix's `may' level: the mail would go to it in
// clear. The MTA-STS answer defers that host and delivers to the other over verified TLS.
TEST_F(PostfixDane, PartialTlsaIsNeverDaneAndNeverClear) {
  const std::string reply = dw->socketmap("postfix", "partial.dane.test");
  EXPECT_EQ(reply.rfind("OK secure match=mx1.partial.dane.test:mx2.partial.dane.test ", 0), 0u) << reply << "\n" << diag();
  send_to(*postfix, "partial.dane.test", "partial-1");
  auto m = dw->mx("mx2.partial.dane.test").wait_message("END-partial-1", 30s);
  ASSERT_TRUE(m.has_value()) << diag();
  EXPECT_NE(postfix->maillog().find("Verified TLS connection established to mx2.partial.dane.test"), std::string::npos)
      << diag();
  EXPECT_EQ(dw->hosts_that_received("END-partial-1"), std::vector<std::string>{"mx2.partial.dane.test"})
      << "sent in clear to the host without TLSA";
}

// Only TLSA records of usage 1 (PKIX-EE), which Postfix does not use for SMTP: `dane-only'
// would defer the mail forever ("TLSA records unusable"); the MTA-STS check delivers it.
TEST_F(PostfixDane, UnusableTlsaGetsTheMtaStsCheck) {
  const std::string reply = dw->socketmap("postfix", "pkix.dane.test");
  EXPECT_EQ(reply.rfind("OK secure match=mx.pkix.dane.test ", 0), 0u) << reply << "\n" << diag();
  send_to(*postfix, "pkix.dane.test", "pkix-1");
  auto m = dw->mx("mx.pkix.dane.test").wait_message("END-pkix-1", 30s);
  ASSERT_TRUE(m.has_value()) << diag();
  EXPECT_NE(postfix->maillog().find("Verified TLS connection established to mx.pkix.dane.test"), std::string::npos)
      << diag();
}

// The MX RRset and the TLSA RRset are validated, but the MX host's address is not (its name
// is a CNAME to an unsigned zone): no DANE answer; the MTA-STS check delivers.
TEST_F(PostfixDane, InsecureMxAddressGetsNoDaneAnswer) {
  const std::string reply = dw->socketmap("postfix", "insecure.dane.test");
  EXPECT_EQ(reply.rfind("OK secure match=mx.insecure.dane.test ", 0), 0u) << reply << "\n" << diag();
  send_to(*postfix, "insecure.dane.test", "insecure-1");
  auto m = dw->mx("mx.insecure.dane.test").wait_message("END-insecure-1", 30s);
  ASSERT_TRUE(m.has_value()) << diag();
  EXPECT_NE(postfix->maillog().find("Verified TLS connection established to mx.insecure.dane.test"), std::string::npos)
      << diag();
}

// A bogus TLSA RRset (SERVFAIL from the validating resolver) is a failing DANE check, which
// MTA-STS must not override (RFC 8461 section 2): the host is never used, although its
// certificate passes the MTA-STS check. With the other host on DANE, mail goes there; with
// the other host without TLSA, the mail waits (TEMP).
TEST_F(PostfixDane, BogusTlsaHostIsNeverUsed) {
  const std::string bogus = dw->socketmap("postfix", "bogus.dane.test");
  const std::string bogusdane = dw->socketmap("postfix", "bogusdane.dane.test");
  EXPECT_EQ(bogus, "TEMP DANE TLSA lookup failed for MX host mx1.bogus.dane.test") << diag();
  EXPECT_EQ(bogusdane, "OK dane-only");
  send_to(*postfix, "bogus.dane.test", "bogus-1");
  send_to(*postfix, "bogusdane.dane.test", "bogusdane-1");
  auto m = dw->mx("mx2.bogusdane.dane.test").wait_message("END-bogusdane-1", 30s);
  ASSERT_TRUE(m.has_value()) << diag();
  EXPECT_NE(postfix->maillog().find("Verified TLS connection established to mx2.bogusdane.dane.test"),
            std::string::npos)
      << diag();
  const std::string line = wait_rcpt("rcpt@bogus.dane.test", "deferred");
  EXPECT_FALSE(line.empty()) << diag();
  EXPECT_TRUE(dw->hosts_that_received("END-bogus-1").empty()) << diag();
  EXPECT_TRUE(dw->mx("mx1.bogusdane.dane.test").log().find("END-bogusdane-1") == std::string::npos);
  EXPECT_EQ(dw->hosts_that_received("END-bogusdane-1"), std::vector<std::string>{"mx2.bogusdane.dane.test"});
}

// The resolver's AD bit is worth something only from a validating resolver on loopback. A
// resolver that does not validate (the world's dnsmasq), or one across the network that
// passes AD on (dnsmasq proxy-dnssec on a non-loopback address, what an on-path attacker
// forging AD looks like): DANE off with a warning at start, no DANE answer at all.
TEST_F(PostfixDane, NoDaneWithoutATrustedValidatingResolver) {
  {
    SCOPED_TRACE("a resolver that does not validate");
    const unsigned port = dw->start_extra_tlsmap(
        "novalidate", {"resolver = " + dw->world().resolver(), "dane-probe-name = dane.test"});
    // Answered only once the runtime (and its probe) is up: the log is complete after it.
    const std::string reply = dw->socketmap("postfix", "full.dane.test", port);
    EXPECT_EQ(reply.rfind("OK secure match=mx.full.dane.test ", 0), 0u) << reply << "\n" << dw->extra_tlsmap_log("novalidate");
    const std::string log = dw->extra_tlsmap_log("novalidate");
    EXPECT_NE(log.find("DANE off"), std::string::npos) << log;
    EXPECT_NE(log.find("did not validate"), std::string::npos) << log;
  }
  {
    SCOPED_TRACE("a resolver off loopback that passes AD on");
    const std::string forwarder = dw->start_ad_forwarder();
    const unsigned port =
        dw->start_extra_tlsmap("remote", {"resolver = " + forwarder, "dane-probe-name = dane.test"});
    for (const char* d : {"full.dane.test", "bad.dane.test"}) {
      const std::string reply = dw->socketmap("postfix", d, port);
      EXPECT_EQ(reply.rfind("OK secure match=", 0), 0u) << d << ": " << reply << "\n" << dw->extra_tlsmap_log("remote");
    }
    const std::string log = dw->extra_tlsmap_log("remote");
    EXPECT_NE(log.find("DANE off"), std::string::npos) << log;
    EXPECT_NE(log.find("not on loopback"), std::string::npos) << log;
    // Trusted explicitly (a protected path), the same resolver gives DANE answers.
    const unsigned trusted = dw->start_extra_tlsmap(
        "trusted", {"resolver = " + forwarder, "dane-trusted-resolver = " + forwarder, "dane-probe-name = dane.test"});
    EXPECT_EQ(dw->socketmap("postfix", "full.dane.test", trusted), "OK dane-only") << dw->extra_tlsmap_log("trusted");
  }
  // --check says whether DANE is on.
  const RunResult on = run({MTASTS_TLSMAP_BIN, "--config=" + (dw->dir() / "tlsmap.conf").string(), "--check"}, 30s);
  EXPECT_NE(on.out.find("DANE on"), std::string::npos) << on.out << on.err;
  const RunResult off = run({MTASTS_TLSMAP_BIN, "--config=" + (dw->dir() / "tlsmap-novalidate.conf").string(), "--check"}, 30s);
  EXPECT_EQ(off.exit_code, 0) << off.out << off.err;
  EXPECT_NE(off.out.find("DANE off"), std::string::npos) << off.out << off.err;
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
