// The fleet clock with an injected local clock and remote source: no Redis, no sleeping.
#include "common/fleet/fleet_clock.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>

namespace mtasts {
namespace {

using namespace std::chrono_literals;

constexpr Micros kLocal{1'800'000'000'000'000};  // 2027-01-15, this host's clock

struct Fixture {
  Micros local = kLocal;
  Micros step{0};  // how far the local clock moves during each remote read
  FleetClock clock{{}, [this] { return local; }};
  FleetClock::Source remote_at(Micros offset) {
    return [this, offset] {
      const Micros t = local + offset;
      local += step;
      return t;
    };
  }
};

SysTime at(Micros t) { return SysTime{std::chrono::floor<Seconds>(t)}; }

TEST(FleetClock, IsTheLocalClockUntilMeasured) {
  Fixture f;
  EXPECT_EQ(f.clock.now(), at(kLocal));
  EXPECT_FALSE(f.clock.skew());
  EXPECT_FALSE(f.clock.sync()) << "no source yet";
  EXPECT_EQ(f.clock.now(), at(kLocal));
}

TEST(FleetClock, FollowsTheRemoteClockOfAHostThatIsTenMinutesSlow) {
  Fixture f;
  // This host is 10 minutes behind Redis: Redis reads local + 600 s.
  f.clock.set_source(f.remote_at(600s));
  ASSERT_TRUE(f.clock.sync());
  EXPECT_EQ(f.clock.now(), at(kLocal + 600s));
  ASSERT_TRUE(f.clock.skew());
  EXPECT_EQ(*f.clock.skew(), Micros(600s));
  f.local += 30s;  // the offset holds as local time goes on
  EXPECT_EQ(f.clock.now(), at(kLocal + 630s));
}

TEST(FleetClock, AHostTenMinutesFastIsPutBack) {
  Fixture f;
  f.clock.set_source(f.remote_at(-600s));
  ASSERT_TRUE(f.clock.sync());
  EXPECT_EQ(f.clock.now(), at(kLocal - 600s));
  EXPECT_EQ(*f.clock.skew(), Micros(-600s));
}

TEST(FleetClock, MeasuresAgainstTheMidpointOfTheRoundTrip) {
  Fixture f;
  f.step = 200ms;  // the reply took 200 ms: Redis read its clock about 100 ms after we asked
  f.clock.set_source(f.remote_at(5s));
  ASSERT_TRUE(f.clock.sync());
  EXPECT_EQ(*f.clock.skew(), Micros(5s) - Micros(100ms));
}

TEST(FleetClock, DiscardsASlowRoundTripAndKeepsTheLastOffset) {
  Fixture f;
  f.clock.set_source(f.remote_at(60s));
  ASSERT_TRUE(f.clock.sync());
  f.step = 2s;  // longer than kMaxSampleRtt
  f.clock.set_source(f.remote_at(900s));
  EXPECT_FALSE(f.clock.sync());
  EXPECT_EQ(*f.clock.skew(), Micros(60s));
}

TEST(FleetClock, AFailedMeasurementKeepsTheLastOffset) {
  Fixture f;
  f.clock.set_source(f.remote_at(-42s));
  ASSERT_TRUE(f.clock.sync());
  f.clock.set_source([]() -> Micros { throw std::runtime_error("redis: connection refused"); });
  EXPECT_FALSE(f.clock.sync());
  EXPECT_EQ(*f.clock.skew(), Micros(-42s));
  EXPECT_EQ(f.clock.now(), at(kLocal - 42s));
}

TEST(FleetClock, BackgroundThreadMeasuresAtStart) {
  Fixture f;
  FleetClock clock({.warn_skew = Seconds(10), .interval = 3600s, .retry = 10ms}, [&f] { return f.local; });
  int calls = 0;
  clock.set_source([&]() -> Micros {
    if (++calls < 3) throw std::runtime_error("not yet");  // retried at `retry` until it works
    return f.local + 7s;
  });
  clock.start();
  for (int i = 0; i < 500 && !clock.skew(); ++i) std::this_thread::sleep_for(10ms);
  clock.stop();
  ASSERT_TRUE(clock.skew());
  EXPECT_EQ(*clock.skew(), Micros(7s));
  EXPECT_GE(calls, 3);
}

// Issue 19: after a failover to a host whose clock is days off, every MTA would judge expiry
// by it. An offset beyond the limit is refused: the last accepted one stays, and it is said.
TEST(FleetClock, AnOffsetBeyondTheLimitIsRefusedAndTheLastAcceptedOneStays) {
  Fixture f;
  f.clock.set_skew_limit(3600s);
  f.clock.set_source(f.remote_at(600s));  // ten minutes: a host clock to correct
  ASSERT_TRUE(f.clock.sync());
  EXPECT_FALSE(f.clock.refusing());
  f.clock.set_source(f.remote_at(Micros(3 * 86400s)));  // the new primary is three days fast
  EXPECT_FALSE(f.clock.sync());
  EXPECT_TRUE(f.clock.refusing());
  EXPECT_EQ(*f.clock.skew(), Micros(600s));
  EXPECT_EQ(f.clock.now(), at(kLocal + 600s));
  f.clock.set_source(f.remote_at(-2h));  // or two hours slow
  EXPECT_FALSE(f.clock.sync());
  EXPECT_EQ(f.clock.now(), at(kLocal + 600s));
  f.clock.set_source(f.remote_at(5s));  // fixed
  EXPECT_TRUE(f.clock.sync());
  EXPECT_FALSE(f.clock.refusing());
  EXPECT_EQ(f.clock.now(), at(kLocal + 5s));
}

TEST(FleetClock, BeyondTheLimitBeforeAnyMeasurementIsTheLocalClock) {
  Fixture f;  // the default limit: one hour
  f.clock.set_source(f.remote_at(Micros(-30 * 86400s)));
  EXPECT_FALSE(f.clock.sync());
  EXPECT_TRUE(f.clock.refusing());
  EXPECT_FALSE(f.clock.skew());
  EXPECT_EQ(f.clock.now(), at(kLocal));
}

TEST(FleetClock, SkewText) {
  EXPECT_EQ(skew_text(Micros(600'004'000)), "+600.004s");
  EXPECT_EQ(skew_text(Micros(-12'000)), "-0.012s");
  EXPECT_EQ(skew_text(Micros(0)), "+0.000s");
}

}  // namespace
}  // namespace mtasts
