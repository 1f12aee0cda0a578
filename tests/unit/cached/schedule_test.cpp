// The fetcher's scheduling rules (cached/schedule.hpp), one row per rule: the refresh reserve,
// the order of due domains, and which scheduled domains may be evicted.
#include "cached/schedule.hpp"

#include <gtest/gtest.h>

#include "tests/fakes/cache_entries.hpp"

namespace mtasts {
namespace {

constexpr SysTime T0{Seconds{1777032000}};
constexpr Seconds kForget{30 * 86400};

CacheEntry policy(Mode m, Seconds expires_in) {
  // Fetched so that it expires `expires_in` after T0.
  return test::policy_entry(m, "id1", {"mx.example.com"}, T0 + expires_in - Seconds{86400});
}

TEST(RefreshReserve, IsAShareOfConcurrencyRoundedUpAtLeastOne) {
  struct Row {
    std::size_t concurrency;
    unsigned share;
    std::size_t reserve;
  };
  for (const Row& r : std::vector<Row>{{32, 25, 8}, {4, 25, 1}, {1, 25, 1}, {10, 25, 3}, {3, 1, 1},
                                        {32, 0, 0}, {32, 100, 32}, {32, 200, 32}, {0, 25, 0}})
    EXPECT_EQ(sched::refresh_reserve(r.concurrency, r.share), r.reserve) << r.concurrency << " " << r.share;
}

TEST(RefreshesFirst, FillTheReserveWithTheFreeSlots) {
  EXPECT_EQ(sched::refreshes_first(8, 0, 32), 8u);
  EXPECT_EQ(sched::refreshes_first(8, 3, 32), 5u) << "refreshes in flight count against the reserve";
  EXPECT_EQ(sched::refreshes_first(8, 8, 32), 0u);
  EXPECT_EQ(sched::refreshes_first(8, 12, 32), 0u);
  EXPECT_EQ(sched::refreshes_first(8, 0, 2), 2u) << "never more than the free slots";
  EXPECT_EQ(sched::refreshes_first(0, 0, 32), 0u);
}

TEST(OrderDue, UsableEnforceAndTestingClosestToExpiryFirstOthersKeepTheirOrder) {
  std::vector<PolicyStore::Scheduled> due{
      {"none-entry.example", std::nullopt},
      {"negative.example", test::negative_entry(T0 - Seconds{7200})},
      {"enforce-late.example", policy(Mode::enforce, Seconds{7200})},
      {"mode-none.example", policy(Mode::none, Seconds{10})},
      {"testing-soon.example", policy(Mode::testing, Seconds{600})},
      {"expired.example", policy(Mode::enforce, Seconds{-10})},
      {"enforce-soon.example", policy(Mode::enforce, Seconds{60})},
  };
  sched::order_due(due, T0);
  std::vector<std::string> names;
  for (const auto& d : due) names.push_back(d.name);
  EXPECT_EQ(names, (std::vector<std::string>{"enforce-soon.example", "testing-soon.example", "enforce-late.example",
                                             "none-entry.example", "negative.example", "mode-none.example",
                                             "expired.example"}));
}

TEST(ChooseEvictions, UnrecordedFirstThenLeastRecentlyWantedNeverAUsableEnforcePolicy) {
  std::vector<PolicyStore::Candidate> c{
      {"recent-negative.example", T0 - Seconds{10}, test::negative_entry(T0)},
      {"old-enforce.example", T0 - Seconds{3600}, policy(Mode::enforce, Seconds{86000})},
      {"old-testing.example", T0 - Seconds{1800}, policy(Mode::testing, Seconds{86000})},
      {"legacy.example", std::nullopt, policy(Mode::enforce, Seconds{86000})},
      {"forgotten-enforce.example", T0 - kForget - Seconds{1}, policy(Mode::enforce, Seconds{86000})},
      {"expired-enforce.example", T0 - Seconds{7200}, policy(Mode::enforce, Seconds{-1})},
  };
  EXPECT_EQ(sched::choose_evictions(c, 10, T0, kForget),
            (std::vector<std::string>{"expired-enforce.example", "old-testing.example", "recent-negative.example"}))
      << "usable enforce policies are never evicted: their wanted time (or its absence) is written by MTA "
         "hosts' Redis users, and alone it never unschedules one (issue 19)";
  EXPECT_EQ(sched::choose_evictions(c, 2, T0, kForget),
            (std::vector<std::string>{"expired-enforce.example", "old-testing.example"}));
  EXPECT_TRUE(sched::choose_evictions(c, 0, T0, kForget).empty());
  EXPECT_TRUE(sched::protected_from_eviction(c[1], T0, kForget));
  EXPECT_TRUE(sched::protected_from_eviction(c[3], T0, kForget)) << "no record: still a usable enforce policy";
  EXPECT_TRUE(sched::protected_from_eviction(c[4], T0, kForget)) << "wanted long ago (or said so): still protected";
}

}  // namespace
}  // namespace mtasts
