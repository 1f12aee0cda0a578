// `mta-sts-ctl cache ...`: the operator's view of the fleet cache in Redis, through the same
// PolicyStore the daemons use (so the key schema lives in one place). A Redis failure is
// exit 3 with the reason; a domain that is not cached is exit 1.
#pragma once

#include <cstddef>
#include <string_view>

#include "common/util/clock.hpp"
#include "common/fleet/store.hpp"
#include "ctl/commands.hpp"

namespace mtasts::ctl {

Output cache_show(PolicyStore& store, std::string_view domain, SysTime now, bool json);
Output cache_list(PolicyStore& store, std::size_t limit, SysTime now, bool json);
Output cache_drop(PolicyStore& store, std::string_view domain, bool json);
// Schedules every valid domain of `text` (a warm list) for a refresh at `now`. Bad lines are
// reported as "SOURCE:LINE: ..." on stderr and make the exit code 1; the good ones are
// scheduled anyway.
Output cache_warm(PolicyStore& store, std::string_view text, std::string_view source, SysTime now,
                  bool json);
// Queue sizes and every fetcher's published counters, with when each fetcher last reported:
// one that has not reported for more than twice its stats interval is marked stale (it
// stopped or cannot reach Redis; its key expires after three intervals).
Output cache_stats(PolicyStore& store, SysTime now, bool json);

}  // namespace mtasts::ctl
