// A PolicySource for the lookup unit tests (milter and tlsmap): an in-memory map of cache entries that can be
// told to fail, counts its reads, records signalled misses, and can fill an entry after a
// given number of reads (to test the bounded miss-wait without waiting). Demand batches
// (note_wanted) are recorded too; fail_signal() makes them fail as well.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/fleet/lookup.hpp"
#include "tests/fakes/cache_entries.hpp"

namespace mtasts::test {

class FakeLookupSource final : public PolicySource {
 public:
  SourceRead get(const Domain& d) override {
    std::lock_guard lk(mu_);
    ++gets_;
    if (fail_) throw std::runtime_error("fake source down");
    if (fill_after_ && gets_ >= fill_after_->first) {
      entries_[d.str()] = fill_after_->second;
      fill_after_.reset();
    }
    SourceRead r;
    if (auto m = marks_.find(d.str()); m != marks_.end()) r.drop_mark = m->second;
    if (unreadable_.count(d.str())) {
      r.unreadable = true;
      return r;
    }
    if (auto it = entries_.find(d.str()); it != entries_.end()) r.entry = it->second;
    return r;
  }
  void signal_miss(const Domain& d, SysTime) override {
    std::lock_guard lk(mu_);
    if (fail_signal_) throw std::runtime_error("fake signal failed");
    misses_.push_back(d.str());
  }

  void note_wanted(const std::vector<std::pair<std::string, SysTime>>& batch) override {
    std::lock_guard lk(mu_);
    ++wanted_batches_;
    if (fail_signal_) throw std::runtime_error("fake note_wanted failed");
    for (const auto& [d, t] : batch) wanted_[d] = std::max(wanted_[d], t);
  }

  void set(const std::string& domain, CacheEntry e) {
    std::lock_guard lk(mu_);
    entries_[domain] = std::move(e);
  }
  void erase(const std::string& domain) {
    std::lock_guard lk(mu_);
    entries_.erase(domain);
    unreadable_.erase(domain);
  }
  // The key holds a value this build cannot decode (a newer format, or garbage).
  void set_unreadable(const std::string& domain) {
    std::lock_guard lk(mu_);
    entries_.erase(domain);
    unreadable_.insert(domain);
  }
  // An operator dropped the domain: the entry goes and the drop mark changes.
  void drop(const std::string& domain, const std::string& mark) {
    std::lock_guard lk(mu_);
    entries_.erase(domain);
    unreadable_.erase(domain);
    marks_[domain] = mark;
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
  // domain -> latest time recorded by note_wanted; and how many batches arrived (failed too).
  std::map<std::string, SysTime> wanted() const {
    std::lock_guard lk(mu_);
    return wanted_;
  }
  int wanted_batches() const {
    std::lock_guard lk(mu_);
    return wanted_batches_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, CacheEntry> entries_;
  std::set<std::string> unreadable_;
  std::map<std::string, std::string> marks_;
  std::optional<std::pair<int, CacheEntry>> fill_after_;
  std::vector<std::string> misses_;
  std::map<std::string, SysTime> wanted_;
  int wanted_batches_ = 0;
  bool fail_ = false;
  bool fail_signal_ = false;
  int gets_ = 0;
};

}  // namespace mtasts::test
