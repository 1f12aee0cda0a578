// The fetcher's scheduling rules; see schedule.hpp.
#include "cached/schedule.hpp"

#include <algorithm>
#include <unordered_set>

namespace mtasts::sched {

std::size_t refresh_reserve(std::size_t concurrency, unsigned share_percent) noexcept {
  if (share_percent == 0 || concurrency == 0) return 0;
  const std::size_t share = std::min<unsigned>(share_percent, 100);
  return std::max<std::size_t>(1, (concurrency * share + 99) / 100);
}

std::size_t refreshes_first(std::size_t reserve, std::size_t refreshing, std::size_t free) noexcept {
  return refreshing >= reserve ? 0 : std::min(reserve - refreshing, free);
}

namespace {
// Expiry of a usable enforce or testing policy: what a late refresh would lose.
std::optional<SysTime> protected_expiry(const std::optional<CacheEntry>& e, SysTime now) {
  if (!e) return std::nullopt;
  const Verdict v = verdict(*e, now);
  if (v != Verdict::enforce && v != Verdict::testing) return std::nullopt;
  return e->policy->expires_at;
}
}  // namespace

void order_due(std::vector<PolicyStore::Scheduled>& due, SysTime now) {
  std::vector<std::optional<SysTime>> key(due.size());
  std::vector<std::size_t> idx(due.size());
  for (std::size_t i = 0; i < due.size(); ++i) {
    key[i] = protected_expiry(due[i].entry, now);
    idx[i] = i;
  }
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    if (key[a].has_value() != key[b].has_value()) return key[a].has_value();
    return key[a] && *key[a] < *key[b];
  });
  std::vector<PolicyStore::Scheduled> out;
  out.reserve(due.size());
  for (std::size_t i : idx) out.push_back(std::move(due[i]));
  due = std::move(out);
}

bool protected_from_eviction(const PolicyStore::Candidate& c, SysTime now, Seconds /*forget_after*/) {
  // Not the wanted time: every MTA host's Redis user may set it to anything (issue 19).
  return c.entry && verdict(*c.entry, now) == Verdict::enforce;
}

std::vector<std::string> choose_evictions(std::vector<PolicyStore::Candidate> candidates, std::size_t excess,
                                          SysTime now, Seconds forget_after) {
  std::stable_sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    if (a.wanted.has_value() != b.wanted.has_value()) return !a.wanted.has_value();
    return a.wanted && *a.wanted < *b.wanted;
  });
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  for (const auto& c : candidates) {
    if (out.size() >= excess) break;
    if (protected_from_eviction(c, now, forget_after)) continue;
    if (seen.insert(c.name).second) out.push_back(c.name);
  }
  return out;
}

}  // namespace mtasts::sched
