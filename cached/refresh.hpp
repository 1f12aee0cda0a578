// The RFC 8461 cache rules as pure functions (RFC-NOTES.md "Caching and refresh"): given the
// entry in the cache, the report of one discovery and "now", what entry to write, whether to
// announce a change to the milters, and what to log. No I/O, no clock, no randomness (the
// jitter draw is an argument), so that every rule is a row in a unit test.
//
// Rules:
// - A fetched policy (any mode, `none` included) replaces the cached one at once; it is
//   usable until now + max_age (max_age 0: stored, usable for nothing).
// - The same TXT id with a fresh body (Status::unchanged) extends the cached policy's life
//   to now + max_age: DNS confirmed it. The body is re-fetched once it is older than the
//   refresh interval (discover() decides that).
// - No policy found (no TXT record, NXDOMAIN, no STSv1 record) keeps a usable cached policy
//   until it expires ("policy vanished" is logged); without one, a negative entry is written.
// - A failure (DNS, invalid TXT set, fetch, invalid policy) never touches the cached policy
//   or a negative entry; it records the failure streak and a backoff of at least 5 minutes
//   before the domain is tried again (fleet-wide, since the entry is shared).
// - Warnings: a downgrade (enforce -> testing or none, testing -> none), a vanished policy,
//   and a refresh of a non-`none` policy failing `failure_alert` times or more in a row.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cached/discovery.hpp"
#include "common/sts/cache_entry.hpp"
#include "common/util/clock.hpp"
#include "common/util/log.hpp"

namespace mtasts::refresh {

// A proactive refresh is never scheduled sooner than this after the last one, whatever the
// policy's max_age (a max_age of 0 or of a few seconds must not make a fetcher spin).
inline constexpr Seconds kMinRefreshDelay{60};

struct Rules {
  RefreshRules cache;          // intervals, negative TTL, backoff bounds, expiry margin
  unsigned failure_alert = 3;  // warn from this many consecutive failures (non-none policy)
  unsigned jitter_percent = 10;  // spread: next refresh up to this % of the delay earlier
};

struct Event {
  log::Level level = log::Level::info;
  std::string message;                                     // constant text
  std::vector<std::pair<std::string, std::string>> fields;  // key=value (domain first)
};

struct Outcome {
  CacheEntry entry;
  bool announce = false;      // publish on the changed channel (verdict or policy changed)
  std::vector<Event> events;  // to log, in order
};

// `jitter` is a draw in [0, 1): 0 schedules the next refresh at the computed time, values
// towards 1 up to jitter_percent of the delay earlier (never before a failure's backoff).
Outcome apply(const std::optional<CacheEntry>& old, const discovery::Report& report, SysTime now,
              const Rules& rules, double jitter = 0.0);

// What a fetcher does with a domain it took from the misses or the schedule, given the
// entry it read after claiming it.
// For every action but `discover`, the fetcher writes the entry back unchanged: that clears
// the miss and puts the domain back in the schedule at the entry's own next refresh time.
enum class Action {
  discover,  // run discovery now
  backoff,   // in failure backoff (at least 5 minutes after a failure): only the TXT step,
             // and a full discovery if it shows a new id (backoff_visit)
  settled,   // a miss that another fetcher answered after the milter looked
  skip,      // scheduled work that another fetcher did a moment ago
  newer_format,  // an entry of a newer codec version this fetcher cannot read: left to newer
                 // fetchers (the worker decides this from the writer's version; plan() never
                 // returns it)
};
const char* to_string(Action a) noexcept;
Action plan(const std::optional<CacheEntry>& entry, SysTime now, bool is_miss);

// RFC 8461 section 5.1's retry rule is per (domain, id): a domain in failure backoff is still
// visited at least every kMinFailureBackoff, for the TXT step only, so that a policy fixed
// under a new id is fetched at once instead of after the whole backoff. The visit after
// `now` for an entry in backoff: the retry time, or kMinFailureBackoff from now if earlier.
SysTime backoff_visit(const CacheEntry& e, SysTime now);

// `next` moved earlier by jitter * percent% of (next - now); never before `not_before`.
SysTime jittered(SysTime now, SysTime next, unsigned percent, double jitter, SysTime not_before);

}  // namespace mtasts::refresh
