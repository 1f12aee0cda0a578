// A PolicySource for the milter's unit tests: an in-memory map of cache entries that can be
// told to fail, counts its reads, records signalled misses, and can fill an entry after a
// given number of reads (to test the bounded miss-wait without waiting).
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "milter/lookup.hpp"

namespace mtasts::test {

// Cache entries as a fetcher would write them.
inline CacheEntry policy_entry(Mode mode, const std::string& id, const std::vector<std::string>& mx, SysTime now,
                               Seconds life = Seconds{86400}) {
  StoredPolicy sp;
  sp.policy.mode = mode;
  sp.policy.max_age = life;
  for (const auto& m : mx) {
    std::string err;
    auto p = MxPattern::parse(m, &err);
    if (!p) throw std::invalid_argument("bad mx pattern in test: " + m + ": " + err);
    sp.policy.mx.push_back(*p);
  }
  sp.raw = "version: STSv1\nmode: " + std::string(to_string(mode)) + "\n";
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

class FakeLookupSource final : public milter::PolicySource {
 public:
  std::optional<CacheEntry> get(const Domain& d) override {
    std::lock_guard lk(mu_);
    ++gets_;
    if (fail_) throw std::runtime_error("fake source down");
    if (fill_after_ && gets_ >= fill_after_->first) {
      entries_[d.str()] = fill_after_->second;
      fill_after_.reset();
    }
    auto it = entries_.find(d.str());
    if (it == entries_.end()) return std::nullopt;
    return it->second;
  }
  void signal_miss(const Domain& d, SysTime) override {
    std::lock_guard lk(mu_);
    if (fail_signal_) throw std::runtime_error("fake signal failed");
    misses_.push_back(d.str());
  }

  void set(const std::string& domain, CacheEntry e) {
    std::lock_guard lk(mu_);
    entries_[domain] = std::move(e);
  }
  void erase(const std::string& domain) {
    std::lock_guard lk(mu_);
    entries_.erase(domain);
  }
  // The entry appears for whatever domain is read once the source was read `reads` times.
  void fill_after(int reads, CacheEntry e) {
    std::lock_guard lk(mu_);
    fill_after_.emplace(reads, std::move(e));
  }
  void fail(bool on) {
    std::lock_guard lk(mu_);
    fail_ = on;
  }
  void fail_signal(bool on) {
    std::lock_guard lk(mu_);
    fail_signal_ = on;
  }
  int gets() const {
    std::lock_guard lk(mu_);
    return gets_;
  }
  std::vector<std::string> misses() const {
    std::lock_guard lk(mu_);
    return misses_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, CacheEntry> entries_;
  std::optional<std::pair<int, CacheEntry>> fill_after_;
  std::vector<std::string> misses_;
  bool fail_ = false;
  bool fail_signal_ = false;
  int gets_ = 0;
};

}  // namespace mtasts::test
