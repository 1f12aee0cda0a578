// The libmilter glue of mta-sts-milter: the callbacks, the per-connection and per-message
// contexts, and the runtime snapshot they use. Every callback is a trampoline into one
// method of the connection context through one helper (dispatch) that turns an exception into
// a logged, configured action. Nothing here decides policy: that is decision.hpp.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>

#include "common/util/clock.hpp"
#include "common/daemon/config.hpp"
#include "common/util/ratelimit.hpp"
#include "common/fleet/redis.hpp"
#include "milter/decision.hpp"
#include "common/fleet/lookup.hpp"
#include "common/fleet/lookup_stats.hpp"

namespace mtasts::milter {

// Everything a connection needs, built once at start-up. Connections pin the snapshot they
// started with (shared_ptr), so that it outlives any connection still using it.
struct Runtime {
  MilterConfig cfg;
  DecisionOptions decision;
  MessageOptions message;
  const Clock* clock = nullptr;  // the process's fleet clock (outlives every runtime)
  LookupStats stats;
  std::unique_ptr<Pool> pool;       // the primary: miss signals (and reads unless read_pool)
  std::unique_ptr<Pool> read_pool;  // a replica, with read-from = replica
  std::unique_ptr<PolicySource> source;
  std::unique_ptr<PolicyLookup> lookup;
  // Failed lookups during a Redis outage: one line when it starts, a summary a minute, one
  // when it ends (a pointer: connections see the Runtime as const).
  std::unique_ptr<FailureLog> redis_health = std::make_unique<FailureLog>();
};

// Publishes the snapshot that new connections pin.
void set_runtime(std::shared_ptr<const Runtime> rt);
std::shared_ptr<const Runtime> current_runtime();

// Connections (libmilter sessions) currently open: the graceful stop waits for them.
int open_sessions() noexcept;

// smfi_register with our description and callbacks. Returns MI_SUCCESS or MI_FAILURE.
int register_filter();

}  // namespace mtasts::milter
