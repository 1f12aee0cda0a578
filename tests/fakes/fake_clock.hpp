// A Clock for unit tests: time stands still until the test moves it, so rules that depend on
// "now" are tested without sleeping.
#pragma once

#include <atomic>
#include <chrono>

#include "common/util/clock.hpp"

namespace mtasts::test {

class FakeClock final : public Clock {
 public:
  // 2026-04-24T12:00:00Z: a fixed, recognisable start so that failures read easily.
  static constexpr SysTime kStart{Seconds{1777032000}};

  explicit FakeClock(SysTime start = kStart) : now_(start.time_since_epoch().count()) {}

  SysTime now() const override { return SysTime{Seconds{now_.load()}}; }
  void set(SysTime t) { now_.store(t.time_since_epoch().count()); }
  void advance(Seconds d) { now_.fetch_add(d.count()); }

 private:
  // Atomic so that a test may move time while a worker thread reads it.
  std::atomic<Seconds::rep> now_;
};

}  // namespace mtasts::test
