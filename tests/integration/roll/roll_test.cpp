// A fleet rolled forward one codec version at a time (issue 10), with the real programs: a real
// redis-server, today's mta-sts-milter, mta-sts-tlsmap and mta-sts-cached, and the next codec
// version built from the same source with its version raised by one (mta-sts-next-codec,
// next_codec.cpp).
// - Forward: entries of the next format that allow today's reader (reader=1, fields today does
//   not know) are used by today's milter and tlsmap exactly as today's own; today's fetcher,
//   given those domains as misses and as due (the World serving other policies), fetches none
//   of them (its write would keep the newer entry), leaves every one byte for byte, clears the
//   misses, never moves one's schedule past the entry's own next refresh, and does not take
//   them again at every poll. An entry that needs the
//   next reader (reader=2) is unknown to today's readers and is not replaced either.
// - Backward: the entries today's fetcher writes (a policy, a negative entry, a failure) are
//   read by the next reader field for field, and what the next writer makes of them is what
//   today's milter reads.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/sts/cache_entry.hpp"
#include "common/util/clock.hpp"
#include "common/sts/domain.hpp"
#include "common/fleet/store.hpp"
#include "tests/fakes/cache_entries.hpp"
#include "tests/integration/milter/harness.hpp"
#include "tests/integration/roll/entry_dump.hpp"
#include "tests/integration/tlsmap/harness.hpp"
#include "tests/support/fetcher.hpp"
#include "tests/support/process.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;

std::filesystem::path next_codec_binary() { return MTASTS_NEXT_CODEC_BIN; }

Domain dom(const std::string& s) { return *Domain::parse(s).domain; }
std::string unix_text(SysTime t) { return std::to_string(t.time_since_epoch().count()); }
std::string key_of(const std::string& d) { return "mta-sts:v1:e:" + d; }

std::size_t count_of(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) ++n;
  return n;
}

// What the World serves for every domain of these tests: a policy other than the cached one,
// so that an entry replaced by today's fetcher would show in the milter's header.
std::string world_id(const std::string& d) { return "world" + std::to_string(d.size()); }

// The fetcher's line for an entry it kept (cached/worker.cpp). An entry of a newer format is
// not fetched, whether today's fetcher can read it or not: the fenced write would discard the
// result (issue 19).
std::string kept_line(const std::string& d) { return "entry of a newer format kept, not fetched domain=" + d; }

// The entry's own next refresh, from its "next=" line (any codec version has one).
long long own_next(const std::string& bytes) {
  const auto p = bytes.find("\nnext=");
  return p == std::string::npos ? -1 : std::stoll(bytes.substr(p + 6));
}

class RollTest : public ::testing::Test {
 protected:
  RollTest() : world(WorldOptions{.redis = true}) {}

  void SetUp() override {
    for (const std::string d : {"enforce.example", "testing.example", "nopolicy.example", "needs2.example",
                                "sentinel1.example", "sentinel2.example"})
      serve(d, world_id(d), {"mx.world." + d});
    serve("fetched.example", "f1", {"mail.fetched.example", "*.mx.fetched.example"});
    DomainSpec absent;  // no TXT record at all: a negative entry
    absent.policy_host = false;
    world.add_domain("absent.example", absent);
    serve("broken.example", "b1", {"mail.broken.example"}, Behaviour::server_error);  // a failure entry
    world.start();
    cache = std::make_unique<CacheFiller>(world.redis().address());
  }

  void serve(const std::string& d, const std::string& id, const std::vector<std::string>& mx,
             Behaviour b = Behaviour::serve) {
    DomainSpec s;
    s.txt = {"v=STSv1; id=" + id + ";"};
    s.policy = World::policy("enforce", mx, 86400);
    s.behaviour = b;
    world.add_domain(d, s);
  }

  // ---- Redis, byte for byte ----
  std::string get_raw(const std::string& d) {
    Reply r = pool().lease()->command({"GET", key_of(d)});
    return r.is_nil() ? std::string() : std::string(r.str());
  }
  void set_raw(const std::string& d, const std::string& bytes) {
    pool().lease()->command({"SET", key_of(d), bytes, "EX", "604800"});
  }
  // The domain's score in the schedule (unix time), or -1 when it is not scheduled.
  long long scheduled_at(const std::string& d) {
    Reply r = pool().lease()->command({"ZSCORE", "mta-sts:v1:schedule", d});
    return r.is_nil() ? -1 : std::stoll(std::string(r.str()));
  }
  Pool& pool() {
    if (!pool_) {
      RedisOptions o;
      o.address = world.redis().address();
      pool_ = std::make_unique<Pool>(o);
    }
    return *pool_;
  }

  // ---- the next codec version ----
  RunResult next_codec(const std::string& mode, const std::string& entry) {
    return run({next_codec_binary().string(), mode}, 10s, entry);
  }
  // `e` as the next version's fetcher writes it.
  std::string next_encode(const CacheEntry& e) {
    const RunResult r = next_codec("encode", encode(e));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  // ---- today's programs ----
  std::unique_ptr<Process> start_fetcher() {
    return test::start_fetcher(dir.path(), "cached", fetcher_config(world, {"address = " + world.redis().address()}, "roll"));
  }
  std::string fetcher_log() const { return test::fetcher_log(dir.path(), "cached"); }
  std::unique_ptr<MilterDaemon> start_milter() {
    std::filesystem::create_directories(dir / "milter");
    MilterOptions o;
    o.redis_address = world.redis().address();
    o.milter_lines = {"on-unknown = tempfail"};  // an unreadable entry shows at RCPT
    return std::make_unique<MilterDaemon>(dir / "milter", o);
  }
  std::unique_ptr<TlsmapDaemon> start_tlsmap() {
    std::filesystem::create_directories(dir / "tlsmap");
    TlsmapOptions o;
    o.redis_address = world.redis().address();
    o.tlsmap_lines = {"resolver = " + world.resolver(), "on-unknown = defer"};
    return std::make_unique<TlsmapDaemon>(dir / "tlsmap", o);
  }
  // Asserts that a miltertest script passed, with its output and the milter's log if not.
  void expect_script(const std::string& script, const MilterDaemon& m, const std::vector<std::string>& defines) {
    const RunResult r = run_miltertest(script, m.socket(), defines);
    EXPECT_EQ(r.exit_code, 0) << script << "\n" << r.out << r.err << m.log();
  }

  World world;
  TempDir dir{"mtasts-roll"};
  std::unique_ptr<CacheFiller> cache;
  std::unique_ptr<Pool> pool_;
};

// Entries of the next format as its fetcher writes them: enforce.example by hand, with fields
// today's codec does not know (one inside the policy group, one after it), due for a refresh
// (checked two days ago, next in the past) so that today's fetcher fetches the World's other
// policy; testing.example and nopolicy.example through the next version's real encoder.
// needs2.example says it needs the next reader.
TEST_F(RollTest, TodaysProgramsUseEntriesOfTheNextFormatAndTodaysFetcherKeepsThem) {
  const SysTime now = SystemClock().now();
  const SysTime two_days_ago = now - Seconds{2 * 86400};
  std::map<std::string, std::string> next;
  next["enforce.example"] =
      "v=2\nreader=1\n"
      "checked=" + unix_text(two_days_ago) + "\n"
      "next=" + unix_text(now - Seconds{60}) + "\n"
      "policy.mode=enforce\n"
      "policy.max_age=604800\n"
      "policy.mx=mail.enforce.example\n"
      "policy.tlsrpt=mailto:tlsrpt@enforce.example\n"
      "policy.id=next1\n"
      "policy.fetched=" + unix_text(two_days_ago) + "\n"
      "policy.expires=" + unix_text(two_days_ago + Seconds{604800}) + "\n"
      "policy.raw=version: STSv1%0D%0Amode: enforce%0D%0Amx: mail.enforce.example%0D%0Amax_age: 604800%0D%0A\n"
      "dane=required\n"
      "end=\n";
  next["testing.example"] = next_encode(policy_entry(Mode::testing, "next2", {"mx.testing.example"}, now));
  next["nopolicy.example"] = next_encode(negative_entry(now));
  const std::string today = encode(policy_entry(Mode::enforce, "next4", {"mail.needs2.example"}, now));
  next["needs2.example"] = "v=2\nreader=2\n" + today.substr(4, today.size() - 4 - 5) + "dane=required\nend=\n";
  for (const auto& [d, bytes] : next) {
    ASSERT_TRUE(bytes.starts_with("v=2\nreader=")) << d << ":\n" << bytes;
    set_raw(d, bytes);
    // Due in the schedule and signalled as a miss: today's fetcher takes each domain both ways.
    pool().lease()->command({"ZADD", "mta-sts:v1:schedule", unix_text(now - Seconds{5}), d});
    cache->store().signal_miss(dom(d), now);
  }

  // Today's readers, before any fetcher ran.
  const std::vector<std::string> fields{"enforce=enforce.example; mode=enforce; id=next1; mx=mail.enforce.example",
                                        "testing=testing.example; mode=testing; id=next2; mx=mx.testing.example"};
  auto milter = start_milter();
  auto tlsmap = start_tlsmap();
  SocketmapClient client(tlsmap->listen());
  const auto expect_readers_use_them = [&] {
    expect_script("roll.lua", *milter, fields);
    EXPECT_EQ(client.query("postfix enforce.example"), "OK secure match=mail.enforce.example servername=hostname");
    EXPECT_EQ(client.query("postfix testing.example"), "NOTFOUND ");
    EXPECT_EQ(client.query("postfix nopolicy.example"), "NOTFOUND ") << "known: no policy";
    EXPECT_EQ(client.query("postfix needs2.example"), "TEMP MTA-STS policy not yet known") << "unreadable: unknown";
  };
  expect_readers_use_them();
  EXPECT_NE(milter->log().find("undecodable cache entry, treated as absent domain=needs2.example"), std::string::npos)
      << milter->log();
  EXPECT_NE(milter->log().find("needs reader version 2"), std::string::npos) << milter->log();

  // Today's fetcher: every domain is answered (misses cleared) and every entry is kept.
  auto fetcher = start_fetcher();
  ASSERT_TRUE(wait_until([&] {
    if (cache->store().misses_size() != 0) return false;
    const std::string log = fetcher_log();
    for (const auto& [d, bytes] : next)
      if (log.find(kept_line(d)) == std::string::npos) return false;
    return true;
  }, 15s)) << fetcher_log();
  for (const auto& [d, bytes] : next) {
    EXPECT_EQ(get_raw(d), bytes) << d << ": kept byte for byte";
    // Never past the entry's own next refresh (the newer fetchers must find it due before it
    // expires), and later when that is still ahead, so that it is not due at every poll.
    const long long was = (now - Seconds{5}).time_since_epoch().count();
    EXPECT_LE(scheduled_at(d), std::max(own_next(bytes), was)) << d << ": moved past its own next refresh";
    if (own_next(bytes) > SystemClock().now().time_since_epoch().count()) {
      EXPECT_GT(scheduled_at(d), SystemClock().now().time_since_epoch().count()) << d << ": moved later";
    }
  }

  // No loop. A miss the fetcher fills (and nginx, one worker, has logged: so every earlier
  // request is in its log too) marks a poll after the kept writes; a second one, filled
  // later, marks more polls, in which none of the kept domains was taken again.
  const auto fill = [&](const std::string& s) {
    cache->store().signal_miss(dom(s), SystemClock().now());
    ASSERT_TRUE(wait_until([&] { return !get_raw(s).empty() && world.https().requests("mta-sts." + s) == 1; }, 10s))
        << s << "\n" << fetcher_log();
  };
  fill("sentinel1.example");
  std::map<std::string, std::size_t> fetched, kept;
  for (const auto& [d, bytes] : next) {
    fetched[d] = world.https().requests("mta-sts." + d);
    kept[d] = count_of(fetcher_log(), kept_line(d));
    EXPECT_LE(fetched[d], 2u) << d << ": at most once as a miss and once as due";
  }
  // Due by its own times, with the World's other id in DNS: not fetched (the result would be
  // discarded), left due for the newer fetchers, and not taken again at every poll.
  EXPECT_EQ(fetched["enforce.example"], 0u) << fetcher_log();
  EXPECT_EQ(fetched["needs2.example"], 0u) << "an entry it cannot read is left to newer fetchers\n" << fetcher_log();
  fill("sentinel2.example");
  for (const auto& [d, bytes] : next) {
    EXPECT_EQ(world.https().requests("mta-sts." + d), fetched[d]) << d << "\n" << fetcher_log();
    EXPECT_EQ(count_of(fetcher_log(), kept_line(d)), kept[d]) << d << "\n" << fetcher_log();
    EXPECT_EQ(get_raw(d), bytes) << d;
  }
  EXPECT_EQ(cache->store().misses_size(), 0u);

  // Today's readers still use what the next format wrote.
  expect_readers_use_them();
  EXPECT_TRUE(fetcher->running());
}

// An entry that needs the next reader is unknown to today's milter and tlsmap, so every
// lookup signals a miss again. Today's fetcher cannot read it, and whatever it fetched could
// not be written over it (the fenced write keeps it): it clears each miss without a fetch,
// instead of one HTTPS fetch per miss for as long as the fleet is half upgraded.
TEST_F(RollTest, AnEntryNeedingTheNextReaderIsNotFetchedAgainAtEveryMiss) {
  const SysTime now = SystemClock().now();
  const std::string today = encode(policy_entry(Mode::enforce, "next4", {"mail.needs2.example"}, now));
  const std::string needs2 = "v=2\nreader=2\n" + today.substr(4);
  set_raw("needs2.example", needs2);
  auto fetcher = start_fetcher();
  // Three messages to the domain, each after the fetcher answered the previous miss.
  for (int i = 0; i < 3; ++i) {
    cache->store().signal_miss(dom("needs2.example"), SystemClock().now());
    ASSERT_TRUE(wait_until([&] { return cache->store().misses_size() == 0; }, 10s)) << fetcher_log();
  }
  EXPECT_EQ(get_raw("needs2.example"), needs2);
  EXPECT_EQ(world.https().requests("mta-sts.needs2.example"), 0u) << fetcher_log();
  EXPECT_EQ(fetcher_log().find("undecodable cache entry will be replaced"), std::string::npos) << fetcher_log();
}

// The reverse: today's fetcher fills three domains from the World (a policy, no TXT record, a
// server error); the next codec version reads every field of each, and what its writer makes of
// them is read by today's codec as the same entry and by today's milter as today's own.
TEST_F(RollTest, EntriesWrittenByTodaysFetcherAreReadByTheNextReaderAndItsOutputByTodaysMilter) {
  auto fetcher = start_fetcher();
  const SysTime t0 = SystemClock().now();
  const std::vector<std::string> domains{"fetched.example", "absent.example", "broken.example"};
  for (const auto& d : domains) cache->store().signal_miss(dom(d), t0);
  ASSERT_TRUE(wait_until([&] {
    for (const auto& d : domains)
      if (get_raw(d).empty()) return false;
    return true;
  }, 15s)) << fetcher_log();
  const SysTime t1 = SystemClock().now();

  std::map<std::string, CacheEntry> written;
  for (const auto& d : domains) {
    const std::string raw = get_raw(d);
    const DecodeResult today = decode(raw);
    ASSERT_TRUE(today.entry) << d << ": " << today.error;
    EXPECT_EQ(today.version, 1) << d;
    written[d] = *today.entry;
  }
  // What today's fetcher wrote, from what the World serves.
  {
    const CacheEntry& e = written["fetched.example"];
    ASSERT_TRUE(e.policy);
    EXPECT_EQ(e.policy->policy.mode, Mode::enforce);
    EXPECT_EQ(e.policy->id, "f1");
    ASSERT_EQ(e.policy->policy.mx.size(), 2u);
    EXPECT_EQ(e.policy->policy.mx[0].str(), "mail.fetched.example");
    EXPECT_EQ(e.policy->policy.mx[1].str(), "*.mx.fetched.example");
    EXPECT_EQ(e.policy->policy.max_age, Seconds{86400});
    EXPECT_EQ(e.policy->raw, World::policy("enforce", {"mail.fetched.example", "*.mx.fetched.example"}, 86400));
    EXPECT_GE(e.policy->fetched_at, t0 - Seconds{1});
    EXPECT_LE(e.policy->fetched_at, t1);
    EXPECT_GE(e.policy->expires_at, e.policy->fetched_at + Seconds{86400});
    EXPECT_FALSE(e.failure);
    EXPECT_FALSE(e.no_policy_until);
  }
  {
    const CacheEntry& e = written["absent.example"];
    EXPECT_FALSE(e.policy);
    ASSERT_TRUE(e.no_policy_until);
    EXPECT_GT(*e.no_policy_until, t1);
    EXPECT_FALSE(e.failure);
  }
  {
    const CacheEntry& e = written["broken.example"];
    EXPECT_FALSE(e.policy);
    ASSERT_TRUE(e.failure);
    EXPECT_EQ(e.failure->kind, FailureKind::fetch);
    EXPECT_EQ(e.failure->txt_id, "b1");
    EXPECT_EQ(e.failure->count, 1u);
    EXPECT_FALSE(e.failure->error.empty());
    EXPECT_EQ(e.failure->first_at, e.failure->last_at);
    EXPECT_GE(e.failure->retry_after, e.failure->last_at + kMinFailureBackoff);
  }

  std::map<std::string, std::string> rewritten;
  for (const auto& d : domains) {
    const std::string raw = get_raw(d);
    const std::string want = dump(written[d]);
    // The next reader reads today's entry, every field.
    const RunResult read = next_codec("decode", raw);
    ASSERT_EQ(read.exit_code, 0) << d << ": " << read.err << raw;
    EXPECT_EQ(read.out, "version=1\n" + want) << d;
    // The next writer's entry: the next version, readable by today's reader, the same entry
    // for it, and for the next reader too.
    const RunResult wrote = next_codec("encode", raw);
    ASSERT_EQ(wrote.exit_code, 0) << d << ": " << wrote.err;
    EXPECT_TRUE(wrote.out.starts_with("v=2\nreader=1\n")) << d << ":\n" << wrote.out;
    const DecodeResult back = decode(wrote.out);
    ASSERT_TRUE(back.entry) << d << ": " << back.error << "\n" << wrote.out;
    EXPECT_EQ(back.version, 2);
    EXPECT_EQ(dump(*back.entry), want) << d;
    EXPECT_EQ(*back.entry, written[d]) << d;
    const RunResult again = next_codec("decode", wrote.out);
    ASSERT_EQ(again.exit_code, 0) << d << ": " << again.err << wrote.out;
    EXPECT_EQ(again.out, "version=2\n" + want) << d;
    rewritten[d] = wrote.out;
  }

  // The next version's fetcher replaces today's entries (as it may): today's milter reads them.
  for (const auto& [d, bytes] : rewritten) set_raw(d, bytes);
  auto milter = start_milter();
  for (const auto& [rcpt, want] : std::vector<std::pair<std::string, std::string>>{
           {"a@fetched.example", "fetched.example; mode=enforce; id=f1; mx=mail.fetched.example,*.mx.fetched.example"},
           {"b@absent.example", "none"},
           {"c@broken.example", "none"}}) {
    const RunResult r = run_miltertest("fleet.lua", milter->socket(), {"rcpt=<" + rcpt + ">", "want=" + want});
    EXPECT_EQ(r.exit_code, 0) << rcpt << "\n" << r.out << r.err << milter->log();
  }
  // Known domains without a policy, not unknown ones (on-unknown = tempfail would refuse them).
  for (const char* s : {"fetched.example:enforce:policy:redis", "absent.example:no-policy:",
                        "broken.example:no-policy:"})
    EXPECT_NE(milter->log().find(s), std::string::npos) << s << "\n" << milter->log();
  EXPECT_EQ(milter->log().find("undecodable"), std::string::npos) << milter->log();
}

}  // namespace
}  // namespace mtasts::test
