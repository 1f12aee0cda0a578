#include "common/util/ratelimit.hpp"

namespace mtasts {

FailureLog::Report FailureLog::failure(SysTime now) {
  std::lock_guard lock(mu_);
  Report r;
  ++total_;
  if (!down_) {
    down_ = true;
    since_ = now;
    last_line_ = now;
    unreported_ = 0;
    total_ = 1;
    r.event = Event::down;
    r.failures = 1;
    r.since = now;
    return r;
  }
  ++unreported_;
  if (now - last_line_ >= repeat_every_) {
    r.event = Event::still_down;
    r.failures = unreported_;
    r.down_for = now - since_;
    r.since = since_;
    unreported_ = 0;
    last_line_ = now;
  }
  return r;
}

FailureLog::Report FailureLog::success(SysTime now) {
  Report r;
  if (!down_.load(std::memory_order_acquire)) return r;
  std::lock_guard lock(mu_);
  if (!down_) return r;  // another thread reported the recovery
  down_ = false;
  r.event = Event::up;
  r.failures = total_;
  r.down_for = now - since_;
  r.since = since_;
  unreported_ = 0;
  total_ = 0;
  return r;
}

bool FailureLog::down() const { return down_.load(std::memory_order_acquire); }

}  // namespace mtasts
