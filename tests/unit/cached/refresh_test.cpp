// Unit tests of the RFC 8461 cache rules (cached/refresh.hpp), one test per rule of
// RFC-NOTES.md "Caching and refresh", with a fixed "now" (no clock, no sleeping).
#include "cached/refresh.hpp"

#include <gtest/gtest.h>

#include "tests/fakes/fake_clock.hpp"

namespace mtasts {
namespace {

using discovery::Report;
using discovery::Status;
using refresh::Action;

const SysTime T0 = test::FakeClock::kStart;

Policy policy(Mode m, Seconds max_age = Seconds{86400}) {
  Policy p;
  p.mode = m;
  p.max_age = max_age;
  if (m != Mode::none) {
    std::string err;
    p.mx.push_back(*MxPattern::parse("mail.example.com", &err));
  }
  return p;
}

Report valid(Mode m, const std::string& id, Seconds max_age = Seconds{86400}) {
  Report r;
  r.domain = "example.com";
  r.status = Status::valid;
  r.id = id;
  r.txt.status = TxtStatus::policy;
  r.txt.id = id;
  r.policy = policy(m, max_age);
  r.fetched = true;
  r.fetch.kind = https::ErrorKind::none;
  r.fetch.status = 200;
  r.fetch.body = std::string("version: STSv1\nmode: ") + to_string(m) + "\n";
  return r;
}

Report unchanged(const CacheEntry& e) {
  Report r;
  r.domain = "example.com";
  r.status = Status::unchanged;
  r.id = e.policy->id;
  r.txt.status = TxtStatus::policy;
  r.policy = e.policy->policy;
  return r;
}

Report absent() {
  Report r;
  r.domain = "example.com";
  r.status = Status::no_policy;
  r.txt.status = TxtStatus::no_policy;
  return r;
}

Report failed(Status s, const std::string& id = "") {
  Report r;
  r.domain = "example.com";
  r.status = s;
  r.id = id;
  if (s == Status::no_policy) {  // an invalid STSv1 record set
    r.txt.status = TxtStatus::invalid;
    r.errors.push_back("TXT: two STSv1 records");
  } else {
    r.errors.push_back(std::string("it failed: ") + discovery::to_string(s));
  }
  return r;
}

CacheEntry entry_with(Mode m, const std::string& id, SysTime fetched, Seconds max_age = Seconds{86400}) {
  CacheEntry e;
  StoredPolicy p;
  p.policy = policy(m, max_age);
  p.raw = "raw";
  p.id = id;
  p.fetched_at = fetched;
  p.expires_at = fetched + max_age;
  e.policy = p;
  e.checked_at = fetched;
  e.next_refresh = fetched + Seconds{3600};
  return e;
}

bool has_event(const refresh::Outcome& o, log::Level lvl, const std::string& msg) {
  for (const auto& e : o.events)
    if (e.level == lvl && e.message == msg) return true;
  return false;
}

refresh::Rules rules() { return refresh::Rules{}; }

// ---- a fetched policy ---------------------------------------------------------------------

TEST(Refresh, NewPolicyIsStoredUsableForMaxAge) {
  const auto o = refresh::apply(std::nullopt, valid(Mode::enforce, "id1"), T0, rules());
  ASSERT_TRUE(o.entry.policy);
  EXPECT_EQ(o.entry.policy->id, "id1");
  EXPECT_EQ(o.entry.policy->fetched_at, T0);
  EXPECT_EQ(o.entry.policy->expires_at, T0 + Seconds{86400});
  EXPECT_EQ(o.entry.policy->raw, "version: STSv1\nmode: enforce\n");
  EXPECT_EQ(verdict(o.entry, T0), Verdict::enforce);
  EXPECT_FALSE(o.entry.failure);
  EXPECT_FALSE(o.entry.no_policy_until);
  EXPECT_EQ(o.entry.checked_at, T0);
  EXPECT_TRUE(o.announce);
  EXPECT_TRUE(has_event(o, log::Level::info, "policy discovered"));
}

TEST(Refresh, RefreshIsScheduledBeforeExpiryAndWithinTheRefreshInterval) {
  auto r = rules();
  const auto o = refresh::apply(std::nullopt, valid(Mode::enforce, "id1", Seconds{7 * 86400}), T0, r);
  EXPECT_GT(o.entry.next_refresh, T0);
  EXPECT_LE(o.entry.next_refresh, T0 + r.cache.refresh_interval);
  const auto short_life = refresh::apply(std::nullopt, valid(Mode::enforce, "id1", Seconds{7200}), T0, r);
  EXPECT_LT(short_life.entry.next_refresh, short_life.entry.policy->expires_at);
}

TEST(Refresh, IdChangeReplacesPolicyAndAnnounces) {
  const auto old = entry_with(Mode::enforce, "id1", T0 - Seconds{600});
  const auto o = refresh::apply(old, valid(Mode::enforce, "id2"), T0, rules());
  EXPECT_EQ(o.entry.policy->id, "id2");
  EXPECT_EQ(o.entry.policy->fetched_at, T0);
  EXPECT_TRUE(o.announce);
  EXPECT_TRUE(has_event(o, log::Level::notice, "policy changed"));
}

TEST(Refresh, SamePolicyRefetchedDoesNotAnnounce) {
  const auto old = entry_with(Mode::enforce, "id1", T0 - Seconds{90000}, Seconds{7 * 86400});
  const auto o = refresh::apply(old, valid(Mode::enforce, "id1", Seconds{7 * 86400}), T0, rules());
  EXPECT_EQ(o.entry.policy->fetched_at, T0);
  EXPECT_FALSE(o.announce);
  EXPECT_TRUE(o.events.empty());
}

TEST(Refresh, DowngradeEnforceToTestingIsAWarning) {
  const auto old = entry_with(Mode::enforce, "id1", T0 - Seconds{600});
  const auto o = refresh::apply(old, valid(Mode::testing, "id2"), T0, rules());
  EXPECT_EQ(verdict(o.entry, T0), Verdict::testing);
  EXPECT_TRUE(o.announce);
  EXPECT_TRUE(has_event(o, log::Level::warning, "policy downgraded"));
}

TEST(Refresh, FetchedNoneReplacesEnforceAtOnce) {
  const auto old = entry_with(Mode::enforce, "id1", T0 - Seconds{600});
  const auto o = refresh::apply(old, valid(Mode::none, "id2"), T0, rules());
  EXPECT_EQ(verdict(o.entry, T0), Verdict::none);
  EXPECT_EQ(o.entry.policy->policy.mode, Mode::none);
  EXPECT_TRUE(o.announce);
  EXPECT_TRUE(has_event(o, log::Level::warning, "policy downgraded"));
}

TEST(Refresh, UpgradeIsNotAWarning) {
  const auto old = entry_with(Mode::testing, "id1", T0 - Seconds{600});
  const auto o = refresh::apply(old, valid(Mode::enforce, "id2"), T0, rules());
  EXPECT_FALSE(has_event(o, log::Level::warning, "policy downgraded"));
  EXPECT_TRUE(o.announce);
}

TEST(Refresh, MaxAgeZeroIsStoredButUsableForNothingAndDoesNotSpin) {
  const auto o = refresh::apply(std::nullopt, valid(Mode::enforce, "id0", Seconds{0}), T0, rules());
  ASSERT_TRUE(o.entry.policy);
  EXPECT_EQ(o.entry.policy->expires_at, T0);
  EXPECT_FALSE(policy_usable(o.entry, T0));
  EXPECT_GE(o.entry.next_refresh, T0 + refresh::kMinRefreshDelay);
}

// A policy with max_age 0 or a few seconds can never be confirmed by the cheap TXT step
// (it has expired by the next check), so every check is an HTTPS fetch: it is checked like a
// negative entry (after negative_ttl), not every minute, and meanwhile the milter delivers as
// if there were no policy rather than as "unknown", and a miss does not bring a fetch.
TEST(Refresh, TinyMaxAgeIsScheduledLikeANegativeEntry) {
  for (const Seconds max_age : {Seconds{0}, Seconds{1}, Seconds{30}, Seconds{60}}) {
    const auto o = refresh::apply(std::nullopt, valid(Mode::enforce, "id0", max_age), T0, rules());
    EXPECT_EQ(o.entry.next_refresh, T0 + rules().cache.negative_ttl) << max_age.count();
    // A fetcher polling every minute for an hour finds the domain due once, at the end.
    int fetches = 0;
    for (Seconds t{60}; t < rules().cache.negative_ttl; t += Seconds{60})
      if (T0 + t >= o.entry.next_refresh) ++fetches;
    EXPECT_EQ(fetches, 0) << max_age.count();
    EXPECT_EQ(verdict(o.entry, T0 + Seconds{61}), Verdict::no_policy) << max_age.count();
    EXPECT_EQ(refresh::plan(o.entry, T0 + Seconds{120}, true), refresh::Action::settled) << max_age.count();
  }
  // Two minutes is long enough to be confirmed by TXT at half its life: the usual rule.
  const auto o = refresh::apply(std::nullopt, valid(Mode::enforce, "id0", Seconds{120}), T0, rules());
  EXPECT_EQ(o.entry.next_refresh, T0 + refresh::kMinRefreshDelay);
}

TEST(Refresh, SuccessAfterFailuresClearsTheStreak) {
  auto old = entry_with(Mode::enforce, "id1", T0 - Seconds{3600});
  old.failure = FailureState{FailureKind::fetch, "boom", "id2", T0 - Seconds{1200}, T0 - Seconds{600},
                             T0 - Seconds{1}, 2};
  const auto o = refresh::apply(old, valid(Mode::enforce, "id2"), T0, rules());
  EXPECT_FALSE(o.entry.failure);
  EXPECT_TRUE(has_event(o, log::Level::notice, "refresh recovered"));
}

// During a long backoff the entry is still visited every 5 minutes (for the TXT step only,
// see plan()/backoff_visit), so that a new id is seen long before the retry time.
TEST(Refresh, LongBackoffIsStillVisitedEveryFiveMinutes) {
  auto old = entry_with(Mode::enforce, "id1", T0 - Seconds{7200});
  old.failure = FailureState{FailureKind::fetch, "boom", "id2", T0 - Seconds{7200}, T0 - Seconds{3600},
                             T0 - Seconds{1}, 6};
  discovery::Report failed;
  failed.domain = "example.com";
  failed.status = discovery::Status::fetch_error;
  failed.id = "id2";
  failed.errors = {"HTTP 500"};
  const auto o = refresh::apply(old, failed, T0, rules());
  ASSERT_TRUE(o.entry.failure);
  EXPECT_EQ(o.entry.failure->retry_after, T0 + Seconds{3600});
  EXPECT_EQ(o.entry.next_refresh, T0 + kMinFailureBackoff);
  EXPECT_EQ(refresh::plan(o.entry, o.entry.next_refresh, false), refresh::Action::backoff);
  EXPECT_EQ(refresh::backoff_visit(o.entry, T0 + Seconds{3400}), T0 + Seconds{3600});
}

// What the fetcher writes, readers accept (check_invariants): even after the clock stepped
// back during a failure streak, or a streak as long as a counter can count.
TEST(Refresh, WrittenEntriesKeepTheInvariantsReadersCheck) {
  discovery::Report failed;
  failed.domain = "example.com";
  failed.status = discovery::Status::fetch_error;
  failed.id = "id2";
  failed.errors = {std::string(10000, 'e')};  // a long error text is cut to the bound
  auto old = entry_with(Mode::enforce, "id1", T0 - Seconds{7200});
  old.failure = FailureState{FailureKind::fetch, "boom", "id2", T0 + Seconds{600}, T0 + Seconds{600},
                             T0 + Seconds{900}, 0xffffffffU};
  const auto o = refresh::apply(old, failed, T0, rules());  // now is before the streak began
  EXPECT_EQ(check_invariants(o.entry), "");
  EXPECT_EQ(o.entry.failure->count, 0xffffffffU);
  EXPECT_LE(o.entry.failure->error.size(), kMaxFailureErrorBytes);
  for (const auto& r : {valid(Mode::enforce, "id3"), valid(Mode::none, "id4", Seconds{0})})
    EXPECT_EQ(check_invariants(refresh::apply(old, r, T0, rules()).entry), "");
}

// ---- unchanged id ---------------------------------------------------------------------------

TEST(Refresh, UnchangedIdConfirmedByDnsExtendsLife) {
  const auto old = entry_with(Mode::enforce, "id1", T0 - Seconds{3600}, Seconds{86400});
  const auto o = refresh::apply(old, unchanged(old), T0, rules());
  EXPECT_EQ(o.entry.policy->expires_at, T0 + Seconds{86400});
  EXPECT_EQ(o.entry.policy->fetched_at, T0 - Seconds{3600});  // the body was not re-fetched
  EXPECT_EQ(o.entry.policy->raw, "raw");
  EXPECT_FALSE(o.announce);
  EXPECT_TRUE(o.events.empty());
  // The body is still re-fetched within the refresh interval of its fetch.
  EXPECT_LE(o.entry.next_refresh, o.entry.policy->fetched_at + rules().cache.refresh_interval);
}

TEST(Refresh, UnchangedClearsAnEarlierFailure) {
  auto old = entry_with(Mode::enforce, "id1", T0 - Seconds{3600});
  old.failure = FailureState{FailureKind::dns, "timeout", "", T0 - Seconds{900}, T0 - Seconds{900},
                             T0 - Seconds{600}, 1};
  const auto o = refresh::apply(old, unchanged(old), T0, rules());
  EXPECT_FALSE(o.entry.failure);
}

// ---- no policy published -------------------------------------------------------------------

TEST(Refresh, NoPolicyAndNothingCachedWritesNegativeEntry) {
  auto r = rules();
  const auto o = refresh::apply(std::nullopt, absent(), T0, r);
  EXPECT_FALSE(o.entry.policy);
  ASSERT_TRUE(o.entry.no_policy_until);
  EXPECT_EQ(*o.entry.no_policy_until, T0 + r.cache.negative_ttl);
  EXPECT_EQ(verdict(o.entry, T0), Verdict::no_policy);
  EXPECT_TRUE(o.announce);  // unknown -> no-policy
  EXPECT_GE(o.entry.next_refresh, T0 + refresh::kMinRefreshDelay);
  EXPECT_LE(o.entry.next_refresh, *o.entry.no_policy_until);
}

TEST(Refresh, VanishedTxtKeepsUsableCachedPolicyUntilExpiry) {
  const auto old = entry_with(Mode::enforce, "id1", T0 - Seconds{3600});
  const auto o = refresh::apply(old, absent(), T0, rules());
  ASSERT_TRUE(o.entry.policy);
  EXPECT_EQ(o.entry.policy, old.policy);  // not extended, not dropped
  EXPECT_EQ(verdict(o.entry, T0), Verdict::enforce);
  EXPECT_FALSE(o.announce);
  EXPECT_TRUE(has_event(o, log::Level::warning, "policy vanished"));
  // Once it expires the domain is as if it had no policy.
  EXPECT_NE(verdict(o.entry, old.policy->expires_at), Verdict::enforce);
}

TEST(Refresh, VanishedTxtWithExpiredPolicyDropsItForANegativeEntry) {
  const auto old = entry_with(Mode::enforce, "id1", T0 - Seconds{2 * 86400});
  const auto o = refresh::apply(old, absent(), T0, rules());
  EXPECT_FALSE(o.entry.policy);
  EXPECT_TRUE(o.entry.no_policy_until);
  EXPECT_EQ(verdict(o.entry, T0), Verdict::no_policy);
}

TEST(Refresh, NoneModeVanishingIsNotAWarning) {
  const auto old = entry_with(Mode::none, "id1", T0 - Seconds{3600});
  const auto o = refresh::apply(old, absent(), T0, rules());
  EXPECT_FALSE(has_event(o, log::Level::warning, "policy vanished"));
}

// ---- failures ---------------------------------------------------------------------------------

TEST(Refresh, EveryFailureKeepsUsableCachedPolicy) {
  const std::pair<Status, FailureKind> cases[] = {
      {Status::dns_error, FailureKind::dns},
      {Status::fetch_error, FailureKind::fetch},
      {Status::policy_invalid, FailureKind::policy_invalid},
      {Status::no_policy, FailureKind::txt_invalid},
  };
  for (const auto& [status, kind] : cases) {
    const auto old = entry_with(Mode::enforce, "id1", T0 - Seconds{3600});
    const auto o = refresh::apply(old, failed(status, "id2"), T0, rules());
    EXPECT_EQ(o.entry.policy, old.policy) << discovery::to_string(status);
    EXPECT_EQ(verdict(o.entry, T0), Verdict::enforce);
    ASSERT_TRUE(o.entry.failure);
    EXPECT_EQ(o.entry.failure->kind, kind);
    EXPECT_EQ(o.entry.failure->count, 1u);
    EXPECT_EQ(o.entry.failure->txt_id, "id2");
    EXPECT_FALSE(o.announce);
  }
}

TEST(Refresh, FailureNeverRetriedWithinFiveMinutes) {
  auto r = rules();
  r.cache.min_backoff = Seconds{10};  // misconfigured lower: the RFC floor still holds
  const auto o = refresh::apply(std::nullopt, failed(Status::fetch_error, "id1"), T0, r);
  ASSERT_TRUE(o.entry.failure);
  EXPECT_GE(o.entry.failure->retry_after, T0 + Seconds{300});
  EXPECT_FALSE(may_retry(o.entry, T0 + Seconds{299}));
  EXPECT_GE(o.entry.next_refresh, o.entry.failure->retry_after);
  EXPECT_EQ(refresh::plan(o.entry, T0 + Seconds{120}, true), Action::backoff);
  EXPECT_EQ(refresh::plan(o.entry, o.entry.failure->retry_after, true), Action::discover);
}

TEST(Refresh, EventTimesAreIsoLikeEveryOtherTimeInTheLog) {
  const auto o = refresh::apply(std::nullopt, failed(Status::fetch_error, "id1"), T0, rules());
  ASSERT_TRUE(o.entry.failure);
  bool seen = false;
  for (const auto& e : o.events)
    for (const auto& [k, v] : e.fields)
      if (k == "retry_after") {
        seen = true;
        EXPECT_EQ(v, iso_time(o.entry.failure->retry_after));
        EXPECT_EQ(v.back(), 'Z') << v;
      }
  EXPECT_TRUE(seen);
}

TEST(Refresh, FailureWithNothingCachedDeliversAsNoPolicy) {
  const auto o = refresh::apply(std::nullopt, failed(Status::fetch_error, "id1"), T0, rules());
  EXPECT_FALSE(o.entry.policy);
  EXPECT_EQ(verdict(o.entry, T0), Verdict::no_policy);
  EXPECT_TRUE(o.announce);
}

TEST(Refresh, FailureLeavesNegativeEntryAlone) {
  CacheEntry old;
  old.no_policy_until = T0 + Seconds{1800};
  old.checked_at = T0 - Seconds{1800};
  const auto o = refresh::apply(old, failed(Status::dns_error), T0, rules());
  EXPECT_EQ(o.entry.no_policy_until, old.no_policy_until);
  EXPECT_FALSE(o.entry.policy);
}

TEST(Refresh, BackoffGrowsWithTheStreakAndIsCapped) {
  auto r = rules();
  r.cache.min_backoff = Seconds{300};
  r.cache.max_backoff = Seconds{1200};
  std::optional<CacheEntry> e;
  std::vector<Seconds> delays;
  SysTime now = T0;
  for (int i = 0; i < 5; ++i) {
    auto o = refresh::apply(e, failed(Status::fetch_error, "id1"), now, r);
    delays.push_back(o.entry.failure->retry_after - now);
    EXPECT_EQ(o.entry.failure->first_at, T0);
    EXPECT_EQ(o.entry.failure->last_at, now);
    EXPECT_EQ(o.entry.failure->count, static_cast<std::uint32_t>(i + 1));
    e = o.entry;
    now = o.entry.failure->retry_after;
  }
  EXPECT_EQ(delays, (std::vector<Seconds>{Seconds{300}, Seconds{600}, Seconds{1200}, Seconds{1200}, Seconds{1200}}));
}

TEST(Refresh, RepeatedFailureOfNonNonePolicyIsAnAlert) {
  auto r = rules();
  r.failure_alert = 3;
  std::optional<CacheEntry> e = entry_with(Mode::enforce, "id1", T0 - Seconds{3600}, Seconds{7 * 86400});
  SysTime now = T0;
  for (int i = 1; i <= 3; ++i) {
    auto o = refresh::apply(e, failed(Status::fetch_error, "id1"), now, r);
    EXPECT_EQ(has_event(o, log::Level::warning, "refresh failing"), i >= 3) << i;
    e = o.entry;
    now = o.entry.failure->retry_after;
  }
}

TEST(Refresh, RepeatedFailureOfNonePolicyIsNoAlert) {
  auto r = rules();
  r.failure_alert = 1;
  const auto old = entry_with(Mode::none, "id1", T0 - Seconds{3600});
  const auto o = refresh::apply(old, failed(Status::fetch_error, "id1"), T0, r);
  EXPECT_FALSE(has_event(o, log::Level::warning, "refresh failing"));
}

// ---- jitter -------------------------------------------------------------------------------------

TEST(Refresh, JitterOnlyMovesRefreshEarlierWithinItsShare) {
  const SysTime next = T0 + Seconds{1000};
  EXPECT_EQ(refresh::jittered(T0, next, 10, 0.0, T0), next);
  EXPECT_EQ(refresh::jittered(T0, next, 10, 0.5, T0), next - Seconds{50});
  EXPECT_EQ(refresh::jittered(T0, next, 10, 0.999, T0), next - Seconds{99});
  EXPECT_EQ(refresh::jittered(T0, next, 0, 0.9, T0), next);
  EXPECT_EQ(refresh::jittered(T0, next, 10, 0.9, next - Seconds{20}), next - Seconds{20});
  const auto base = refresh::apply(std::nullopt, valid(Mode::enforce, "id1"), T0, rules(), 0.0);
  const auto early = refresh::apply(std::nullopt, valid(Mode::enforce, "id1"), T0, rules(), 0.99);
  EXPECT_LT(early.entry.next_refresh, base.entry.next_refresh);
  EXPECT_GE(early.entry.next_refresh, T0 + (base.entry.next_refresh - T0) * 89 / 100);
}

TEST(Refresh, JitterNeverSchedulesBeforeTheFailureBackoff) {
  const auto o = refresh::apply(std::nullopt, failed(Status::dns_error), T0, rules(), 0.99);
  EXPECT_GE(o.entry.next_refresh, o.entry.failure->retry_after);
}

// ---- what a fetcher does with a claimed domain -----------------------------------------------

TEST(RefreshPlan, Table) {
  const auto fresh = entry_with(Mode::enforce, "id1", T0 - Seconds{60});  // next_refresh T0+3540
  auto expired = entry_with(Mode::enforce, "id1", T0 - Seconds{3 * 86400});
  auto in_backoff = fresh;
  in_backoff.failure = FailureState{FailureKind::fetch, "x", "id1", T0, T0, T0 + Seconds{300}, 1};
  auto backoff_over = in_backoff;
  backoff_over.failure->retry_after = T0 - Seconds{1};
  backoff_over.next_refresh = T0 - Seconds{1};
  CacheEntry negative;
  negative.no_policy_until = T0 + Seconds{600};
  negative.next_refresh = T0 + Seconds{600};

  EXPECT_EQ(refresh::plan(std::nullopt, T0, true), Action::discover);
  EXPECT_EQ(refresh::plan(std::nullopt, T0, false), Action::discover);
  EXPECT_EQ(refresh::plan(fresh, T0, true), Action::settled);
  EXPECT_EQ(refresh::plan(negative, T0, true), Action::settled);
  auto just_done = fresh;  // another fetcher refreshed it 10 s ago
  just_done.checked_at = T0 - Seconds{10};
  EXPECT_EQ(refresh::plan(just_done, T0, false), Action::skip);
  // Put forward in the schedule on purpose (checked long ago, not yet due by itself).
  auto pulled = fresh;
  pulled.checked_at = T0 - Seconds{3600};
  EXPECT_EQ(refresh::plan(pulled, T0, false), Action::discover);
  EXPECT_EQ(refresh::plan(fresh, fresh.next_refresh, false), Action::discover);
  EXPECT_EQ(refresh::plan(expired, T0, true), Action::discover);
  EXPECT_EQ(refresh::plan(in_backoff, T0, true), Action::backoff);
  EXPECT_EQ(refresh::plan(backoff_over, T0, true), Action::discover);
  EXPECT_EQ(refresh::plan(backoff_over, T0, false), Action::discover);
}

}  // namespace
}  // namespace mtasts
