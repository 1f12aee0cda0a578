// Policy lookup on the mail path, shared by mta-sts-milter and mta-sts-tlsmap: a bounded
// in-process cache in front of the fleet's Redis cache, miss signalling to the fetchers, an optional bounded wait for a miss to be filled,
// and a subscriber that drops local entries when a fetcher announces a change.
//
// Promises:
// - Never DNS or HTTPS; Redis only through a PolicySource whose every call is bounded (the
//   Redis implementation runs on a Pool whose command timeout is the program's redis-budget).
// - A local entry lives at most local-cache-ttl and never past the policy's expiry or the
//   negative entry's end; "not in cache" and "unknown" are never cached locally, so a filled
//   miss is seen on the next lookup.
// - Thread-safe: libmilter's threads and tlsmap's workers call lookup() concurrently.
// - A miss is signalled at most once per domain per local-cache-ttl from this process (the
//   Redis side deduplicates across the fleet).
// - Demand: every looked-up domain (local hits too) is noted at most once per local-cache-ttl
//   and handed to a background flusher that records it in the fleet's `wanted` set about
//   once a second; a lookup never waits for it. When Redis fails the batch is dropped and
//   counted (the next lookup after local-cache-ttl notes the domain again).
// - With `stale_on_error` (mta-sts-tlsmap), an entry read earlier is kept past local-cache-ttl
//   until its policy (or negative entry) ends, and is answered only when the source fails:
//   RFC 8461 section 5.1 lets a cached policy be used until its max_age runs out.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/sts/cache_entry.hpp"
#include "common/util/clock.hpp"
#include "common/sts/domain.hpp"
#include "common/fleet/lookup_stats.hpp"
#include "common/util/ratelimit.hpp"
#include "common/fleet/redis.hpp"
#include "common/fleet/store.hpp"

namespace mtasts {

// Where entries come from. One production implementation (Redis); fakes in tests/fakes.
class PolicySource {
 public:
  virtual ~PolicySource() = default;
  // nullopt: the shared cache has no entry. Throws (std::exception) when it cannot answer.
  virtual std::optional<CacheEntry> get(const Domain& d) = 0;
  // Tells the fetchers that this domain is wanted. Throws when it cannot.
  virtual void signal_miss(const Domain& d, SysTime now) = 0;
  // Records when these domains were last looked up (the fetchers keep refreshing what is
  // wanted). Called off the mail path, by DemandRecorder. Throws when it cannot.
  virtual void note_wanted(const std::vector<std::pair<std::string, SysTime>>& batch) = 0;
};

class RedisPolicySource final : public PolicySource {
 public:
  // `pool` must outlive this object; its command timeout is the lookup budget.
  // `read_pool` (optional): connections to a replica that get() reads from; misses are
  // signalled on `pool` (the primary), since a replica refuses writes.
  RedisPolicySource(Pool& pool, StoreOptions opts, Pool* read_pool = nullptr);
  std::optional<CacheEntry> get(const Domain& d) override;
  void signal_miss(const Domain& d, SysTime now) override;
  void note_wanted(const std::vector<std::pair<std::string, SysTime>>& batch) override;

 private:
  PolicyStore store_;
};

// Remembers names for a window of time: first() says yes at most once per name per window.
// Bounded: when full, expired names are dropped, and if that is not enough, all (a name then
// counts as new once more: harmless, the Redis side deduplicates). Thread-safe.
class OncePer {
 public:
  OncePer(Seconds window, std::size_t bound) : window_(std::max(window, Seconds{1})), bound_(std::max<std::size_t>(bound, 1)) {}
  bool first(const std::string& name, SysTime now);
  void forget(const std::string& name);

 private:
  const Seconds window_;
  const std::size_t bound_;
  std::mutex mu_;
  std::unordered_map<std::string, SysTime> seen_;
};

// Collects (domain, time of lookup) pairs from the mail path and hands them to the source in
// batches, from a thread of its own (started at the first note), so that a lookup only takes
// a lock. The pending set is bounded (max_pending domains; beyond it notes are dropped and
// counted). A failed batch is dropped and counted, with a rate-limited warning.
class DemandRecorder {
 public:
  // `interval`: how often the thread flushes; 0: no thread (the owner calls flush()).
  // `dropped` (optional) counts notes that never reached Redis.
  DemandRecorder(PolicySource& source, const Clock& clock, std::chrono::milliseconds interval,
                 std::size_t max_pending, std::atomic<std::uint64_t>* dropped = nullptr);
  ~DemandRecorder();  // stops the thread; what is pending is flushed once more
  DemandRecorder(const DemandRecorder&) = delete;
  DemandRecorder& operator=(const DemandRecorder&) = delete;

  void note(const std::string& domain, SysTime when);  // never touches Redis
  // Sends what is pending now, on the calling thread. True when nothing failed.
  bool flush();
  std::size_t pending() const;
  std::uint64_t dropped() const noexcept { return dropped_.load(); }

 private:
  void run();
  PolicySource& source_;
  const Clock& clock_;
  const std::chrono::milliseconds interval_;
  const std::size_t max_pending_;
  std::atomic<std::uint64_t>* dropped_out_;
  std::atomic<std::uint64_t> dropped_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, SysTime> pending_;  // domain -> latest lookup
  bool stopping_ = false;
  std::thread thread_;
  std::mutex flush_mu_;  // one batch in flight at a time (the thread, or flush() from outside)
  FailureLog failures_;
};

// The Redis connections of a program on the mail path (milter, mta-sts-tlsmap), from its
// budgeted options. With read-from = primary: one pool for everything (`reads` is null). With
// read-from = replica: `reads` holds up to pool-size connections to a replica and `writes` at
// most kWritePoolWithReplica to the primary, which only carry miss signals: per MTA host and
// daemon the primary then sees at most that many connections (see mta-sts.conf(5)).
inline constexpr std::size_t kWritePoolWithReplica = 2;
struct MailPathPools {
  std::unique_ptr<Pool> writes;
  std::unique_ptr<Pool> reads;
};
MailPathPools make_mail_path_pools(RedisOptions budgeted, bool read_from_replica);
// The change subscriber's options: the configured ones (not the budget), on a replica with
// read-from = replica (Redis replicates PUBLISH to its replicas' subscribers).
RedisOptions subscriber_options(RedisOptions configured, bool read_from_replica);

using EntryPtr = std::shared_ptr<const CacheEntry>;

// A bounded LRU map domain -> entry with a per-entry deadline. Thread-safe.
class LocalCache {
 public:
  explicit LocalCache(std::size_t capacity);
  // The entry if present and now < its deadline (an expired one is dropped).
  EntryPtr get(const std::string& domain, SysTime now);
  // The entry if present and now < its keep deadline, however old (a fallback for when the
  // source cannot answer).
  EntryPtr get_stale(const std::string& domain, SysTime now);
  // Inserts or replaces, evicting the least recently used entry when full. Ignored when
  // `generation` is not the current one (an invalidation raced with the read that
  // produced `e`) or when capacity is 0. `keep` (>= until) is how long the entry may serve
  // as a fallback; by default it ends with `until`.
  void put(const std::string& domain, EntryPtr e, SysTime until, std::uint64_t generation,
           std::optional<SysTime> keep = std::nullopt);
  bool erase(const std::string& domain);
  void clear();
  std::size_t size() const;
  std::uint64_t generation() const noexcept { return generation_.load(); }

 private:
  struct Slot {
    std::string domain;
    EntryPtr entry;
    SysTime until;
    SysTime keep;
  };
  std::size_t capacity_;
  mutable std::mutex mu_;
  std::list<Slot> lru_;  // front: most recently used
  std::unordered_map<std::string, std::list<Slot>::iterator> index_;
  std::atomic<std::uint64_t> generation_{0};
};

struct LookupOptions {
  Seconds local_ttl{60};
  std::size_t local_cache_size = 100000;
  std::chrono::milliseconds miss_wait{0};       // 0: do not wait for a miss to be filled
  std::chrono::milliseconds poll_interval{20};  // how often the wait re-reads the entry
  bool stale_on_error = false;  // answer a locally held, still usable entry when Redis fails
  // How often noted lookups are sent to `wanted`; 0: only by flush_demand() (tests).
  std::chrono::milliseconds demand_interval{1000};
  std::size_t demand_max_pending = 100000;  // domains waiting for the next batch, at most
};

// stale: the source failed and a local entry past local-cache-ttl, still usable, answered.
enum class LookupSource { local, redis, stale, none };
const char* to_string(LookupSource s) noexcept;

struct LookupResult {
  EntryPtr entry;                       // null: the cache knows nothing of the domain
  LookupSource source = LookupSource::none;
  bool failed = false;                  // the source could not answer (entry is null)
  std::string error;                    // why, when failed
  bool miss_signalled = false;          // this lookup told the fetchers
  bool waited = false;                  // a miss-wait ran
  std::chrono::nanoseconds latency{0};  // whole lookup, for the statistics
};

using SleepFn = std::function<void(std::chrono::milliseconds)>;

class PolicyLookup {
 public:
  // `source`, `clock` and `stats` must outlive this object. `sleep` defaults to
  // std::this_thread::sleep_for (tests inject their own: no waiting on wall time).
  PolicyLookup(PolicySource& source, const Clock& clock, LookupOptions opts, LookupStats* stats = nullptr,
               SleepFn sleep = {});

  LookupResult lookup(const Domain& d);
  // The answer of the in-process cache alone (no source read, no miss signalled): nullopt
  // when it holds nothing fresh. Lets a server answer cache hits without a worker thread.
  std::optional<LookupResult> lookup_local(const Domain& d);

  // A fetcher announced a change for `domain` (raw text from Redis): drop it locally.
  void invalidate(std::string_view domain);
  // Announcements may have been lost (subscriber reconnected): drop everything.
  void resync();

  // Sends the noted lookups now (see DemandRecorder::flush).
  bool flush_demand() { return demand_.flush(); }
  std::uint64_t demand_dropped() const noexcept { return demand_.dropped(); }

  std::size_t local_size() const { return cache_.size(); }
  const LookupOptions& options() const noexcept { return opts_; }

 private:
  // Reads the source and caches what may be cached. Throws what the source throws.
  EntryPtr fetch(const Domain& d, SysTime now);
  void note_demand(const Domain& d, SysTime now);
  SysTime local_deadline(const CacheEntry& e, SysTime now) const;

  PolicySource& source_;
  const Clock& clock_;
  LookupOptions opts_;
  LookupStats* stats_;
  SleepFn sleep_;
  LocalCache cache_;
  OncePer signalled_;  // misses signalled from this process
  OncePer noted_;      // lookups handed to demand_
  DemandRecorder demand_;
};

// Listens on PolicyStore::changed_channel() and calls `on_change(domain)` per announcement.
// Runs its own thread with its own connection; reconnects by itself (backoff up to 5 s) and
// calls `on_resync()` after every (re)subscription, since announcements sent while it was
// away are lost (not when the connection drops: during an outage the local entries are all
// there is). Logs once per state change.
// The subscribed connection is PINGed after this much silence; no answer within the
// confirm wait (max(command timeout, 1 s)) makes it resubscribe on a new connection.
inline constexpr std::chrono::milliseconds kSubscriberKeepalive{5000};

class ChangeSubscriber {
 public:
  using ChangeFn = std::function<void(std::string_view domain)>;
  ChangeSubscriber(RedisOptions opts, std::string channel, ChangeFn on_change, std::function<void()> on_resync);
  ~ChangeSubscriber();
  ChangeSubscriber(const ChangeSubscriber&) = delete;
  ChangeSubscriber& operator=(const ChangeSubscriber&) = delete;

  void start();
  void stop();  // joins; safe to call twice
  bool subscribed() const noexcept { return subscribed_.load(); }

 private:
  void run();
  bool sleep_unless_stopped(std::chrono::milliseconds d);

  RedisOptions opts_;
  std::string channel_;
  ChangeFn on_change_;
  std::function<void()> on_resync_;
  std::atomic<bool> subscribed_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mtasts
