// A host's counts since its last flush to the fleet: per (UTC day, policy domain, applied
// policy) the successful and failed sessions and the failure details. A collector adds
// sessions; a flush applies the whole batch to Redis in one round trip (fleet/report_store),
// exactly once (the batch carries its host's sequence number). The spool codec lets a batch
// wait on disk while Redis is down and survive a crash.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/tlsrpt/model.hpp"

namespace mtasts::tlsrpt {

struct Counts {
  std::uint64_t success = 0;
  std::uint64_t failure = 0;
  std::map<FailureDetail, std::uint64_t> details;  // sums to at most `failure`
  friend bool operator==(const Counts&, const Counts&) = default;
};

struct BatchKey {
  std::string day;         // "YYYY-MM-DD"
  std::string domain;
  std::string policy_key;  // AppliedPolicy::key()
  friend auto operator<=>(const BatchKey&, const BatchKey&) = default;
};

struct BatchEntry {
  AppliedPolicy policy;
  Counts counts;
  friend bool operator==(const BatchEntry&, const BatchEntry&) = default;
};

class Batch {
 public:
  // Counts `s` under (day_of(s.time), s.domain, policy). A failure detail beyond
  // `max_details` distinct ones per key is counted in `failure` only (and in dropped_details()).
  void add(const Session& s, const AppliedPolicy& policy, std::size_t max_details = 1000);

  const std::map<BatchKey, BatchEntry>& entries() const noexcept { return entries_; }
  bool empty() const noexcept { return entries_.empty(); }
  std::uint64_t sessions() const noexcept { return sessions_; }
  std::uint64_t dropped_details() const noexcept { return dropped_details_; }
  void clear();

  // Spool codec: a versioned, line-oriented text form. decode() validates as strictly as
  // input from the network (bounded sizes, known result and policy types) and returns
  // nullopt with `error` set when the text is not a batch.
  std::string encode() const;
  static std::optional<Batch> decode(std::string_view text, std::string* error);

  friend bool operator==(const Batch&, const Batch&) = default;

 private:
  std::map<BatchKey, BatchEntry> entries_;
  std::uint64_t sessions_ = 0;
  std::uint64_t dropped_details_ = 0;
};

}  // namespace mtasts::tlsrpt
