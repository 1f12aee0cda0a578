#include "common/tlsrpt/batch.hpp"

namespace mtasts::tlsrpt {

// encode() and decode() are in batch_codec.cpp.

void Batch::add(const Session& s, const AppliedPolicy& policy, std::size_t max_details) {
  BatchKey key{day_of(s.time), s.domain, policy.key()};
  auto [it, inserted] = entries_.try_emplace(std::move(key));
  BatchEntry& e = it->second;
  if (inserted) e.policy = policy;
  ++sessions_;
  if (!is_failure(s.result)) {
    ++e.counts.success;
    return;
  }
  ++e.counts.failure;
  FailureDetail d = detail_of(s);
  auto found = e.counts.details.find(d);
  if (found != e.counts.details.end()) {
    ++found->second;
  } else if (e.counts.details.size() < max_details) {
    e.counts.details.emplace(std::move(d), 1);
  } else {
    ++dropped_details_;
  }
}

void Batch::clear() {
  entries_.clear();
  sessions_ = 0;
  dropped_details_ = 0;
}

}  // namespace mtasts::tlsrpt
