// Time is injected: every rule that depends on "now" takes a Clock. Tests use FakeClock
// (tests/fakes) and never sleep.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

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

// "2026-04-24T12:00:00Z": how every log line and every program output shows a time.
inline std::string iso_time(SysTime t) {
  const auto day = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss hms{t - day};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

}  // namespace mtasts
