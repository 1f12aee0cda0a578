// MTA-STS enforced at delivery by a real Postfix 3.7 asking mta-sts-tlsmap over socketmap
// (smtp_tls_policy_maps = socketmap:inet:...:postfix, smtp_tls_CAfile = the test CA), in a
// network namespace where the test world's DNS is the system resolver and the MX hosts are
// real STARTTLS servers on port 25 (see delivery_world.hpp for the domains). Each test sends
// real mail and looks at which MX host received it, over what, and at Postfix's own verdict
// in its log and queue.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <thread>
#include <map>

#include "tests/e2e/deliver/delivery_world.hpp"
#include "tests/e2e/milter/mail_env.hpp"
#include "tests/integration/milter/harness.hpp"

namespace mtasts::test::e2e {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> kNone;

struct PostfixDelivery : ::testing::Test {
  static inline std::unique_ptr<DeliveryWorld> dw;
  static inline std::unique_ptr<MilterDaemon> milter;
  static inline std::unique_ptr<Postfix> postfix;
  static inline std::string skip_reason;
  static inline std::string setup_error;  // the world or the MTA failed to start

  static void SetUpTestSuite() { set_up(false); }
  static void set_up(bool with_milter, DeliveryOptions options = {}) {
    skip_reason.clear();
    setup_error.clear();
    if (!DeliveryWorld::available(skip_reason)) return;
    try {
      dw = std::make_unique<DeliveryWorld>(std::move(options));
      if (with_milter) {
        // The milter tags mail from the same cache, so that tag and delivery can be compared.
        std::filesystem::create_directories(dw->dir() / "milter");
        MilterOptions mo;
        mo.redis_address = dw->world().redis().address();
        mo.milter_lines = {"socket-mode = 0666"};  // Postfix's processes run as postfix
        milter = std::make_unique<MilterDaemon>(dw->dir() / "milter", mo);
      }
      postfix = std::make_unique<Postfix>(
          dw->dir(), PostfixOptions{.relay_port = 0,
                                    .milter = milter ? milter->socket() : std::string(),
                                    .main_cf = {"smtp_tls_security_level = may",
                                                "smtp_tls_CAfile = " + dw->world().ca_file().string(),
                                                "smtp_tls_policy_maps = " + dw->postfix_policy_map(),
                                                "smtp_tls_loglevel = 1", "smtp_host_lookup = dns",
                                                // The MX hosts answer at once; a lost connection
                                                // must not hold a test for Postfix's 30 s default.
                                                "smtp_connect_timeout = 5s", "smtp_helo_timeout = 10s"},
                                    .command_prefix = dw->exec_prefix()});
    } catch (const std::exception& e) {
      setup_error = e.what();
      TearDownTestSuite();
    }
  }
  static void TearDownTestSuite() {
    postfix.reset();
    milter.reset();
    dw.reset();
  }
  void SetUp() override {
    if (!skip_reason.empty()) GTEST_SKIP() << skip_reason;
    ASSERT_TRUE(setup_error.empty()) << setup_error;
  }
  void TearDown() override {
    if (dw) dw->restore();  // a test that fixed an MX leaves the world as the next one expects
  }

  std::string diag() const { return dw->logs() + "--- maillog (tail):\n" + tail(postfix->maillog(), 8000); }
  static std::string tail(const std::string& s, std::size_t n) { return s.size() > n ? s.substr(s.size() - n) : s; }

  // Submits one message over SMTP and returns Postfix's queue id for it.
  std::string submit(const std::string& token, const std::vector<std::string>& to) {
    const RunResult r = swaks(postfix->smtp_port(), "sender@sender.dlv.test", to, make_message(token, to));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << diag();
    std::string qid;
    wait_until([&] { return !(qid = postfix->queue_id(token)).empty(); }, 10s);
    EXPECT_FALSE(qid.empty()) << diag();
    return qid;
  }
  // The first maillog line of the smtp client about `qid` whose status is `status`.
  std::string wait_status(const std::string& qid, const std::string& status, std::chrono::milliseconds timeout) {
    return postfix->wait_log_line(" " + qid + ": to=<", status, timeout);
  }
  bool in_queue(const std::string& qid) {
    const RunResult r = postfix->postqueue({"-j"});
    return r.out.find("\"queue_id\": \"" + qid + "\"") != std::string::npos;
  }
  // The message is delivered to `host` alone, over TLS.
  void expect_delivered_over_tls(const std::string& token, const std::string& host) {
    auto m = dw->mx(host).wait_message("END-" + token, 30s);
    ASSERT_TRUE(m.has_value()) << token << " never reached " << host << "\n" << diag();
    EXPECT_EQ(m->find("tls=none"), std::string::npos) << *m;
    EXPECT_EQ(dw->hosts_that_received("END-" + token), std::vector<std::string>{host});
  }
  // Deferred with a 4.7.x status and kept in the queue, no MX host having received it.
  std::string expect_deferred_and_queued(const std::string& token, const std::string& qid,
                                         const std::string& reason) {
    const std::string line = wait_status(qid, "deferred", 30s);
    EXPECT_FALSE(line.empty()) << token << " was not deferred\n" << diag();
    EXPECT_NE(line.find("dsn=4.7."), std::string::npos) << line;
    EXPECT_NE(line.find(reason), std::string::npos) << line;
    EXPECT_TRUE(in_queue(qid)) << postfix->postqueue({"-j"}).out;
    EXPECT_EQ(dw->hosts_that_received("END-" + token), kNone);
    return line;
  }
};

// Each test sends to several domains at once: the world costs seconds to set up, and every
// test of a binary runs in a process (and so a world) of its own.

TEST_F(PostfixDelivery, DeliveredWhereThePolicyAllowsAndAsBeforeWithoutOne) {
  const std::string good = submit("pf-good", {"alice@" + dlv("good")});
  submit("pf-wild", {"frank@" + dlv("wild")});
  submit("pf-mixed", {"heidi@" + dlv("mixed")});
  submit("pf-testing", {"ivan@" + dlv("testing")});
  submit("pf-nopolicy", {"judy@" + dlv("nopolicy")});
  submit("pf-wcert", {"kim@" + dlv("wcert")});

  {
    SCOPED_TRACE("enforce, good certificate");
    expect_delivered_over_tls("pf-good", dlv("mx.good"));
    const std::string line = wait_status(good, "sent", 10s);
    EXPECT_NE(line.find("relay=" + dlv("mx.good") + "["), std::string::npos) << line;
    // Postfix's own word that it checked the certificate ("secure" from the policy map).
    EXPECT_NE(postfix->maillog().find("Verified TLS connection established to " + dlv("mx.good")),
              std::string::npos)
        << diag();
    EXPECT_EQ(dw->socketmap("postfix", dlv("good")).rfind("OK secure", 0), 0u) << dw->socketmap("postfix", dlv("good"));
  }
  {
    SCOPED_TRACE("enforce, *.mx.wild covers a.mx.wild (one label)");
    expect_delivered_over_tls("pf-wild", dlv("a.mx.wild"));
  }
  {
    SCOPED_TRACE("enforce, first MX with a wrong-name certificate skipped for the good second");
    expect_delivered_over_tls("pf-mixed", dlv("mx2.mixed"));
  }
  {
    SCOPED_TRACE("enforce, the MX's certificate is a wildcard (*.wcert) covering it");
    expect_delivered_over_tls("pf-wcert", dlv("mx.wcert"));
  }
  {
    // testing: the MX's certificate names another host; no policy: the MX has no STARTTLS.
    // Both are delivered exactly as without mta-sts-tlsmap (opportunistic TLS).
    SCOPED_TRACE("testing and no policy");
    auto t = dw->mx(dlv("mx.testing")).wait_message("END-pf-testing", 30s);
    ASSERT_TRUE(t.has_value()) << diag();
    EXPECT_EQ(t->find("tls=none"), std::string::npos) << *t;  // encrypted, not verified
    auto n = dw->mx(dlv("mx.nopolicy")).wait_message("END-pf-nopolicy", 30s);
    ASSERT_TRUE(n.has_value()) << diag();
    EXPECT_NE(n->find("tls=none"), std::string::npos) << *n;
    EXPECT_EQ(dw->socketmap("postfix", dlv("testing")), "NOTFOUND ");
    EXPECT_EQ(dw->socketmap("postfix", dlv("nopolicy")), "NOTFOUND ");
  }
}

TEST_F(PostfixDelivery, FailuresAreDeferredKeptInTheQueueAndDeliveredOnceFixed) {
  struct Case {
    std::string token, domain, reason;
    std::string qid{};
  };
  std::vector<Case> cases = {
      {"pf-notls", dlv("notls"), "TLS is required, but was not offered"},
      {"pf-untrusted", dlv("untrusted"), "certificate not verified"},
      {"pf-wrongname", dlv("wrongname"), "certificate not verified"},
      // mx.elsewhere has a good certificate for its own name, but the policy does not list it.
      {"pf-offpolicy", dlv("offpolicy"), "certificate not verified"},
      // Postfix's own match=.mx.deep.dlv.test would take a.b.mx.deep (any depth); RFC 8461
      // section 4.1 allows exactly one label, so the host's good certificate must not help.
      {"pf-deep", dlv("deep"), "certificate not verified"},
      // A wildcard certificate covers one label only: *.wdeep does not name a.mx.wdeep.
      {"pf-wdeep", dlv("wdeep"), "certificate not verified"},
  };
  for (auto& c : cases) c.qid = submit(c.token, {"rcpt@" + c.domain});
  for (const auto& c : cases) {
    SCOPED_TRACE(c.domain);
    expect_deferred_and_queued(c.token, c.qid, c.reason);
  }
  const std::string deep = dw->socketmap("postfix", dlv("deep"));
  for (const char* sep : {"=", ":", " ", ","})  // a bare .suffix lets Postfix 3.7 take any depth
    EXPECT_EQ(deep.find(std::string(sep) + "." + dlv("mx.deep")), std::string::npos) << deep;
  EXPECT_EQ(deep.find("a.b.mx.deep"), std::string::npos) << deep;

  // The fixes an operator would make: a certificate, STARTTLS, the MX record.
  dw->mx(dlv("mx.notls")).restart(CertKind::valid);
  dw->mx(dlv("mx.untrusted")).restart(CertKind::valid);
  dw->mx(dlv("mx.wrongname")).restart(CertKind::valid);
  dw->set_mx(dlv("offpolicy"), {dlv("mx.offpolicy")});
  postfix->postqueue({"-f"});
  expect_delivered_over_tls("pf-notls", dlv("mx.notls"));
  expect_delivered_over_tls("pf-untrusted", dlv("mx.untrusted"));
  expect_delivered_over_tls("pf-wrongname", dlv("mx.wrongname"));
  expect_delivered_over_tls("pf-offpolicy", dlv("mx.offpolicy"));
  for (const auto& c : cases)
    if (c.domain != dlv("deep") && c.domain != dlv("wdeep")) {
      EXPECT_FALSE(wait_status(c.qid, "sent", 10s).empty()) << c.domain;
    }
  // Nothing fixed for deep and wdeep: still refused after the flush.
  for (const auto& c : cases) {
    if (c.domain == dlv("deep") || c.domain == dlv("wdeep")) {
      EXPECT_TRUE(in_queue(c.qid)) << c.domain;
      EXPECT_EQ(dw->hosts_that_received("END-" + c.token), kNone) << c.domain;
    }
  }
}

// mta-sts-tlsmap down: Postfix cannot learn any domain's policy, and defers rather than send
// anything unprotected (an enforce domain could be among them); once it is back, the queue
// goes out.
TEST_F(PostfixDelivery, PolicyServerDownDefersEveryDomainUntilItIsBack) {
  dw->stop_tlsmap();
  const std::string enforce = submit("pf-down-good", {"alice@" + dlv("good")});
  const std::string none = submit("pf-down-nopolicy", {"judy@" + dlv("nopolicy")});
  for (const auto& [qid, token] : {std::pair{enforce, std::string("pf-down-good")}, {none, std::string("pf-down-nopolicy")}}) {
    SCOPED_TRACE(token);
    const std::string line = wait_status(qid, "deferred", 30s);
    EXPECT_NE(line.find("dsn=4."), std::string::npos) << line << "\n" << diag();
    EXPECT_TRUE(in_queue(qid));
    EXPECT_EQ(dw->hosts_that_received("END-" + token), kNone);
  }
  dw->start_tlsmap();
  postfix->postqueue({"-f"});
  expect_delivered_over_tls("pf-down-good", dlv("mx.good"));
  ASSERT_TRUE(dw->mx(dlv("mx.nopolicy")).wait_message("END-pf-down-nopolicy", 30s).has_value()) << diag();
}

// Fail safe (issue 18): mta-sts-tlsmap has read notls's enforce policy once; then Redis is
// lost (killed) and the daemon reloaded (SIGHUP builds a new lookup runtime). The policy read
// before still applies: mail to the domain, whose MX offers no STARTTLS, is deferred, never
// delivered in clear (before: the reload started from an empty cache, Redis answered nothing,
// and on-redis-error's default gave NOTFOUND).
TEST_F(PostfixDelivery, AnEnforceDomainReadBeforeStaysEnforcedWhenRedisIsLostAcrossAReload) {
  ASSERT_EQ(dw->socketmap("postfix", dlv("notls")).rfind("OK secure", 0), 0u) << diag();
  dw->world().redis().kill();
  dw->reload_tlsmap();
  EXPECT_EQ(dw->socketmap("postfix", dlv("notls")).rfind("OK secure", 0), 0u) << diag();
  const std::string qid = submit("pf-failsafe-notls", {"rcpt@" + dlv("notls")});
  expect_deferred_and_queued("pf-failsafe-notls", qid, "TLS is required, but was not offered");
  dw->world().redis().start();
}

// The same world and Postfix with mta-sts-milter on its smtpd (only here: the milter costs
// seconds at start and stop).
// A policy whose one pattern is `hostname' (valid MTA-STS syntax: a one-label name). Passed
// on as `match=hostname', Postfix would read its keyword and accept any MX host with a
// certificate for its own name, a spoofed MX included; the reply carries the `.invalid'
// placeholder instead, and Postfix defers the mail, as the policy (which names no real host)
// asks.
TEST_F(PostfixDelivery, OneLabelPatternNeverReachesPostfixAsAKeyword) {
  const std::string reply = dw->socketmap("postfix", dlv("keyword"));
  EXPECT_EQ(reply, "OK secure match=no-mx-host-matches-the-policy.invalid servername=hostname") << reply;
  const std::string qid = submit("pf-keyword", {"rcpt@" + dlv("keyword")});
  const std::string line = postfix->wait_log_line(qid + ": to=<rcpt@" + dlv("keyword") + ">", "deferred", 30s);
  EXPECT_NE(line.find("dsn=4.7.5"), std::string::npos) << line << "\n" << diag();
  EXPECT_TRUE(dw->hosts_that_received("END-pf-keyword").empty()) << diag();
}

// Issue 18's fault matrix at delivery: mta-sts-tlsmap has read notls.dlv.test's enforce
// policy (its MX offers no STARTTLS); then the cache loses it in one way or another while the
// fetcher is frozen (so that nothing refills it), and local-cache-ttl (1 s here) runs out.
// Under the default on-unknown and on-redis-error (accept), the held copy must still make
// Postfix defer the mail; with a tlsmap that forgets it, the answer is NOTFOUND and the mail
// goes out in clear.
struct PostfixDeliveryFailSafe : PostfixDelivery {
  static void SetUpTestSuite() { set_up(false, DeliveryOptions{.tlsmap_lines = {"local-cache-ttl = 1s"}}); }

  void expect_still_enforced(const std::string& token, const std::function<void()>& fault) {
    const std::string domain = dlv("notls");
    ASSERT_EQ(dw->socketmap("postfix", domain).rfind("OK secure", 0), 0u) << diag();
    dw->pause_fetcher();
    fault();
    std::this_thread::sleep_for(1500ms);  // past local-cache-ttl: the next lookup reads Redis
    const std::string reply = dw->socketmap("postfix", domain);
    EXPECT_EQ(reply.rfind("OK secure", 0), 0u) << reply << "\n" << diag();
    const std::string qid = submit(token, {"rcpt@" + domain});
    expect_deferred_and_queued(token, qid, "TLS is required, but was not offered");
  }
};

TEST_F(PostfixDeliveryFailSafe, KeyDeleted) {
  expect_still_enforced("pf-fs-del", [] { dw->world().redis().cli({"DEL", "mta-sts:v1:e:" + dlv("notls")}); });
}

TEST_F(PostfixDeliveryFailSafe, Flushall) {
  expect_still_enforced("pf-fs-flush", [] { dw->world().redis().cli({"FLUSHALL"}); });
}

TEST_F(PostfixDeliveryFailSafe, RedisRestartedEmpty) {
  expect_still_enforced("pf-fs-empty", [] {
    dw->world().redis().kill();
    dw->world().redis().start();
  });
}

TEST_F(PostfixDeliveryFailSafe, RedisKilled) {
  expect_still_enforced("pf-fs-killed", [] { dw->world().redis().kill(); });
  dw->world().redis().start();
}

TEST_F(PostfixDeliveryFailSafe, AnEntryOfANewerUnreadableFormat) {
  expect_still_enforced("pf-fs-newer", [] {
    dw->world().redis().cli({"SET", "mta-sts:v1:e:" + dlv("notls"), "v=2\nreader=2\nchecked=1\nend=\n"});
  });
}

struct PostfixDeliveryWithMilter : PostfixDelivery {
  static void SetUpTestSuite() { set_up(true); }
};

// One message to every domain of the world, through the milter and Postfix: for each domain,
// the milter's tag (X-MTA-STS in every delivered copy), mta-sts-tlsmap's answer to Postfix and
// what Postfix did with the recipient say the same thing.
TEST_F(PostfixDeliveryWithMilter, MilterTagAndDeliveryDecisionAgreeForEveryDomain) {
  std::vector<std::string> to;
  for (const auto& [domain, mode] : DeliveryWorld::domain_modes()) to.push_back("all@" + domain);
  const std::string qid = submit("pf-all", to);
  // Where the mail may go: a policy MX with a verified certificate, or anywhere without an
  // enforced policy.
  const std::map<std::string, std::string> delivered_to = {
      {dlv("good"), dlv("mx.good")},    {dlv("wild"), dlv("a.mx.wild")},   {dlv("mixed"), dlv("mx2.mixed")},
      {dlv("multi"), dlv("mx.multi")},  {dlv("testing"), dlv("mx.testing")}, {dlv("nopolicy"), dlv("mx.nopolicy")},
      {dlv("wcert"), dlv("mx.wcert")},  {dlv("nosts"), dlv("mx.nosts")}};
  std::optional<std::string> copy;
  for (const auto& [domain, host] : delivered_to) {
    auto m = dw->mx(host).wait_message("END-pf-all", 30s);
    ASSERT_TRUE(m.has_value()) << domain << " not delivered to " << host << "\n" << diag();
    copy = m;
  }
  std::map<std::string, std::string> tagged;  // domain -> mode in the milter's field
  for (const auto& field : header_values(*copy, "X-MTA-STS")) {
    const auto semi = field.find(';');
    const auto mode = field.find("mode=");
    ASSERT_TRUE(semi != std::string::npos && mode != std::string::npos) << field;
    tagged[field.substr(0, semi)] = field.substr(mode + 5, field.find(';', mode) - mode - 5);
  }
  for (const auto& [domain, mode] : DeliveryWorld::domain_modes()) {
    SCOPED_TRACE(domain);
    const bool enforce = mode == "enforce";
    // The milter's tag: the policy's mode, or none.
    if (mode.empty()) {
      EXPECT_EQ(tagged.count(domain), 0u);
    } else {
      EXPECT_EQ(tagged[domain], mode);
    }
    // mta-sts-tlsmap: "secure" exactly where the milter says enforce.
    const std::string reply = dw->socketmap("postfix", domain);
    EXPECT_EQ(reply.rfind("OK secure ", 0) == 0, enforce) << reply;
    if (!enforce) {
      EXPECT_EQ(reply, "NOTFOUND ");
    }
    // Postfix: delivered where allowed, over verified TLS where enforced; deferred otherwise.
    // Its log line for this recipient with the given status, waiting for it.
    const auto rcpt_line = [&](const std::string& status) {
      return postfix->wait_log_line(qid + ": to=<all@" + domain + ">", status, 30s);
    };
    if (delivered_to.count(domain)) {
      const std::string sent = rcpt_line("sent");
      EXPECT_NE(sent.find("relay=" + delivered_to.at(domain) + "["), std::string::npos) << sent;
    } else {
      EXPECT_TRUE(enforce);
      const std::string deferred = rcpt_line("deferred");
      EXPECT_NE(deferred.find("dsn=4.7."), std::string::npos) << deferred << "\n" << diag();
    }
    if (enforce && delivered_to.count(domain)) {
      EXPECT_NE(postfix->maillog().find("Verified TLS connection established to " + delivered_to.at(domain)),
                std::string::npos);
    }
  }
  // No MX host outside the expected ones got a copy (the deferred ones' hosts among them).
  auto hosts = dw->hosts_that_received("END-pf-all");
  std::vector<std::string> want;
  for (const auto& [domain, host] : delivered_to) want.push_back(host);
  std::sort(hosts.begin(), hosts.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(hosts, want);
}

}  // namespace
}  // namespace mtasts::test::e2e
