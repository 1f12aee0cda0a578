// The fetcher's scheduling rules as pure functions (no I/O, no clock): how many slots go to
// due refreshes before misses, in which order due domains are taken, and which scheduled
// domains are evicted when the schedule is over its bound. The worker (worker.cpp) reads
// Redis and applies them; tests/unit/cached/schedule_test.cpp has a row per rule.
//
// Rules:
// - Fair work: `share` percent of the concurrency (rounded up, at least one slot when the
//   share is not 0) is reserved for due refreshes: a flood of misses cannot starve them.
//   Misses may use every slot that refreshes leave free, and refreshes every slot that
//   misses leave free.
// - Among due domains, usable enforce and testing policies come first, closest to expiry
//   first (losing them turns a protected domain into "unknown"); the rest keep the schedule's
//   order (most overdue first).
// - Eviction: scheduled domains with no wanted record go first, then the least recently
//   wanted; a usable enforce policy is never evicted, whatever its wanted time says (any MTA
//   host's Redis user can write that time: it alone never unschedules an enforce policy).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "common/sts/cache_entry.hpp"
#include "common/util/clock.hpp"
#include "common/fleet/store.hpp"

namespace mtasts::sched {

// Slots reserved for due refreshes out of `concurrency` (share in percent, 0-100).
std::size_t refresh_reserve(std::size_t concurrency, unsigned share_percent) noexcept;

// How many due refreshes to launch before any miss, with `refreshing` refreshes in flight
// and `free` slots free.
std::size_t refreshes_first(std::size_t reserve, std::size_t refreshing, std::size_t free) noexcept;

// Sorts a window of due domains into the order they are taken (stable).
void order_due(std::vector<PolicyStore::Scheduled>& due, SysTime now);

// A usable enforce policy: never evicted (`forget_after` is no longer used).
bool protected_from_eviction(const PolicyStore::Candidate& c, SysTime now, Seconds forget_after);

// Up to `excess` names to evict from `candidates`, in eviction order.
std::vector<std::string> choose_evictions(std::vector<PolicyStore::Candidate> candidates, std::size_t excess,
                                          SysTime now, Seconds forget_after);

}  // namespace mtasts::sched
