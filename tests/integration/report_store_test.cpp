// The fleet's TLS-RPT aggregates against a real redis-server (issue 20): a batch counts once
// whatever the replays, in one round trip; two hosts' batches are summed; the caps on failure
// details and policies, with what they drop counted; fields written by something else are
// skipped on read, and do not break later writes; every key expires; the ACL of reportd.
#include "common/fleet/report_store.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <string>

#include "common/tlsrpt/codec.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_acl.hpp"
#include "tests/support/redis_server.hpp"

namespace mtasts {
namespace {

using namespace std::chrono_literals;
using test::RedisServer;
using tlsrpt::AppliedPolicy;
using tlsrpt::Batch;
using tlsrpt::PolicyType;
using tlsrpt::Result;
using tlsrpt::Session;

RedisOptions options_for(const RedisServer& s) {
  RedisOptions o;
  o.address = s.address();
  o.connect_timeout = 1s;
  o.command_timeout = 2s;
  return o;
}

// Today (UTC) by the real clock: Redis expires keys by its own clock, so the test's days
// must be recent for their keys to live.
std::int64_t today_start() {
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  return now - now % 86400;
}

AppliedPolicy sts() {
  AppliedPolicy p;
  p.type = PolicyType::sts;
  p.strings = {"version: STSv1", "mode: enforce", "mx: mx1.example.com", "max_age: 86400"};
  p.mx_hosts = {"mx1.example.com"};
  return p;
}

Session session(Result r, std::string mx = "mx1.example.com", std::string domain = "example.com") {
  Session s;
  s.time = today_start() + 3600;
  s.domain = std::move(domain);
  s.result = r;
  if (r != Result::success) {
    s.receiving_mx_hostname = std::move(mx);
    s.receiving_ip = "192.0.2.1";
    s.sending_mta_ip = "198.51.100.25";
    s.additional_information = "certificate has expired";
  }
  return s;
}

// 3 successes, 2 expired at mx1, 1 host mismatch at mx2.
Batch sample() {
  Batch b;
  for (int i = 0; i < 3; ++i) b.add(session(Result::success), sts());
  b.add(session(Result::certificate_expired), sts());
  b.add(session(Result::certificate_expired), sts());
  b.add(session(Result::certificate_host_mismatch, "mx2.example.com"), sts());
  return b;
}

std::uint64_t detail_count(const tlsrpt::Counts& c, Result r, const std::string& mx) {
  std::uint64_t n = 0;
  for (const auto& [d, k] : c.details) {
    if (d.result == r && d.receiving_mx_hostname == mx) n += k;
  }
  return n;
}

class ReportStoreTest : public ::testing::Test {
 protected:
  RedisServer redis;
  Pool pool{options_for(redis)};
  ReportStore store{pool, "mta-sts:", ReportLimits{}};
  std::string day = tlsrpt::day_of(today_start());
};

TEST_F(ReportStoreTest, ABatchCountsOnceWhateverTheReplaysInOneRoundTrip) {
  const Batch b = sample();
  redis.cli({"CONFIG", "RESETSTAT"});
  EXPECT_EQ(store.apply("mta1.example.net", 1, b), ReportStore::Applied::applied);
  const std::string stats = redis.cli({"INFO", "commandstats"});
  EXPECT_NE(stats.find("cmdstat_eval:calls=1,"), std::string::npos) << stats;
  EXPECT_EQ(stats.find("cmdstat_multi"), std::string::npos) << stats;

  // The reply was lost, the host restarted, the spool was replayed: nothing more is counted.
  EXPECT_EQ(store.apply("mta1.example.net", 1, b), ReportStore::Applied::duplicate);
  EXPECT_EQ(store.apply("mta1.example.net", 1, b), ReportStore::Applied::duplicate);
  EXPECT_EQ(store.apply("mta1.example.net", 0, b), ReportStore::Applied::duplicate) << "an older batch";

  EXPECT_EQ(store.domains(day), std::vector<std::string>{"example.com"});
  auto c = store.read(day, "example.com");
  ASSERT_EQ(c.policies.size(), 1u);
  EXPECT_EQ(c.policies[0].policy, sts());
  EXPECT_EQ(c.policies[0].counts, b.entries().begin()->second.counts);
  EXPECT_EQ(c.dropped_details, 0u);
  EXPECT_EQ(c.skipped_fields, 0u);

  // The next batch of that host counts; numbers compare as numbers, not as text.
  EXPECT_EQ(store.apply("mta1.example.net", 10, b), ReportStore::Applied::applied);
  EXPECT_EQ(store.apply("mta1.example.net", 9, b), ReportStore::Applied::duplicate);
  c = store.read(day, "example.com");
  ASSERT_EQ(c.policies.size(), 1u);
  EXPECT_EQ(c.policies[0].counts.success, 6u);
  EXPECT_EQ(c.policies[0].counts.failure, 6u);
  EXPECT_EQ(detail_count(c.policies[0].counts, Result::certificate_expired, "mx1.example.com"), 4u);
}

// A detail whose values break the collectors' contract (README.md) is not written: its
// sessions count as failures without a detail, like those over the cap.
TEST_F(ReportStoreTest, AnInvalidDetailIsCountedWithoutIt) {
  Batch b = sample();
  b.add(session(Result::certificate_expired, "MX.Example.COM."), sts());
  ASSERT_EQ(store.apply("mta1.example.net", 1, b), ReportStore::Applied::applied);
  const auto c = store.read(day, "example.com");
  ASSERT_EQ(c.policies.size(), 1u);
  EXPECT_EQ(c.policies[0].counts.failure, 4u);
  EXPECT_EQ(c.policies[0].counts.details.size(), 2u);
  EXPECT_EQ(c.dropped_details, 1u);
  EXPECT_EQ(c.skipped_fields, 0u) << "nothing invalid was written";
}

TEST_F(ReportStoreTest, TwoHostsAreSummed) {
  Batch other;
  other.add(session(Result::success), sts());
  other.add(session(Result::certificate_expired), sts());
  other.add(session(Result::starttls_not_supported, "mx3.example.com"), sts());
  other.add(session(Result::success, "", "example.org"), AppliedPolicy{});
  // Both hosts' first batch is number 1: sequence numbers are per host.
  EXPECT_EQ(store.apply("mta1.example.net", 1, sample()), ReportStore::Applied::applied);
  EXPECT_EQ(store.apply("mta2.example.net", 1, other), ReportStore::Applied::applied);

  EXPECT_EQ(store.domains(day), (std::vector<std::string>{"example.com", "example.org"}));
  const auto c = store.read(day, "example.com");
  ASSERT_EQ(c.policies.size(), 1u);
  const auto& counts = c.policies[0].counts;
  EXPECT_EQ(counts.success, 4u);
  EXPECT_EQ(counts.failure, 5u);
  EXPECT_EQ(detail_count(counts, Result::certificate_expired, "mx1.example.com"), 3u);
  EXPECT_EQ(detail_count(counts, Result::certificate_host_mismatch, "mx2.example.com"), 1u);
  EXPECT_EQ(detail_count(counts, Result::starttls_not_supported, "mx3.example.com"), 1u);
  EXPECT_EQ(counts.details.size(), 3u);

  const auto org = store.read(day, "example.org");
  ASSERT_EQ(org.policies.size(), 1u);
  EXPECT_EQ(org.policies[0].policy.type, PolicyType::no_policy_found);
  EXPECT_EQ(org.policies[0].counts.success, 1u);
  EXPECT_TRUE(store.read(day, "example.net").policies.empty());
}

TEST_F(ReportStoreTest, CapsOnDetailsAndPoliciesCountWhatTheyDrop) {
  ReportStore capped{pool, "mta-sts:", ReportLimits{8 * 86400s, 2, 1}};
  Batch b;
  for (int i = 0; i < 5; ++i) b.add(session(Result::certificate_expired, "mx" + std::to_string(i) + ".example.com"), sts());
  b.add(session(Result::success), sts());
  ASSERT_EQ(capped.apply("mta1.example.net", 1, b), ReportStore::Applied::applied);
  // A second host adds a known detail (counted in it) and new ones (over the cap).
  Batch b2;
  b2.add(session(Result::certificate_expired, "mx0.example.com"), sts());
  b2.add(session(Result::certificate_expired, "mx9.example.com"), sts());
  // A second policy for the domain: over max_policies = 1.
  b2.add(session(Result::success), AppliedPolicy{});
  b2.add(session(Result::starttls_not_supported), AppliedPolicy{});
  ASSERT_EQ(capped.apply("mta2.example.net", 1, b2), ReportStore::Applied::applied);

  const auto c = capped.read(day, "example.com");
  ASSERT_EQ(c.policies.size(), 1u);
  const auto& counts = c.policies[0].counts;
  EXPECT_EQ(counts.success, 1u);
  EXPECT_EQ(counts.failure, 7u) << "every failure is counted, detailed or not";
  EXPECT_EQ(counts.details.size(), 2u);
  EXPECT_EQ(detail_count(counts, Result::certificate_expired, "mx0.example.com"), 2u);
  EXPECT_EQ(c.dropped_details, 4u);
  EXPECT_EQ(c.dropped_policy_sessions, 2u);
  EXPECT_EQ(std::stoll(redis.cli({"HLEN", capped.counts_key(day, "example.com")})), 1 + 5 + 2 + 2) << "np; p s f n x; 2 details; xs xf";
}

TEST_F(ReportStoreTest, FieldsWrittenBySomethingElseAreSkippedOnRead) {
  ASSERT_EQ(store.apply("mta1.example.net", 1, sample()), ReportStore::Applied::applied);
  const std::string h = store.counts_key(day, "example.com");
  const std::string pk = sts().key();
  const std::string other_pk = AppliedPolicy{}.key();
  const std::string good_detail = tlsrpt::encode_detail(tlsrpt::detail_of(session(Result::certificate_expired)));
  // Garbage in every form a field can take.
  redis.cli({"HSET", h,
             "bogus", "1",                                                   // unknown field
             "s:" + other_pk, "5",                                           // counts without a policy
             "p:0123456789abcdef", "sts 0 0",                                // policy not matching its key
             "d:" + pk + ":certificate-expired - MX.EXAMPLE.COM - - - -", "7",  // not a normal name
             "d:" + pk + ":success - - - - - -", "7",                        // success is no failure
             "d:" + pk + ":bogus-result - - - - - -", "7",                   // unknown result type
             "d:" + pk + ":starttls-not-supported - - - - - -", "-3",        // negative count
             "d:" + pk + ":starttls-not-supported - - - - 1 -", "1e3",       // not a plain decimal
             "d:" + pk + ":starttls-not-supported - - - - 2 -", "99999999999999999999",  // too large
             "x:" + pk, "lots"});
  redis.cli({"SADD", store.day_key(day), "Not A Domain", "bad..example", "example.com."});

  const auto c = store.read(day, "example.com");
  ASSERT_EQ(c.policies.size(), 1u);
  EXPECT_EQ(c.policies[0].counts, sample().entries().begin()->second.counts) << "only the counts reportd wrote";
  EXPECT_EQ(c.skipped_fields, 10u);
  EXPECT_EQ(store.domains(day), std::vector<std::string>{"example.com"});

  // A count that is not a number does not make the next batch fail half-way (HINCRBY on it
  // would): the script replaces it.
  redis.cli({"HSET", h, "s:" + pk, "garbage", "d:" + pk + ":" + good_detail, "x"});
  ASSERT_EQ(store.apply("mta1.example.net", 2, sample()), ReportStore::Applied::applied);
  const auto after = store.read(day, "example.com");
  ASSERT_EQ(after.policies.size(), 1u);
  EXPECT_EQ(after.policies[0].counts.success, 3u);
  EXPECT_EQ(after.policies[0].counts.failure, 6u);
  EXPECT_EQ(detail_count(after.policies[0].counts, Result::certificate_expired, "mx1.example.com"), 2u);

  // Details that add up to more than the failures: the summary stands, the details do not.
  redis.cli({"HSET", h, "d:" + pk + ":" + good_detail, "1000"});
  const auto contradict = store.read(day, "example.com");
  ASSERT_EQ(contradict.policies.size(), 1u);
  EXPECT_EQ(contradict.policies[0].counts.failure, 6u);
  EXPECT_TRUE(contradict.policies[0].counts.details.empty());

  // A key of another type where a hash belongs does not stop the fleet's counting.
  redis.cli({"DEL", h});
  redis.cli({"SET", h, "not a hash"});
  redis.cli({"SET", store.seq_key("mta1.example.net"), "not a number"});
  ASSERT_EQ(store.apply("mta1.example.net", 3, sample()), ReportStore::Applied::applied);
  EXPECT_EQ(store.read(day, "example.com").policies.at(0).counts.success, 3u);

  // A hash far larger than the caps allow is refused, not read into memory.
  ReportStore small{pool, "mta-sts:", ReportLimits{8 * 86400s, 1, 1}};
  for (int i = 0; i < 120; ++i) {
    std::vector<std::string> args{"HSET", h};
    for (int k = 0; k < 1000; ++k) {
      args.push_back("junk" + std::to_string(i) + ":" + std::to_string(k));
      args.push_back("1");
    }
    redis.cli(args);
  }
  const auto refused = small.read(day, "example.com");
  EXPECT_TRUE(refused.policies.empty());
  EXPECT_GT(refused.skipped_fields, 100000u);
}

TEST_F(ReportStoreTest, EveryKeyExpires) {
  const ReportLimits limits{3 * 86400s, 1000, 16};
  ReportStore store3{pool, "mta-sts:", limits};
  ASSERT_EQ(store3.apply("mta1.example.net", 1, sample()), ReportStore::Applied::applied);
  const std::int64_t until = today_start() + 3 * 86400;
  EXPECT_EQ(std::stoll(redis.cli({"EXPIRETIME", store3.counts_key(day, "example.com")})), until);
  EXPECT_EQ(std::stoll(redis.cli({"EXPIRETIME", store3.day_key(day)})), until);
  const long long seq_ttl = std::stoll(redis.cli({"TTL", store3.seq_key("mta1.example.net")}));
  EXPECT_GT(seq_ttl, 3 * 86400 - 60);
  EXPECT_LE(seq_ttl, 3 * 86400);
  // Nothing else was written, and nothing without an expiry.
  const std::string keys = redis.cli({"KEYS", "*"});
  EXPECT_EQ(std::count(keys.begin(), keys.end(), '\n'), 2) << keys;
  EXPECT_EQ(keys.find("mta-sts:v1:rpt:"), 0u);

  // A day past its keeping is gone at once: a late batch cannot bring it back.
  Batch old;
  Session s = session(Result::success);
  s.time = today_start() - 10 * 86400;
  old.add(s, sts());
  ASSERT_EQ(store3.apply("mta1.example.net", 2, old), ReportStore::Applied::applied);
  EXPECT_TRUE(store3.domains(tlsrpt::day_of(s.time)).empty());
}

// Runs probes as check_redis does: direct ones, then the queued ones in a MULTI made to abort.
// "" when all were allowed, else the refused command's error.
std::string run_probes(Pool& pool, const std::vector<RedisProbe>& probes) {
  auto conn = pool.lease();
  for (const auto& p : probes) {
    if (p.mode != RedisProbe::Mode::direct) continue;
    try {
      conn->command({p.argv.begin(), p.argv.end()});
    } catch (const RedisError& e) {
      return p.argv[0] + ": " + e.what();
    }
  }
  const bool any_queued = std::any_of(probes.begin(), probes.end(),
                                     [](const RedisProbe& p) { return p.mode == RedisProbe::Mode::queued; });
  if (!any_queued) return "";
  try {
    conn->command({"MULTI"});
  } catch (const RedisError& e) {
    return std::string("MULTI: ") + e.what();
  }
  std::string refused;
  for (const auto& p : probes) {
    if (p.mode != RedisProbe::Mode::queued || !refused.empty()) continue;
    try {
      conn->command({p.argv.begin(), p.argv.end()});
    } catch (const RedisError& e) {
      refused = p.argv[0] + ": " + e.what();
    }
  }
  EXPECT_THROW(conn->command({"GET"}), RedisError);  // wrong arity: EXEC aborts
  EXPECT_THROW(conn->command({"EXEC"}), RedisError);
  return refused;
}

// reportd's Redis user: the keys under "<prefix>v1:rpt:" and the commands listed for it in
// etc/redis-acl.conf (the script's commands too: Redis checks them against the user).
TEST(ReportStoreAcl, ReportdNeedsOnlyItsKeysAndTheseCommands) {
  RedisServer redis(
      "user reportd on >rpw resetkeys ~mta-sts:v1:rpt:* resetchannels -@all "
      "+eval +get +set +del +type +hget +hset +hincrby +hexists +sadd +expireat +smembers +hlen +hgetall "
      "+multi +exec +ping +role +select +auth\n"
      "user ctl on >cpw resetkeys %R~mta-sts:v1:rpt:* resetchannels -@all +smembers +hlen +hgetall +ping +auth\n"
      "user default on nopass ~* &* +@all\n");
  RedisOptions o = options_for(redis);
  o.user = "reportd";
  o.password = "rpw";
  Pool pool(o);
  ReportStore store(pool, "mta-sts:", ReportLimits{});
  const std::string day = tlsrpt::day_of(today_start());
  ASSERT_EQ(store.apply("mta1.example.net", 1, sample()), ReportStore::Applied::applied);
  ASSERT_EQ(store.apply("mta1.example.net", 1, sample()), ReportStore::Applied::duplicate);
  EXPECT_EQ(store.read(day, "example.com").policies.size(), 1u);

  RedisOptions co = options_for(redis);
  co.user = "ctl";
  co.password = "cpw";
  Pool ctl_pool(co);
  ReportStore reader(ctl_pool, "mta-sts:", ReportLimits{});
  EXPECT_EQ(reader.domains(day), std::vector<std::string>{"example.com"});
  EXPECT_EQ(reader.read(day, "example.com").policies.size(), 1u);
  EXPECT_THROW(reader.apply("mta1.example.net", 2, sample()), RedisError) << "the reader cannot write";

  // --check-redis's probes pass for these users and change nothing.
  const std::string before = redis.cli({"--scan"});
  EXPECT_EQ(run_probes(pool, ReportStore::probes("mta-sts:", true)), "");
  EXPECT_EQ(run_probes(ctl_pool, ReportStore::probes("mta-sts:", false)), "");
  EXPECT_EQ(redis.cli({"--scan"}), before);
  EXPECT_NE(run_probes(ctl_pool, ReportStore::probes("mta-sts:", true)), "") << "the reader may not apply";
}

// The users shipped in etc/redis-acl.conf: mta-sts-reportd applies and reads (the sender reads
// what it sends), mta-sts-ctl reads, and --check-redis's probes pass for both.
TEST(ReportStoreAcl, TheShippedUsersMayDoWhatTheyNeed) {
  RedisServer redis(test::acl_user_lines(
      test::source_dir() / "etc/redis-acl.conf", [](const std::string& who) { return "pw-" + who; }, false));
  auto pool_of = [&](const std::string& who) {
    RedisOptions o = options_for(redis);
    o.user = "mta-sts-" + who;
    o.password = "pw-" + who;
    return std::make_unique<Pool>(o);
  };
  const std::string day = tlsrpt::day_of(today_start());
  auto reportd = pool_of("reportd");
  ReportStore store(*reportd, "mta-sts:", ReportLimits{});
  ASSERT_EQ(store.apply("mta1.example.net", 1, sample()), ReportStore::Applied::applied);
  EXPECT_EQ(store.domains(day), std::vector<std::string>{"example.com"});
  EXPECT_EQ(store.read(day, "example.com").policies.size(), 1u);
  EXPECT_EQ(run_probes(*reportd, ReportStore::probes("mta-sts:", true)), "");

  auto ctl = pool_of("ctl");
  ReportStore reader(*ctl, "mta-sts:", ReportLimits{});
  EXPECT_EQ(reader.domains(day), std::vector<std::string>{"example.com"});
  EXPECT_EQ(reader.read(day, "example.com").policies.size(), 1u);
  EXPECT_EQ(run_probes(*ctl, ReportStore::probes("mta-sts:", false)), "");
}

// A reportd user without one command the script needs fails the probes (Redis checks the
// commands a script runs against the user's ACL).
TEST(ReportStoreAcl, ProbesFindAMissingCommand) {
  for (const char* missing : {"+hincrby", "+expireat", "+sadd", "+eval", "+hgetall"}) {
    std::string acl = "+eval +get +set +del +type +hget +hset +hincrby +hexists +sadd +expireat +smembers +hlen +hgetall";
    acl.erase(acl.find(missing), std::string(missing).size());
    RedisServer redis("user reportd on >rpw resetkeys ~mta-sts:v1:rpt:* resetchannels -@all " + acl +
                      " +multi +exec +ping +select +auth\nuser default on nopass ~* &* +@all\n");
    RedisOptions o = options_for(redis);
    o.user = "reportd";
    o.password = "rpw";
    Pool pool(o);
    EXPECT_NE(run_probes(pool, ReportStore::probes("mta-sts:", true)), "") << missing;
  }
}

}  // namespace
}  // namespace mtasts
