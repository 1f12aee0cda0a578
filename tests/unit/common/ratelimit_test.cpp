// FailureLog on a fake clock: during an outage of ten minutes with a failure every second,
// the caller is told to log one "down" line, one summary a minute with the count since the
// previous line, and one "up" line with the total and the length of the outage.
#include "common/util/ratelimit.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "tests/fakes/fake_clock.hpp"

namespace mtasts {
namespace {

using E = FailureLog::Event;
using test::FakeClock;

TEST(FailureLog, SuccessWithoutFailureSaysNothing) {
  FakeClock clock;
  FailureLog f;
  EXPECT_EQ(f.success(clock.now()).event, E::none);
  EXPECT_FALSE(f.down());
}

TEST(FailureLog, AnOutageGivesOneLineAMinute) {
  FakeClock clock;
  FailureLog f(Seconds{60});
  const SysTime start = clock.now();
  std::vector<FailureLog::Report> lines;
  for (int i = 0; i < 600; ++i) {  // a failed lookup every second for ten minutes
    const auto r = f.failure(clock.now());
    if (r.event != E::none) lines.push_back(r);
    clock.advance(Seconds{1});
  }
  ASSERT_EQ(lines.size(), 10u);  // the first failure, then one line per minute
  EXPECT_EQ(lines[0].event, E::down);
  EXPECT_EQ(lines[0].since, start);
  std::uint64_t counted = lines[0].failures;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].event, E::still_down) << i;
    EXPECT_EQ(lines[i].failures, 60u) << i;
    EXPECT_EQ(lines[i].since, start);
    EXPECT_EQ(lines[i].down_for, Seconds{60 * static_cast<long>(i)});
    counted += lines[i].failures;
  }
  EXPECT_TRUE(f.down());

  const auto up = f.success(clock.now());
  EXPECT_EQ(up.event, E::up);
  EXPECT_EQ(up.failures, 600u);  // every failure of the outage, reported or summed up
  EXPECT_EQ(up.down_for, Seconds{600});
  EXPECT_EQ(counted, 541u);      // the rest were not yet due for a summary when it ended
  EXPECT_FALSE(f.down());
  EXPECT_EQ(f.success(clock.now()).event, E::none);  // said once

  // A new outage starts a new story.
  clock.advance(Seconds{5});
  const auto again = f.failure(clock.now());
  EXPECT_EQ(again.event, E::down);
  EXPECT_EQ(again.since, clock.now());
}

TEST(FailureLog, ManyThreadsOneDownLine) {
  FakeClock clock;
  FailureLog f;
  std::atomic<int> downs{0}, others{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        const auto r = f.failure(clock.now());
        if (r.event == E::down) ++downs;
        else if (r.event != E::none) ++others;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(downs.load(), 1);
  EXPECT_EQ(others.load(), 0);  // time stood still: no summary due
  EXPECT_EQ(f.success(clock.now()).failures, 8000u);
}

}  // namespace
}  // namespace mtasts
