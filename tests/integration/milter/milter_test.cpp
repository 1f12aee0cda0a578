// mta-sts-milter through every milter phase with miltertest, against a real redis-server:
// tagging, forged fields, RFC 8689 and TLS-RPT messages, the configured outcomes for unknown
// domains and for Redis failures, announcements, the miss-wait, and a valgrind run.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "tests/integration/milter/harness.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/slow_redis.hpp"

namespace mtasts::test {
namespace {

std::size_t count_of(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) ++n;
  return n;
}

using namespace std::chrono_literals;

// Asserts that a miltertest script passed, showing its output and the milter's log if not.
void expect_script(const std::string& script, const MilterDaemon& m, const std::vector<std::string>& defines = {}) {
  const RunResult r = run_miltertest(script, m.socket(), defines);
  EXPECT_EQ(r.exit_code, 0) << script << " failed\n--- miltertest stdout:\n"
                            << r.out << "--- stderr:\n"
                            << r.err << "--- milter log:\n"
                            << m.log();
  EXPECT_NE(r.out.find("OK"), std::string::npos) << r.out;
}

// SIGTERM: the milter exits 0 and (in the sanitizer build) reports no leak or error.
void expect_clean_exit(MilterDaemon& m) {
  const int st = m.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "wait status " << st << "\n" << m.log();
  EXPECT_EQ(m.sanitizer_report(), "") << m.log();
}

struct MilterTest : ::testing::Test {
  TempDir dir{"mtasts-milter-it"};
  RedisServer redis;
  CacheFiller cache{redis.address()};
  MilterOptions opts() const {
    MilterOptions o;
    o.redis_address = redis.address();
    return o;
  }
};

TEST_F(MilterTest, TagsEveryKindOfRecipient) {
  cache.fill_standard();
  MilterDaemon m(dir.path(), opts());
  expect_script("tagging.lua", m);
  // The not-yet-known domain was signalled to the fetchers.
  EXPECT_TRUE(cache.miss_signalled("unknown.example"));
  EXPECT_FALSE(cache.miss_signalled("enforce.example"));
  // One log line per message with the queue id and each domain's decision.
  EXPECT_TRUE(m.wait_log("message qid=QID0001 tagged=\"enforce.example testing.example\"", 5s)) << m.log();
  const std::string log = m.log();
  for (const char* s : {"enforce.example:enforce:policy:redis", "testing.example:testing:policy:redis",
                        "none.example:none:mode-none:redis", "nopolicy.example:no-policy:no-policy:redis",
                        "unknown.example:unknown:not-cached:redis", "skipped=address-literal", "removed=2",
                        "message qid=QID0002 tagged=\"\" decisions=nopolicy.example:no-policy:no-policy:local"})
    EXPECT_NE(log.find(s), std::string::npos) << s << "\n" << log;
  expect_clean_exit(m);
}

TEST_F(MilterTest, TlsRequiredNoAndTlsRptReportsAreNotTagged) {
  cache.fill_standard();
  MilterDaemon m(dir.path(), opts());
  expect_script("optout.lua", m);
  EXPECT_TRUE(m.wait_log("suppressed=tls-required-no", 5s)) << m.log();
  EXPECT_TRUE(m.wait_log("suppressed=tlsrpt-report", 5s)) << m.log();
}

TEST_F(MilterTest, TlsRequiredNoIsTaggedWhenNotHonoured) {
  cache.fill_standard();
  MilterOptions o = opts();
  o.milter_lines = {"honor-tls-required = no"};
  MilterDaemon m(dir.path(), o);
  expect_script("optout.lua", m, {"honor=no"});
}

TEST_F(MilterTest, ConfiguredHeaderName) {
  cache.fill_standard();
  MilterOptions o = opts();
  o.milter_lines = {"header-name = X-STS-Test"};
  MilterDaemon m(dir.path(), o);
  expect_script("header_name.lua", m);
}

TEST_F(MilterTest, OnUnknownTempfail) {
  cache.fill_standard();
  MilterOptions o = opts();
  o.milter_lines = {"on-unknown = tempfail"};
  MilterDaemon m(dir.path(), o);
  expect_script("on_unknown_tempfail.lua", m);
  EXPECT_TRUE(cache.miss_signalled("unknown.example"));
  EXPECT_TRUE(m.wait_log("deferred=\"unknown.example:unknown:not-cached unknown.example:unknown:not-cached\"", 5s))
      << m.log();
}

TEST_F(MilterTest, MissWaitTagsAMissFilledInTime) {
  cache.fill_standard();
  MilterOptions o = opts();
  o.milter_lines = {"miss-wait = 5s", "on-unknown = tempfail"};
  MilterDaemon m(dir.path(), o);
  // A stand-in fetcher: fills the domain once the milter has signalled it.
  std::atomic<bool> filled{false};
  std::thread fetcher([&] {
    CacheFiller f(redis.address());
    if (wait_until([&] { return f.miss_signalled("late.example"); }, 20s)) {
      f.put("late.example", make_policy(Mode::enforce, "late1", {"mx.late.example"}), true);
      filled = true;
    }
  });
  expect_script("miss_wait.lua", m);
  fetcher.join();
  EXPECT_TRUE(filled);
  EXPECT_TRUE(m.wait_log("late.example:enforce:policy:redis+wait", 5s)) << m.log();
}

TEST_F(MilterTest, AnnouncementDropsTheLocalEntryAtOnce) {
  cache.fill_standard();
  MilterOptions o = opts();
  o.milter_lines = {"local-cache-ttl = 1h"};
  MilterDaemon m(dir.path(), o);
  expect_script("announce.lua", m, {"phase=before"});
  // Without an announcement the local copy stays (that is what the local cache is for) ...
  cache.put("enforce.example", make_policy(Mode::none, "optout2", {}), false);
  expect_script("announce.lua", m, {"phase=before"});
  // ... and with one it is dropped at once.
  cache.put("enforce.example", make_policy(Mode::none, "optout2", {}), true);
  EXPECT_TRUE(wait_until(
      [&] {
        return run_miltertest("announce.lua", m.socket(), {"phase=after"}).exit_code == 0;
      },
      10s))
      << m.log();
}

TEST_F(MilterTest, RedisDownAcceptThenRecovers) {
  cache.fill_standard();
  MilterOptions o = opts();
  o.milter_lines = {"local-cache-ttl = 1h"};
  MilterDaemon m(dir.path(), o);
  expect_script("redis_down.lua", m, {"phase=up"});  // caches enforce.example locally
  redis.kill();
  // Mail keeps flowing: known domains from the local cache, others untagged.
  expect_script("redis_down.lua", m, {"phase=down-accept"});
  EXPECT_TRUE(m.wait_log("policy lookup failed", 5s)) << m.log();
  redis.start();  // empty, as after a crash without persistence
  CacheFiller refill(redis.address());
  refill.fill_standard();
  refill.put("new.example", make_policy(Mode::enforce, "new1", {"mx.new.example"}));
  // Tagging resumes without a restart of the milter, and the subscriber is back.
  expect_script("redis_down.lua", m, {"phase=recovered"});
  EXPECT_TRUE(m.wait_log("change subscription restored", 10s)) << m.log();
  EXPECT_TRUE(m.process().running());
  expect_clean_exit(m);
}

TEST_F(MilterTest, RedisDownTempfail) {
  cache.fill_standard();
  MilterOptions o = opts();
  o.milter_lines = {"on-redis-error = tempfail"};
  MilterDaemon m(dir.path(), o);
  redis.kill();
  // Three messages, two failed lookups each: one warning for the outage, not six.
  for (int i = 0; i < 3; ++i) expect_script("redis_down.lua", m, {"phase=down-tempfail"});
  EXPECT_TRUE(m.wait_log("deferred=\"new.example:error:redis-error enforce.example:error:redis-error\"", 5s))
      << m.log();
  const std::string log = m.log();
  EXPECT_EQ(count_of(log, "policy lookup failed"), 1u) << log;
  EXPECT_NE(log.find("problem=unreachable"), std::string::npos) << log;
  // Before the MTA has a queue id, a line carries the client and the envelope to match it
  // with the MTA's log.
  EXPECT_NE(log.find("recipient deferred qid=QIDRD-down-tempfail client=192.0.2.25 from=<sender@sender.example> "
                     "rcpt=<bob@new.example> domain=new.example"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("policy lookup failed; more failures are summed up once a minute qid=QIDRD-down-tempfail "
                     "client=192.0.2.25 from=<sender@sender.example> rcpt=<bob@new.example>"),
            std::string::npos)
      << log;
  // Redis back: one line says so.
  redis.start();
  CacheFiller(redis.address()).fill_standard();
  expect_script("tagging.lua", m);
  EXPECT_TRUE(m.wait_log("policy lookups work again failures=", 5s)) << m.log();
  expect_clean_exit(m);
}

TEST_F(MilterTest, SlowRedisIsBoundedByTheBudget) {
  cache.fill_standard();
  MilterOptions o = opts();
  o.milter_lines = {"redis-budget = 100ms", "local-cache-ttl = 0"};
  MilterDaemon m(dir.path(), o);
  // Redis stops answering (SIGSTOP) without closing connections: each lookup must give up
  // within the budget, and mail flows untagged (on-redis-error = accept).
  const pid_t redis_pid = redis.pid();
  ASSERT_GT(redis_pid, 0);
  ::kill(redis_pid, SIGSTOP);
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult r = run_miltertest("redis_down.lua", m.socket(), {"phase=down-accept-nolocal"});
  const auto took = std::chrono::steady_clock::now() - t0;
  ::kill(redis_pid, SIGCONT);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << m.log();
  // Two recipient domains, one lookup each (plus one retry at most): far below a second each.
  EXPECT_LT(took, 3s);
  EXPECT_TRUE(m.wait_log("timeout", 2s) || m.wait_log("timed out", 1s)) << m.log();
}

// redis-budget bounds each lookup as a whole. Against a Redis that answers every command in
// 90 ms (each step within a 100 ms budget), a lookup of an unknown domain is a GET and a miss
// signal: 180 ms and more if each step had its own timeout, at most 100 ms with one deadline.
// Two such domains per message: the run takes at most 2 x 100 ms more than against a fast
// Redis (plus slack), where per-step timeouts would take 2 x 180 ms and more.
TEST_F(MilterTest, EachLookupStaysWithinTheBudgetAsAWhole) {
  auto run_with = [&](std::chrono::milliseconds delay, const std::string& name) {
    SlowRedis slow(dir.path() / (name + ".sock"), delay);
    MilterOptions o = opts();
    o.redis_address = slow.address();
    o.milter_lines = {"redis-budget = 100ms", "local-cache-ttl = 0"};
    std::filesystem::create_directories(dir.path() / name);
    MilterDaemon m(dir.path() / name, o);
    const auto t0 = std::chrono::steady_clock::now();
    const RunResult r = run_miltertest("redis_down.lua", m.socket(), {"phase=down-accept-nolocal"});
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err << m.log();
    m.stop();
    return std::chrono::duration_cast<std::chrono::milliseconds>(took);
  };
  const auto fast = run_with(0ms, "fast");
  const auto slow = run_with(90ms, "slow");
  std::printf("miltertest run: %lld ms against a fast Redis, %lld ms against a slow one\n",
              static_cast<long long>(fast.count()), static_cast<long long>(slow.count()));
  EXPECT_LT(slow - fast, 2 * 100ms + 80ms) << "fast " << fast.count() << " ms, slow " << slow.count() << " ms";
}

TEST_F(MilterTest, NoLeaksOrMemoryErrorsUnderValgrind) {
#ifdef MTASTS_SANITIZED
  GTEST_SKIP() << "sanitizer build: ASan and valgrind do not mix (the ASan run of the other tests covers it)";
#endif
  if (std::system("valgrind --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "valgrind not installed";
  cache.fill_standard();
  MilterOptions o = opts();
  o.valgrind = true;
  MilterDaemon m(dir.path(), o);
  expect_script("tagging.lua", m);
  redis.kill();
  expect_script("redis_down.lua", m, {"phase=down-accept-nolocal"});
  redis.start();
  CacheFiller(redis.address()).fill_standard();
  expect_script("tagging.lua", m);
  const int st = m.stop(60s);
  const std::string vg = read_file(m.valgrind_log());
  ASSERT_TRUE(WIFEXITED(st)) << vg;
  EXPECT_EQ(WEXITSTATUS(st), 0) << vg << m.log();
  EXPECT_NE(vg.find("ERROR SUMMARY: 0 errors"), std::string::npos) << vg;
  EXPECT_EQ(vg.find("definitely lost: "), vg.find("definitely lost: 0 bytes")) << vg;
}

}  // namespace
}  // namespace mtasts::test
