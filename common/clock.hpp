// Time is injected: every rule that depends on "now" takes a Clock. Tests use FakeClock
// (tests/fakes) and never sleep.
#pragma once

#include <chrono>

namespace mtasts {

using Seconds = std::chrono::seconds;
using SysTime = std::chrono::sys_seconds;  // wall time, whole seconds (what Redis stores)

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SysTime now() const = 0;
};

class SystemClock final : public Clock {
 public:
  SysTime now() const override {
    return std::chrono::time_point_cast<Seconds>(std::chrono::system_clock::now());
  }
};

}  // namespace mtasts
