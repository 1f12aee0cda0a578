// mta-sts-milter in a real Postfix against a cache written by an attacker: anyone with write
// access to Redis (no ACLs, clear-text traffic) can store entries. Crafted entries (control
// characters and CR LF header lines in values, a huge value, a huge but valid mx list, wrong
// Redis types, truncated text, a future codec version) must not stop mail, must not put a
// single injected header line into a delivered message, and must not crash the milter.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include "common/sts/cache_entry.hpp"
#include "common/fleet/redis.hpp"
#include "tests/e2e/milter/mail_env.hpp"

namespace mtasts::test::e2e {
namespace {

using namespace std::chrono_literals;

const std::string kKey = "mta-sts:v1:e:";

// A well-formed codec v1 entry for an enforce policy with the given id and mx lines (the
// values go in as written: the caller does the escaping, and the attacking).
std::string entry(const std::string& id, const std::vector<std::string>& mx) {
  std::string s = "v=1\nchecked=1777000000\nnext=253402300799\npolicy.mode=enforce\npolicy.max_age=31557600\n";
  for (const auto& m : mx) s += "policy.mx=" + m + "\n";
  s += "policy.id=" + id + "\npolicy.fetched=1777000000\npolicy.expires=253402300799\npolicy.raw=x\nend=\n";
  return s;
}

struct HostileCache : ::testing::Test {
  std::unique_ptr<MtaStsStack> stack;
  std::unique_ptr<Sink> sink;
  std::unique_ptr<Postfix> postfix;

  void SetUp() override {
    // No in-process cache: every message reads what the attacker wrote.
    stack = std::make_unique<MtaStsStack>(StackOptions{.milter_lines = {"local-cache-ttl = 0"}});
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
  // Binary-safe (NUL and CR LF included), through the project's own client.
  void set(const std::string& domain, const std::string& value) {
    RedisOptions o;
    o.address = stack->redis().address();
    Pool pool(o);
    pool.lease()->command({"SET", kKey + domain, value});
  }
};

TEST_F(HostileCache, MailFlowsWithoutInjectedLinesAndTheMilterSurvives) {
  std::vector<std::string> many;
  for (int i = 0; i < 3000; ++i) many.push_back("mx" + std::to_string(i) + ".manymx.e2e.test");
  const std::string injected = "X-Injected: yes";
  const std::vector<std::pair<std::string, std::string>> crafted = {
      {"crlf-id.e2e.test", entry("abc%0D%0A" + std::string("X-Injected:%20yes"), {"mx.crlf-id.e2e.test"})},
      {"lf-id.e2e.test", entry("abc%0AX-Injected:%20yes", {"mx.lf-id.e2e.test"})},
      {"ctl-mx.e2e.test", entry("abc", {"mx%01.ctl-mx.e2e.test%0D%0AX-Injected:%20yes"})},
      {"space-id.e2e.test", entry("a b; mode=none", {"mx.space-id.e2e.test"})},
      {"nomx.e2e.test", entry("abc", {})},
      {"huge.e2e.test", entry("abc", {"mx.huge.e2e.test"}) + std::string(400000, 'x')},
      {"truncated.e2e.test", entry("abc", {"mx.truncated.e2e.test"}).substr(0, 90)},
      {"future.e2e.test", "v=2\nchecked=1\nnext=2\nsomething=new\nend=\n"},
      {"binary.e2e.test", std::string("v=1\nchecked=1\x00\r\nX-Injected: yes\r\n", 33)},
      {"manymx.e2e.test", entry("many1", many)},
  };
  const auto write_all = [&] {
    // The domains exist nowhere: a miss makes the fetcher write negative entries over the
    // crafted ones, so they are written again before every message.
    for (const auto& [d, v] : crafted) set(d, v);
    // Wrong Redis types under the entry key: a hash and a list.
    stack->redis().cli({"DEL", kKey + "hash.e2e.test", kKey + "list.e2e.test"});
    stack->redis().cli({"HSET", kKey + "hash.e2e.test", "policy.id", "abc\r\nX-Injected: yes"});
    stack->redis().cli({"RPUSH", kKey + "list.e2e.test", "abc\r\nX-Injected: yes"});
  };

  std::vector<std::string> to = {"alice@" + kEnforce};
  for (const auto& [d, v] : crafted) to.push_back("user@" + d);
  to.push_back("user@hash.e2e.test");
  to.push_back("user@list.e2e.test");

  for (const char* token : {"hostile1", "hostile2"}) {
    write_all();
    const RunResult r = swaks(postfix->smtp_port(), "sender@sender.e2e.test", to, make_message(token, to));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << diag();
    const auto m = sink->wait_message(token, 30s);
    ASSERT_TRUE(m.has_value()) << "message " << token << " not delivered\n" << diag();
    // Not one injected line, folded or not, anywhere in the delivered message.
    EXPECT_EQ(m->find(injected), std::string::npos) << *m;
    EXPECT_TRUE(header_values(*m, "X-Injected").empty()) << *m;
    const auto fields = header_values(*m, "X-MTA-STS");
    ASSERT_EQ(fields.size(), 2u) << *m << diag();
    // The honest domain is tagged as always; the huge but valid policy within the bound.
    EXPECT_EQ(fields[0], kEnforceField);
    EXPECT_EQ(fields[1].rfind("manymx.e2e.test; mode=enforce; id=many1; mx=mx0.manymx.e2e.test,", 0), 0u) << fields[1];
    EXPECT_NE(fields[1].find("; mx-truncated="), std::string::npos);
    EXPECT_LT(fields[1].size(), 2300u);
    for (const auto& f : fields)
      for (char c : f) EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f) << f;
  }
  // The milter is still the process it was, and says why it refused the entries.
  EXPECT_TRUE(stack->milter().process().running()) << diag();
  const std::string log = stack->milter().log();
  EXPECT_NE(log.find("policy.id is not 1 to 32 letters and digits"), std::string::npos) << log;
  EXPECT_NE(log.find("unknown codec version 2"), std::string::npos) << log;
  EXPECT_EQ(log.find("AddressSanitizer"), std::string::npos) << log;
}

}  // namespace
}  // namespace mtasts::test::e2e
