// mta-sts-milter end to end in a real Postfix: the cache filled by the real fetcher from the
// loopback DNS and HTTPS world, mail submitted over SMTP (smtpd_milters) and through the
// sendmail command (non_smtpd_milters), delivered to a real sink and checked there; then
// Redis killed in the middle of the flow and restored.
#include <gtest/gtest.h>

#include "tests/e2e/milter/mail_env.hpp"

namespace mtasts::test::e2e {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> kForged = {
    "X-MTA-STS: enforce.e2e.test; mode=none; id=forged; mx=evil.example",
    "x-mta-sts: nopolicy.e2e.test; mode=enforce; id=forged; mx=evil.example"};

// Every kind of recipient domain in one message.
const std::vector<std::string> kAllKinds = {"alice@" + kEnforce, "bob@Enforce.E2E.test", "carol@" + kTesting,
                                           "dave@" + kNone,     "erin@" + kNoPolicy,    "frank@" + kLate};

struct PostfixE2e : ::testing::Test {
  std::unique_ptr<MtaStsStack> stack;
  std::unique_ptr<Sink> sink;
  std::unique_ptr<Postfix> postfix;

  void start(StackOptions o = {}) {
    stack = std::make_unique<MtaStsStack>(std::move(o));
    sink = std::make_unique<Sink>(stack->dir());
    postfix = std::make_unique<Postfix>(
        stack->dir(), PostfixOptions{.relay_port = sink->port(), .milter = stack->milter().socket()});
  }
  void TearDown() override {
    postfix.reset();
    sink.reset();
    stack.reset();
  }
  std::string diag() const { return stack->logs() + "--- maillog:\n" + postfix->maillog(); }

  // Submits over SMTP and returns the delivered message.
  std::string send_smtp(const std::string& token, const std::vector<std::string>& to,
                        const std::vector<std::string>& extra = {}) {
    const RunResult r = swaks(postfix->smtp_port(), "sender@sender.e2e.test", to, make_message(token, to, extra));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << diag();
    auto m = sink->wait_message(token, 30s);
    EXPECT_TRUE(m.has_value()) << "message " << token << " not delivered\n" << diag();
    return m.value_or("");
  }
  std::string send_command(const std::string& token, const std::vector<std::string>& to,
                           const std::vector<std::string>& extra = {}) {
    const RunResult r = postfix->sendmail("sender@sender.e2e.test", to, make_message(token, to, extra));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << diag();
    auto m = sink->wait_message(token, 30s);
    EXPECT_TRUE(m.has_value()) << "message " << token << " not delivered\n" << diag();
    return m.value_or("");
  }
};

TEST_F(PostfixE2e, SmtpAndSendmailCommandAreTaggedFromTheFetchersCache) {
  start();

  // Over SMTP: one field per enforce/testing domain, in recipient order; forgeries gone.
  std::string m = send_smtp("smtp1", kAllKinds, kForged);
  EXPECT_EQ(header_values(m, "X-MTA-STS"), (std::vector<std::string>{kEnforceField, kTestingField})) << m;
  for (const auto& r : kAllKinds) EXPECT_NE(m.find(r.substr(r.find('@'))), std::string::npos);
  // The milter's log line carries Postfix's queue id and every domain's decision.
  const std::string qid = postfix->queue_id("smtp1");
  ASSERT_FALSE(qid.empty()) << postfix->maillog();
  EXPECT_TRUE(stack->milter().wait_log("message qid=" + qid + " tagged=\"enforce.e2e.test testing.e2e.test\"", 5s))
      << diag();
  const std::string log = stack->milter().log();
  for (const char* s : {"none.e2e.test:none:mode-none", "nopolicy.e2e.test:no-policy:no-policy",
                        "late.e2e.test:unknown:not-cached", "removed=2"})
    EXPECT_NE(log.find(s), std::string::npos) << s << "\n" << log;

  // The not-yet-known domain was signalled; the fetcher fills it; the next message is tagged.
  ASSERT_TRUE(stack->wait_cached({kLate}, 30s)) << diag();
  m = send_smtp("smtp2", {"frank@" + kLate, "erin@" + kNoPolicy});
  EXPECT_EQ(header_values(m, "X-MTA-STS"), std::vector<std::string>{kLateField}) << m;

  // Through the sendmail command: pickup -> cleanup -> non_smtpd_milters.
  m = send_command("cmd1", kAllKinds, kForged);
  EXPECT_EQ(header_values(m, "X-MTA-STS"), (std::vector<std::string>{kEnforceField, kTestingField, kLateField})) << m;
  const std::string cmd_qid = postfix->queue_id("cmd1");
  ASSERT_FALSE(cmd_qid.empty());
  EXPECT_TRUE(stack->milter().wait_log("message qid=" + cmd_qid + " ", 5s)) << diag();

  // A message only to domains without a policy gets no field at all, and a forged one is gone.
  m = send_smtp("smtp3", {"dave@" + kNone, "erin@" + kNoPolicy}, {kForged[0]});
  EXPECT_TRUE(header_values(m, "X-MTA-STS").empty()) << m;
}

TEST_F(PostfixE2e, OptOutsAreDeliveredUntagged) {
  start();
  std::string m = send_smtp("optout1", {"alice@" + kEnforce}, {"TLS-Required: No", kForged[0]});
  EXPECT_TRUE(header_values(m, "X-MTA-STS").empty()) << m;
  EXPECT_EQ(header_values(m, "TLS-Required"), std::vector<std::string>{"No"});
  m = send_smtp("tlsrpt1", {"tlsrpt@" + kEnforce},
                {"MIME-Version: 1.0", "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n\tboundary=\"b\""});
  EXPECT_TRUE(header_values(m, "X-MTA-STS").empty()) << m;
}

TEST_F(PostfixE2e, RedisKilledMidFlowThenRestored) {
  // No fresh local cache: every message reads Redis, so the outage shows at once.
  start(StackOptions{.milter_lines = {"local-cache-ttl = 0", "on-redis-error = accept"}});
  std::string m = send_smtp("before", {"alice@" + kEnforce, "carol@" + kTesting}, kForged);
  EXPECT_EQ(header_values(m, "X-MTA-STS"), (std::vector<std::string>{kEnforceField, kTestingField})) << m;

  stack->redis().kill();
  // Fail safe (issue 18): the policies read before are held until they expire, whatever
  // local-cache-ttl says, and still tag the mail; forgeries are still removed. (Before, the
  // mail went out untagged: on-redis-error = accept with nothing kept.)
  m = send_smtp("during", {"alice@" + kEnforce, "carol@" + kTesting}, kForged);
  EXPECT_EQ(header_values(m, "X-MTA-STS"), (std::vector<std::string>{kEnforceField, kTestingField})) << m;
  m = send_command("during-cmd", {"alice@" + kEnforce}, kForged);
  EXPECT_EQ(header_values(m, "X-MTA-STS"), std::vector<std::string>{kEnforceField}) << m;
  EXPECT_TRUE(stack->milter().process().running());

  // Redis is back, empty (no persistence). The held copies still tag, the milter signals the
  // domains again (their keys are gone), and the fetcher (also reconnected) fills them.
  stack->redis().start();
  m = send_smtp("after1", {"alice@" + kEnforce, "carol@" + kTesting});
  EXPECT_EQ(header_values(m, "X-MTA-STS"), (std::vector<std::string>{kEnforceField, kTestingField})) << m;
  ASSERT_TRUE(stack->wait_cached({kEnforce, kTesting}, 60s)) << diag();
  m = send_smtp("after2", {"alice@" + kEnforce, "carol@" + kTesting}, kForged);
  EXPECT_EQ(header_values(m, "X-MTA-STS"), (std::vector<std::string>{kEnforceField, kTestingField})) << m;
  EXPECT_TRUE(stack->milter().process().running());
}

TEST_F(PostfixE2e, RedisDownWithTempfailDefersThenDelivers) {
  start(StackOptions{.milter_lines = {"local-cache-ttl = 0", "on-redis-error = tempfail"}});
  stack->redis().kill();
  // The recipient is refused with a temporary error: the client keeps the message.
  const std::vector<std::string> to{"alice@" + kEnforce};
  RunResult r = swaks(postfix->smtp_port(), "sender@sender.e2e.test", to, make_message("tf1", to));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("451 4.4.3"), std::string::npos) << r.out << diag();
  EXPECT_EQ(sink->count(), 0u);
  // Postfix has no queue id yet at RCPT: the milter's line names the client and the envelope
  // (Postfix sends {client_addr} at MAIL because the milter asks for it).
  EXPECT_TRUE(stack->milter().wait_log("recipient deferred qid=\"\" client=127.0.0.1 from=<sender@sender.e2e.test> "
                                       "rcpt=<alice@" + kEnforce + ">", 5s))
      << diag();
  // Back (and refilled by the fetcher): the retry goes through, tagged.
  stack->redis().start();
  stack->redis().cli({"PING"});
  std::string m;
  ASSERT_TRUE(wait_until(
      [&] {
        r = swaks(postfix->smtp_port(), "sender@sender.e2e.test", to, make_message("tf2", to));
        if (r.exit_code != 0) return false;
        m = sink->wait_message("tf2", 30s).value_or("");
        return true;
      },
      30s))
      << r.out << diag();
  // The first accepted attempt may come before the fetcher refilled enforce.e2e.test.
  if (header_values(m, "X-MTA-STS").empty()) {
    ASSERT_TRUE(stack->wait_cached({kEnforce}, 60s)) << diag();
    m = send_smtp("tf3", to);
  }
  EXPECT_EQ(header_values(m, "X-MTA-STS"), std::vector<std::string>{kEnforceField}) << m;
}

}  // namespace
}  // namespace mtasts::test::e2e
