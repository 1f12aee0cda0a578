// The cache-entry codec (round trips, rejection of every malformed value, no crash on any
// bytes) and the RFC 8461 freshness rules, table-driven against a fake clock.
#include "common/sts/cache_entry.hpp"

#include <gtest/gtest.h>

#include <random>

#include "tests/fakes/fake_clock.hpp"

namespace mtasts {
namespace {

using test::FakeClock;
constexpr SysTime T0 = FakeClock::kStart;
constexpr Seconds kDay{86400};
constexpr Seconds kHour{3600};

Policy policy(Mode mode, Seconds max_age, std::vector<std::string> mx) {
  Policy p;
  p.mode = mode;
  p.max_age = max_age;
  for (const auto& m : mx) {
    std::string err;
    auto pat = MxPattern::parse(m, &err);
    EXPECT_TRUE(pat) << m << ": " << err;
    if (pat) p.mx.push_back(*pat);
  }
  return p;
}

StoredPolicy stored(Mode mode, Seconds max_age, SysTime fetched, std::string id = "20260424T120000Z") {
  StoredPolicy sp;
  sp.policy = policy(mode, max_age, mode == Mode::none ? std::vector<std::string>{}
                                                        : std::vector<std::string>{"mx1.example.com", "*.example.net"});
  sp.raw = "version: STSv1\r\nmode: " + std::string(to_string(mode)) + "\r\nmx: mx1.example.com\r\n";
  sp.id = std::move(id);
  sp.fetched_at = fetched;
  sp.expires_at = fetched + max_age;
  return sp;
}

FailureState failure(SysTime at, Seconds backoff, std::string txt_id = "id1", std::uint32_t count = 1) {
  FailureState f;
  f.kind = FailureKind::fetch;
  f.error = "HTTP 500";
  f.txt_id = std::move(txt_id);
  f.first_at = at;
  f.last_at = at;
  f.retry_after = at + backoff;
  f.count = count;
  return f;
}

CacheEntry with_policy(StoredPolicy sp) {
  CacheEntry e;
  e.checked_at = sp.fetched_at;
  e.policy = std::move(sp);
  return e;
}

// ---- codec --------------------------------------------------------------------------------

std::vector<std::pair<std::string, CacheEntry>> round_trip_cases() {
  std::vector<std::pair<std::string, CacheEntry>> cases;
  cases.emplace_back("empty entry", CacheEntry{});

  CacheEntry enforce = with_policy(stored(Mode::enforce, kDay, T0));
  enforce.next_refresh = T0 + Seconds{82800};
  cases.emplace_back("enforce policy", enforce);

  CacheEntry none = with_policy(stored(Mode::none, Seconds{0}, T0));
  cases.emplace_back("none policy, no mx, max_age 0", none);

  CacheEntry binary = with_policy(stored(Mode::testing, Seconds{31557600}, T0));
  binary.policy->raw = std::string("version: STSv1\nmode: testing\r\n%41%%") + std::string(1, '\0') +
                       "\x01\x7f\xff\xc3\xa9\n=x\nend=\n";
  binary.policy->id = "x";
  cases.emplace_back("raw with any bytes, one-letter id", binary);

  CacheEntry negative;
  negative.checked_at = T0;
  negative.no_policy_until = T0 + kHour;
  negative.next_refresh = T0 + kHour;
  cases.emplace_back("negative entry", negative);

  CacheEntry failed;
  failed.checked_at = T0;
  failed.failure = failure(T0, Seconds{300}, "");
  failed.failure->kind = FailureKind::dns;
  failed.failure->error = "SERVFAIL\nline two % \"quoted\"";
  cases.emplace_back("failure only", failed);

  CacheEntry all = with_policy(stored(Mode::enforce, kDay, T0 - kDay));
  all.no_policy_until = T0 + Seconds{1};
  all.failure = failure(T0, Seconds{600}, "newid", 0xffffffffU);
  all.failure->kind = FailureKind::policy_invalid;
  all.next_refresh = SysTime{Seconds{253402300799}};
  cases.emplace_back("every field, extreme values", all);

  for (auto k : {FailureKind::txt_invalid, FailureKind::fetch}) {
    CacheEntry e = with_policy(stored(Mode::testing, Seconds{1}, T0));
    e.failure = failure(T0, Seconds{300});
    e.failure->kind = k;
    cases.emplace_back(std::string("failure kind ") + to_string(k), e);
  }
  return cases;
}

TEST(CacheEntryCodec, RoundTripsExactly) {
  for (const auto& [name, entry] : round_trip_cases()) {
    const std::string bytes = encode(entry);
    const DecodeResult r = decode(bytes);
    ASSERT_TRUE(r.entry) << name << ": " << r.error << "\n" << bytes;
    EXPECT_EQ(*r.entry, entry) << name;
    EXPECT_EQ(encode(*r.entry), bytes) << name;
  }
}

TEST(CacheEntryCodec, FirstLineCarriesTheVersion) {
  const std::string bytes = encode(CacheEntry{});
  EXPECT_EQ(bytes.rfind("v=" + std::to_string(kCodecVersion) + "\n", 0), 0u) << bytes;
}

TEST(CacheEntryCodec, OneLinePerFieldEvenWithMultiLineRaw) {
  const std::string bytes = encode(with_policy(stored(Mode::enforce, kDay, T0)));
  EXPECT_NE(bytes.find("policy.raw=version: STSv1%0D%0Amode: enforce%0D%0A"), std::string::npos) << bytes;
}

struct BadCase {
  const char* name;
  std::string bytes;
  const char* error;  // expected substring of DecodeResult::error
};

TEST(CacheEntryCodec, RejectsMalformedValues) {
  const std::string head = "v=1\nchecked=1\nnext=2\n";
  const std::string pol = "policy.mode=enforce\npolicy.max_age=86400\npolicy.mx=mx.example.com\npolicy.id=a\n"
                          "policy.fetched=1\npolicy.expires=86401\npolicy.raw=x\n";
  const std::string fail = "failure.kind=fetch\nfailure.error=e\nfailure.txt_id=a\nfailure.first=1\n"
                           "failure.last=1\nfailure.retry=301\nfailure.count=1\n";
  ASSERT_TRUE(decode(head + pol + fail + "end=\n").entry) << decode(head + pol + fail + "end=\n").error;
  const std::vector<BadCase> cases = {
      {"empty", "", "empty"},
      {"unknown version", "v=2\nchecked=1\nnext=2\nend=\n", "unknown codec version 2"},
      {"version zero", "v=0\nend=\n", "unknown codec version 0"},
      {"no version line", "checked=1\nnext=2\nend=\n", "no codec version"},
      {"bad version", "v=one\nend=\n", "bad codec version"},
      {"no final newline", head + "end=", "truncated"},
      {"cut at a line boundary", head, "truncated (no end line)"},
      {"cut inside policy", head + "policy.mode=enforce\n", "truncated"},
      {"data after end", head + "end=\nchecked=3\n", "after the end line"},
      {"bad end", head + "end=x\n", "bad end line"},
      {"not name=value", head + "garbage\nend=\n", "line 4: not name=value"},
      {"unknown field", head + "color=blue\nend=\n", "line 4: unknown field color"},
      {"repeated field", head + "checked=5\nend=\n", "line 4: repeated field checked"},
      {"reader field in a v1 entry", head + "reader=1\nend=\n", "line 4: unknown field reader"},
      {"newer entry needing a newer reader", "v=2\nreader=2\nchecked=1\nnext=2\nend=\n", "needs reader version 2"},
      {"newer entry, bad reader", "v=2\nreader=x\nchecked=1\nnext=2\nend=\n", "bad reader version"},
      {"newer entry, reader repeated", "v=2\nreader=1\nreader=1\nchecked=1\nnext=2\nend=\n", "repeated field reader"},
      {"newer entry, known field still checked", "v=2\nreader=1\nchecked=x\nnext=2\nend=\n", "bad number in checked"},
      {"missing checked", "v=1\nnext=2\nend=\n", "missing field checked"},
      {"missing next", "v=1\nchecked=2\nend=\n", "missing field next"},
      {"bad number", "v=1\nchecked=12a\nnext=2\nend=\n", "line 2: bad number in checked"},
      {"plus sign", "v=1\nchecked=+1\nnext=2\nend=\n", "bad number"},
      {"negative time", "v=1\nchecked=-1\nnext=2\nend=\n", "bad number"},
      {"empty number", "v=1\nchecked=\nnext=2\nend=\n", "bad number"},
      {"huge time", "v=1\nchecked=253402300800\nnext=2\nend=\n", "out of range"},
      {"overflowing number", "v=1\nchecked=99999999999999999999999\nnext=2\nend=\n", "bad number"},
      {"bad escape", head + "policy.raw=%G1\nend=\n", "bad %-escape"},
      {"truncated escape", head + "policy.raw=ab%4\nend=\n", "truncated %-escape"},
      {"escape at end", head + "policy.raw=%\nend=\n", "truncated %-escape"},
      {"raw control byte", head + "policy.raw=a\rb\nend=\n", "unescaped control byte"},
      {"NUL byte", head + std::string("policy.raw=a\0b\n", 15) + "end=\n", "unescaped control byte"},
      {"policy without id", head + "policy.mode=enforce\npolicy.max_age=1\npolicy.fetched=1\npolicy.expires=2\n"
                                   "policy.raw=\nend=\n", "missing field policy.id"},
      {"mx alone", head + "policy.mx=mx.example.com\nend=\n", "missing field policy.mode"},
      {"bad mode", head + "policy.mode=Enforce\npolicy.max_age=1\npolicy.id=a\npolicy.fetched=1\n"
                          "policy.expires=2\npolicy.raw=\nend=\n", "bad policy mode"},
      {"negative max_age", head + "policy.mode=enforce\npolicy.max_age=-5\nend=\n", "bad number in policy.max_age"},
      {"bad mx", head + pol + "policy.mx=-bad-.example\nend=\n", "bad mx pattern"},
      {"non-canonical mx", head + pol + "policy.mx=MX.Example.COM\nend=\n", "bad mx pattern"},
      {"failure without kind", head + "failure.count=1\nend=\n", "missing field failure.kind"},
      {"bad failure kind", head + "failure.kind=oops\nfailure.error=\nfailure.txt_id=\nfailure.first=1\n"
                                  "failure.last=1\nfailure.retry=1\nfailure.count=1\nend=\n", "bad failure kind"},
      {"count overflow", head + "failure.kind=dns\nfailure.error=\nfailure.txt_id=\nfailure.first=1\n"
                                "failure.last=1\nfailure.retry=1\nfailure.count=4294967296\nend=\n", "bad number in failure.count"},
  };
  for (const auto& c : cases) {
    DecodeResult r;
    ASSERT_NO_THROW(r = decode(c.bytes)) << c.name;
    EXPECT_FALSE(r.entry) << c.name;
    EXPECT_NE(r.error.find(c.error), std::string::npos) << c.name << ": got '" << r.error << "'";
  }
}

// Rolling upgrades: an entry of the next codec version that says today's reader suffices is
// read, its unknown fields ignored; the writer's version is reported either way.
TEST(CacheEntryCodec, ReadsANewerEntryThatAllowsIt) {
  CacheEntry e;
  e.checked_at = SysTime{Seconds{1}};
  e.next_refresh = SysTime{Seconds{2}};
  e.no_policy_until = SysTime{Seconds{3600}};
  const std::string today = encode(e);
  ASSERT_TRUE(today.starts_with("v=1\n"));
  const std::string body = today.substr(4, today.size() - 4 - 5);  // without "v=1\n" and "end=\n"
  const DecodeResult next = decode("v=2\nreader=1\n" + body + "tlsrpt=mailto%3Ax\nnew.field=1\nend=\n");
  ASSERT_TRUE(next.entry) << next.error;
  EXPECT_EQ(*next.entry, e);
  EXPECT_EQ(next.version, 2);
  // Without `reader`, a newer entry needs a reader of its own version.
  const DecodeResult plain = decode("v=2\n" + body + "end=\n");
  EXPECT_FALSE(plain.entry);
  EXPECT_NE(plain.error.find("needs reader version 2"), std::string::npos) << plain.error;
  EXPECT_EQ(plain.version, 2);
  EXPECT_EQ(decode(today).version, 1);
}

// An attacker with write access to Redis writes well-formed codec text whose values no
// fetcher would write; each must be refused, above all a CR LF in the id (which the milter
// copies into a header line of every message to the domain).
TEST(CacheEntryCodec, RefusesEntriesNoFetcherWrites) {
  const std::string head = "v=1\nchecked=1\nnext=2\n";
  auto pol = [](std::string mode, std::string max_age, std::string mx, std::string id, std::string fetched,
                std::string expires) {
    return "policy.mode=" + mode + "\npolicy.max_age=" + max_age + "\n" + mx + "policy.id=" + id +
           "\npolicy.fetched=" + fetched + "\npolicy.expires=" + expires + "\npolicy.raw=x\n";
  };
  const std::string mx = "policy.mx=mx.example.com\n";
  auto fail = [](std::string txt_id, std::string first, std::string last, std::string retry, std::string count) {
    return "failure.kind=fetch\nfailure.error=e\nfailure.txt_id=" + txt_id + "\nfailure.first=" + first +
           "\nfailure.last=" + last + "\nfailure.retry=" + retry + "\nfailure.count=" + count + "\n";
  };
  const std::string ok = head + pol("enforce", "86400", mx, "abc", "1", "86401") + fail("", "1", "1", "301", "1") + "end=\n";
  ASSERT_TRUE(decode(ok).entry) << decode(ok).error;
  std::string many_mx;
  for (std::size_t i = 0; i <= kMaxStoredMx; ++i) many_mx += "policy.mx=a.bc\n";
  const std::vector<BadCase> cases = {
      {"CR LF header line in id", head + pol("enforce", "86400", mx, "abc%0D%0AX-Injected:%20yes", "1", "86401") + "end=\n",
       "policy.id"},
      {"LF in id", head + pol("enforce", "86400", mx, "a%0Ab", "1", "86401") + "end=\n", "policy.id"},
      {"space in id", head + pol("enforce", "86400", mx, "a b", "1", "86401") + "end=\n", "policy.id"},
      {"empty id", head + pol("enforce", "86400", mx, "", "1", "86401") + "end=\n", "policy.id"},
      {"33-character id", head + pol("enforce", "86400", mx, std::string(33, 'a'), "1", "86401") + "end=\n", "policy.id"},
      {"enforce without mx", head + pol("enforce", "86400", "", "abc", "1", "86401") + "end=\n", "without policy.mx"},
      {"testing without mx", head + pol("testing", "86400", "", "abc", "1", "86401") + "end=\n", "without policy.mx"},
      {"max_age above the clamp", head + pol("enforce", "31557601", mx, "abc", "1", "31557602") + "end=\n", "max_age"},
      {"expires before fetched", head + pol("enforce", "86400", mx, "abc", "100", "99") + "end=\n", "policy.expires"},
      {"expires before fetched + max_age", head + pol("enforce", "86400", mx, "abc", "1", "86400") + "end=\n", "policy.expires"},
      {"CR LF in failure id", head + fail("a%0D%0Ab", "1", "1", "301", "1") + "end=\n", "failure.txt_id"},
      {"failure count 0", head + fail("", "1", "1", "301", "0") + "end=\n", "failure.count"},
      {"failure last before first", head + fail("", "5", "4", "301", "1") + "end=\n", "out of order"},
      {"failure retry before last", head + fail("", "1", "400", "301", "1") + "end=\n", "out of order"},
      {"huge failure text", head + "failure.kind=fetch\nfailure.error=" + std::string(kMaxFailureErrorBytes + 1, 'e') +
                                "\nfailure.txt_id=\nfailure.first=1\nfailure.last=1\nfailure.retry=301\nfailure.count=1\nend=\n",
       "failure.error"},
      {"huge raw", head + "policy.mode=none\npolicy.max_age=1\npolicy.id=a\npolicy.fetched=1\npolicy.expires=2\npolicy.raw=" +
                       std::string(kMaxPolicyBytes + 1, 'r') + "\nend=\n", "policy.raw"},
      {"too many mx", head + pol("enforce", "86400", many_mx, "abc", "1", "86401") + "end=\n", "too many policy.mx"},
      {"huge entry", head + "policy.raw=" + std::string(kMaxEncodedBytes, 'r') + "\nend=\n", "more than the limit"},
  };
  for (const auto& c : cases) {
    DecodeResult r;
    ASSERT_NO_THROW(r = decode(c.bytes)) << c.name;
    EXPECT_FALSE(r.entry) << c.name;
    EXPECT_NE(r.error.find(c.error), std::string::npos) << c.name << ": got '" << r.error << "'";
  }
}

TEST(CacheEntryCodec, EveryTruncationIsRejected) {
  CacheEntry e = with_policy(stored(Mode::enforce, kDay, T0));
  e.failure = failure(T0, Seconds{300});
  e.no_policy_until = T0;
  const std::string bytes = encode(e);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    const DecodeResult r = decode(std::string_view(bytes).substr(0, n));
    EXPECT_FALSE(r.entry) << "prefix of " << n << " bytes decoded";
    EXPECT_FALSE(r.error.empty());
  }
}

TEST(CacheEntryCodec, NeverThrowsOnArbitraryBytes) {
  std::mt19937 rng(20260424);
  const std::string valid = encode(round_trip_cases().back().second);
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = valid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      const std::size_t pos = rng() % bytes.size();
      switch (rng() % 3) {
        case 0: bytes[pos] = static_cast<char>(rng() & 0xff); break;
        case 1: bytes.erase(pos, 1 + rng() % 8); break;
        default: bytes.insert(pos, 1, "=\n%v0"[rng() % 5]); break;
      }
      if (bytes.empty()) bytes = "v";
    }
    DecodeResult r;
    ASSERT_NO_THROW(r = decode(bytes)) << i;
    if (r.entry) {
      // Whatever decodes must encode back to something that decodes to the same entry.
      EXPECT_EQ(*decode(encode(*r.entry)).entry, *r.entry);
    } else {
      EXPECT_FALSE(r.error.empty());
    }
  }
  std::string random(300, '\0');
  for (int i = 0; i < 2000; ++i) {
    for (auto& c : random) c = static_cast<char>(rng() & 0xff);
    EXPECT_NO_THROW(decode(random));
    EXPECT_NO_THROW(decode("v=1\n" + random));
  }
}

TEST(CacheEntryNames, RoundTrip) {
  for (auto k : {FailureKind::dns, FailureKind::txt_invalid, FailureKind::fetch, FailureKind::policy_invalid})
    EXPECT_EQ(failure_kind_from_string(to_string(k)), k);
  EXPECT_FALSE(failure_kind_from_string("DNS"));
  EXPECT_STREQ(to_string(Verdict::no_policy), "no-policy");
  EXPECT_STREQ(to_string(Verdict::unknown), "unknown");
}

// ---- freshness --------------------------------------------------------------------------

TEST(Freshness, PolicyUsableUntilExpiry) {
  FakeClock clock;
  const CacheEntry e = with_policy(stored(Mode::enforce, kDay, clock.now()));
  EXPECT_TRUE(policy_usable(e, clock.now()));
  clock.advance(kDay - Seconds{1});
  EXPECT_TRUE(policy_usable(e, clock.now()));
  EXPECT_EQ(verdict(e, clock.now()), Verdict::enforce);
  clock.advance(Seconds{1});
  EXPECT_FALSE(policy_usable(e, clock.now()));
  EXPECT_EQ(verdict(e, clock.now()), Verdict::unknown);
  EXPECT_FALSE(policy_usable(CacheEntry{}, clock.now()));
}

TEST(Freshness, MaxAgeZeroIsNeverUsableFromTheCache) {
  FakeClock clock;
  CacheEntry e = with_policy(stored(Mode::enforce, Seconds{0}, clock.now()));
  EXPECT_EQ(e.policy->expires_at, e.policy->fetched_at);
  EXPECT_FALSE(policy_usable(e, clock.now()));
  EXPECT_EQ(verdict(e, clock.now()), Verdict::no_policy);
  // Not re-fetched in a loop: due again like a negative entry, negative_ttl after the check.
  const RefreshRules r;
  EXPECT_EQ(next_refresh_time(e, clock.now(), r), clock.now() + r.negative_ttl);
  clock.advance(kMinRecheck);
  EXPECT_FALSE(refresh_due(e, clock.now(), r));
  clock.advance(r.negative_ttl - kMinRecheck);
  EXPECT_TRUE(refresh_due(e, clock.now(), r));
  // Nothing to keep but the history.
  EXPECT_EQ(redis_ttl(e, clock.now(), Seconds{100}), Seconds{100});
}

struct VerdictCase {
  const char* name;
  CacheEntry entry;
  Seconds at;  // offset from T0
  Verdict expected;
};

TEST(Freshness, VerdictTable) {
  auto failed = [](CacheEntry e) {
    e.failure = failure(T0, Seconds{300});
    return e;
  };
  CacheEntry negative;
  negative.checked_at = T0;
  negative.no_policy_until = T0 + kHour;
  CacheEntry failure_only;
  failure_only.failure = failure(T0, Seconds{300});

  const std::vector<VerdictCase> cases = {
      {"nothing known", CacheEntry{}, Seconds{0}, Verdict::unknown},
      {"enforce", with_policy(stored(Mode::enforce, kDay, T0)), Seconds{10}, Verdict::enforce},
      {"testing", with_policy(stored(Mode::testing, kDay, T0)), Seconds{10}, Verdict::testing},
      {"none verdict", with_policy(stored(Mode::none, kDay, T0)), Seconds{10}, Verdict::none},
      {"expired enforce, not refreshed", with_policy(stored(Mode::enforce, kDay, T0)), kDay, Verdict::unknown},
      {"failure keeps a usable policy", failed(with_policy(stored(Mode::enforce, kDay, T0))), kHour, Verdict::enforce},
      {"failure keeps a usable testing policy", failed(with_policy(stored(Mode::testing, kDay, T0))), kHour,
       Verdict::testing},
      {"failure and expired policy: as if none", failed(with_policy(stored(Mode::enforce, kDay, T0))), kDay * 2,
       Verdict::no_policy},
      {"failure without any policy", failure_only, Seconds{0}, Verdict::no_policy},
      {"failure, long after", failure_only, kDay * 30, Verdict::no_policy},
      {"negative entry", negative, Seconds{0}, Verdict::no_policy},
      {"negative entry, last second", negative, kHour - Seconds{1}, Verdict::no_policy},
      {"negative entry expired", negative, kHour, Verdict::unknown},
      {"max_age 0", with_policy(stored(Mode::enforce, Seconds{0}, T0)), Seconds{0}, Verdict::no_policy},
  };
  for (const auto& c : cases) EXPECT_EQ(verdict(c.entry, T0 + c.at), c.expected) << c.name;
}

TEST(Freshness, UsablePolicyWinsOverANegativeEntry) {
  // A fetched policy replaces "no policy" at once (and the fetcher clears the negative entry).
  CacheEntry e = with_policy(stored(Mode::testing, kDay, T0));
  e.no_policy_until = T0 + kHour;
  EXPECT_EQ(verdict(e, T0), Verdict::testing);
}

TEST(Freshness, MayRetryOnlyAfterBackoff) {
  FakeClock clock;
  CacheEntry e = with_policy(stored(Mode::enforce, kDay, clock.now()));
  EXPECT_TRUE(may_retry(e, clock.now()));
  e.failure = failure(clock.now(), failure_backoff(1, RefreshRules{}), "id1");
  EXPECT_EQ(e.failure->retry_after, clock.now() + Seconds{300});
  EXPECT_FALSE(may_retry(e, clock.now()));
  clock.advance(Seconds{299});
  EXPECT_FALSE(may_retry(e, clock.now()));
  EXPECT_FALSE(may_retry(e, clock.now(), "id1"));  // same (domain, id): wait
  EXPECT_FALSE(may_retry(e, clock.now(), ""));     // no id known: wait
  EXPECT_TRUE(may_retry(e, clock.now(), "id2"));   // a new id is a new policy
  clock.advance(Seconds{1});
  EXPECT_TRUE(may_retry(e, clock.now()));
  EXPECT_TRUE(may_retry(e, clock.now(), "id1"));
}

TEST(Freshness, FailureBackoffIsExponentialCappedAndNeverUnderFiveMinutes) {
  const RefreshRules r;  // 300 s .. 3600 s
  const std::vector<std::pair<std::uint32_t, long>> rows = {
      {0, 300}, {1, 300}, {2, 600}, {3, 1200}, {4, 2400}, {5, 3600}, {6, 3600}, {64, 3600}, {0xffffffffU, 3600}};
  for (auto [n, s] : rows) EXPECT_EQ(failure_backoff(n, r), Seconds{s}) << n;

  RefreshRules low;
  low.min_backoff = Seconds{10};
  low.max_backoff = Seconds{100000};
  EXPECT_EQ(failure_backoff(1, low), Seconds{300}) << "the 5-minute minimum holds whatever the config";
  EXPECT_EQ(failure_backoff(2, low), Seconds{600});
  EXPECT_EQ(failure_backoff(40, low), Seconds{100000});

  RefreshRules tiny_cap;
  tiny_cap.max_backoff = Seconds{60};
  EXPECT_EQ(failure_backoff(3, tiny_cap), Seconds{300});
}

struct RefreshCase {
  const char* name;
  CacheEntry entry;
  Seconds expected_next;  // offset from T0
};

TEST(Freshness, NextRefreshTable) {
  const RefreshRules r;  // refresh 1 d, margin 1 h
  CacheEntry confirmed = with_policy(stored(Mode::enforce, kDay, T0));
  confirmed.policy->expires_at = T0 + kHour * 36;  // DNS confirmed the id 12 hours later
  confirmed.checked_at = T0 + kHour * 12;
  CacheEntry negative;
  negative.checked_at = T0;
  negative.no_policy_until = T0 + kHour;
  CacheEntry backing_off = with_policy(stored(Mode::enforce, kDay, T0 - kDay));
  backing_off.checked_at = T0;
  backing_off.failure = failure(T0, Seconds{1200});
  CacheEntry fresh_failure;
  fresh_failure.checked_at = T0;
  fresh_failure.failure = failure(T0, Seconds{300});

  const std::vector<RefreshCase> cases = {
      {"one-day policy: before expiry by the margin", with_policy(stored(Mode::enforce, kDay, T0)), kDay - kHour},
      {"one-week policy: body older than refresh_interval", with_policy(stored(Mode::enforce, kDay * 7, T0)), kDay},
      {"ten-minute policy: half its life", with_policy(stored(Mode::testing, Seconds{600}, T0)), Seconds{300}},
      {"confirmed id: body still re-fetched daily", confirmed, kDay},
      {"negative entry: when it expires", negative, kHour},
      {"failure: not before retry_after", backing_off, Seconds{1200}},
      {"failure only", fresh_failure, Seconds{300}},
      // Expired before a recheck could confirm them: like a negative entry, not every minute.
      {"max_age 0", with_policy(stored(Mode::none, Seconds{0}, T0)), kHour},
      {"max_age 0, enforce", with_policy(stored(Mode::enforce, Seconds{0}, T0)), kHour},
      {"one-minute policy", with_policy(stored(Mode::enforce, Seconds{60}, T0)), kHour},
      {"two-minute policy: half its life, then confirmed", with_policy(stored(Mode::enforce, Seconds{120}, T0)), kMinRecheck},
  };
  for (const auto& c : cases) {
    const SysTime next = next_refresh_time(c.entry, T0, r);
    EXPECT_EQ((next - T0).count(), c.expected_next.count()) << c.name;
    EXPECT_FALSE(refresh_due(c.entry, next - Seconds{1}, r)) << c.name;
    EXPECT_TRUE(refresh_due(c.entry, next, r)) << c.name;
  }
  // Never checked: due at once.
  EXPECT_TRUE(refresh_due(CacheEntry{}, T0, r));
  EXPECT_EQ(next_refresh_time(CacheEntry{}, T0, r), T0);
}

TEST(Freshness, BodyOlderThanRefreshIntervalIsDue) {
  FakeClock clock;
  RefreshRules r;
  r.refresh_interval = Seconds{43200};
  const CacheEntry e = with_policy(stored(Mode::enforce, kDay * 365, clock.now()));
  clock.advance(Seconds{43199});
  EXPECT_FALSE(refresh_due(e, clock.now(), r));
  clock.advance(Seconds{1});
  EXPECT_TRUE(refresh_due(e, clock.now(), r));
  EXPECT_TRUE(policy_usable(e, clock.now())) << "due for refresh, still usable";
}

TEST(Freshness, RedisTtlCoversExpiryPlusRetention) {
  const Seconds retention = kDay;
  CacheEntry e = with_policy(stored(Mode::enforce, kDay * 7, T0));
  e.next_refresh = T0 + kDay;
  EXPECT_EQ(redis_ttl(e, T0, retention), kDay * 7 + retention);
  EXPECT_EQ(redis_ttl(e, T0 + kDay * 3, retention), kDay * 4 + retention);

  CacheEntry negative;
  negative.no_policy_until = T0 + kHour;
  negative.next_refresh = T0 + kHour;
  EXPECT_EQ(redis_ttl(negative, T0, retention), kHour + retention);

  CacheEntry failed = with_policy(stored(Mode::enforce, Seconds{600}, T0));
  failed.failure = failure(T0, Seconds{3600});
  EXPECT_EQ(redis_ttl(failed, T0, retention), kHour + retention) << "backoff outlasts the policy";

  CacheEntry far_refresh;
  far_refresh.next_refresh = T0 + kDay * 2;
  EXPECT_EQ(redis_ttl(far_refresh, T0, retention), kDay * 2 + retention);

  EXPECT_EQ(redis_ttl(CacheEntry{}, T0, retention), retention) << "all in the past: history only";
  EXPECT_EQ(redis_ttl(CacheEntry{}, T0, Seconds{0}), Seconds{1}) << "never 0 (0 would not expire)";
  EXPECT_EQ(redis_ttl(CacheEntry{}, T0, Seconds{-5}), Seconds{1});
}

}  // namespace
}  // namespace mtasts
