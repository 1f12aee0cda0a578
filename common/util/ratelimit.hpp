// Reporting a failure that repeats (Redis down during an outage: a failed lookup per
// recipient) without flooding the log: the first failure says "down", later ones are counted
// and summed up at most once per `repeat_every`, and the first success after failures says
// "up" with the count and the length of the outage. The caller writes the lines; time is
// passed in (a Clock's now()), so tests need no waiting.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "common/util/clock.hpp"

namespace mtasts {

class FailureLog {
 public:
  enum class Event {
    none,        // nothing to log
    down,        // first failure after success (or at start)
    still_down,  // failures go on: one summary per repeat_every
    up,          // first success after failures
  };
  struct Report {
    Event event = Event::none;
    std::uint64_t failures = 0;  // still_down: since the last line; up: during the whole outage
    Seconds down_for{0};         // still_down, up: since the first failure
    SysTime since{};             // still_down, up: time of the first failure
  };

  explicit FailureLog(Seconds repeat_every = Seconds{60}) : repeat_every_(repeat_every) {}

  // Thread-safe: many sessions report at once.
  Report failure(SysTime now);
  Report success(SysTime now);
  bool down() const;

 private:
  mutable std::mutex mu_;
  Seconds repeat_every_;
  // Read without the lock by success(), the common case on the mail path: while all is well
  // a successful lookup costs one atomic load, not a lock shared by every session.
  std::atomic<bool> down_{false};
  SysTime since_{};
  SysTime last_line_{};
  std::uint64_t unreported_ = 0;
  std::uint64_t total_ = 0;
};

}  // namespace mtasts
