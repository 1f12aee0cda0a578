// Cache entries as a fetcher would write them, for tests that need an entry without running
// discovery (unit fakes, and integration tests that fill Redis directly).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "common/sts/cache_entry.hpp"

namespace mtasts::test {

inline CacheEntry policy_entry(Mode mode, const std::string& id, const std::vector<std::string>& mx, SysTime now,
                               Seconds life = Seconds{86400}) {
  StoredPolicy sp;
  sp.policy.mode = mode;
  sp.policy.max_age = life;
  std::string raw = "version: STSv1\r\nmode: " + std::string(to_string(mode)) + "\r\n";
  for (const auto& m : mx) {
    std::string err;
    auto p = MxPattern::parse(m, &err);
    if (!p) throw std::invalid_argument("bad mx pattern in test: " + m + ": " + err);
    sp.policy.mx.push_back(*p);
    raw += "mx: " + m + "\r\n";
  }
  sp.raw = raw + "max_age: " + std::to_string(life.count()) + "\r\n";
  sp.id = id;
  sp.fetched_at = now;
  sp.expires_at = now + life;
  CacheEntry e;
  e.policy = sp;
  e.checked_at = now;
  e.next_refresh = now + life / 2;
  return e;
}

inline CacheEntry negative_entry(SysTime now, Seconds life = Seconds{3600}) {
  CacheEntry e;
  e.no_policy_until = now + life;
  e.checked_at = now;
  e.next_refresh = now + life;
  return e;
}

inline CacheEntry failure_entry(SysTime now) {
  CacheEntry e;
  FailureState f;
  f.kind = FailureKind::fetch;
  f.error = "connection refused";
  f.first_at = f.last_at = now;
  f.retry_after = now + Seconds{300};
  f.count = 1;
  e.failure = f;
  e.checked_at = now;
  e.next_refresh = f.retry_after;
  return e;
}

}  // namespace mtasts::test
