// mta-sts-milter end to end in a real Sendmail 8.17 (INPUT_MAIL_FILTER), with the cache
// filled by the real fetcher from the loopback world, delivering to a real sink; then Redis
// killed in the middle of the flow and restored.
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/e2e/milter/mail_env.hpp"

namespace mtasts::test::e2e {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> kForged = {
    "X-MTA-STS: enforce.e2e.test; mode=none; id=forged; mx=evil.example",
    "X-Mta-Sts: nopolicy.e2e.test; mode=enforce; id=forged; mx=evil.example"};
// Sendmail places each added field above the previous one: the set is the contract, not the
// order (Postfix keeps the order; see postfix_test.cpp).
std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

const std::vector<std::string> kAllKinds = {"alice@" + kEnforce, "bob@ENFORCE.e2e.test", "carol@" + kTesting,
                                           "dave@" + kNone,     "erin@" + kNoPolicy,    "frank@" + kLate};

struct SendmailE2e : ::testing::Test {
  std::unique_ptr<MtaStsStack> stack;
  std::unique_ptr<Sink> sink;
  std::unique_ptr<Sendmail> sendmail;

  void SetUp() override {
    if (!Sendmail::available())
      GTEST_SKIP() << "Sendmail not unpacked at " << Sendmail::root() << " (run scripts/install-deps.sh)";
  }
  void start(StackOptions o = {}) {
    stack = std::make_unique<MtaStsStack>(std::move(o));
    sink = std::make_unique<Sink>(stack->dir());
    sendmail = std::make_unique<Sendmail>(
        stack->dir(), SendmailOptions{.relay_port = sink->port(), .milter = stack->milter().socket()});
  }
  void TearDown() override {
    sendmail.reset();
    sink.reset();
    stack.reset();
  }
  std::string diag() const { return stack->logs() + "--- sendmail log:\n" + (sendmail ? sendmail->log() : ""); }
  std::string send(const std::string& token, const std::vector<std::string>& to,
                   const std::vector<std::string>& extra = {}) {
    const RunResult r = swaks(sendmail->smtp_port(), "sender@sender.e2e.test", to, make_message(token, to, extra));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << diag();
    auto m = sink->wait_message(token, 60s);
    EXPECT_TRUE(m.has_value()) << "message " << token << " not delivered\n" << diag();
    return m.value_or("");
  }
};

TEST_F(SendmailE2e, TaggedFromTheFetchersCache) {
  start();
  std::string m = send("sm1", kAllKinds, kForged);
  EXPECT_EQ(sorted(header_values(m, "X-MTA-STS")), sorted({kEnforceField, kTestingField})) << m;
  // Sendmail's queue id (macro i) is on the milter's log line.
  const auto by = m.find("by mta.e2e.test (8.");
  ASSERT_NE(by, std::string::npos) << m;
  const auto id = m.find(" id ", by);
  const std::string qid = m.substr(id + 4, m.find_first_of(";\r\n", id) - id - 4);
  EXPECT_TRUE(stack->milter().wait_log("message qid=" + qid + " tagged=\"enforce.e2e.test testing.e2e.test\"", 5s))
      << qid << "\n" << diag();
  EXPECT_NE(stack->milter().log().find("removed=2"), std::string::npos);

  ASSERT_TRUE(stack->wait_cached({kLate}, 30s)) << diag();
  m = send("sm2", {"frank@" + kLate, "dave@" + kNone});
  EXPECT_EQ(header_values(m, "X-MTA-STS"), std::vector<std::string>{kLateField}) << m;

  m = send("sm3", {"alice@" + kEnforce}, {"TLS-Required: No", kForged[0]});
  EXPECT_TRUE(header_values(m, "X-MTA-STS").empty()) << m;
}

TEST_F(SendmailE2e, RedisKilledMidFlowThenRestored) {
  start(StackOptions{.milter_lines = {"local-cache-ttl = 0", "on-redis-error = accept"}});
  std::string m = send("before", {"alice@" + kEnforce, "carol@" + kTesting}, kForged);
  EXPECT_EQ(sorted(header_values(m, "X-MTA-STS")), sorted({kEnforceField, kTestingField})) << m;
  stack->redis().kill();
  // Fail safe (issue 18): what was read before is held until it expires and still tags.
  m = send("during", {"alice@" + kEnforce, "carol@" + kTesting}, kForged);
  EXPECT_EQ(sorted(header_values(m, "X-MTA-STS")), sorted({kEnforceField, kTestingField})) << m;
  stack->redis().start();
  m = send("after1", {"alice@" + kEnforce, "carol@" + kTesting});  // held; signals the misses again
  EXPECT_EQ(sorted(header_values(m, "X-MTA-STS")), sorted({kEnforceField, kTestingField})) << m;
  ASSERT_TRUE(stack->wait_cached({kEnforce, kTesting}, 60s)) << diag();
  m = send("after2", {"alice@" + kEnforce, "carol@" + kTesting}, kForged);
  EXPECT_EQ(sorted(header_values(m, "X-MTA-STS")), sorted({kEnforceField, kTestingField})) << m;
  EXPECT_TRUE(stack->milter().process().running());
}

}  // namespace
}  // namespace mtasts::test::e2e
