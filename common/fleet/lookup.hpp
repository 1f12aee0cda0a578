// Policy lookup on the mail path, shared by mta-sts-milter and mta-sts-tlsmap: a bounded
// in-process cache in front of the fleet's Redis cache, miss signalling to the fetchers, an optional bounded wait for a miss to be filled,
// and a subscriber that drops local entries when a fetcher announces a change.
//
// Promises:
// - Never DNS or HTTPS; Redis only through a PolicySource whose every call is bounded (the
//   Redis implementation runs on a Pool whose command timeout is the program's redis-budget).
// - A local entry is served without reading Redis for at most local-cache-ttl and never past
//   the policy's expiry or the negative entry's end; "not in cache" and "unknown" are never
//   cached locally, so a filled miss is seen on the next lookup.
// - Thread-safe: libmilter's threads and tlsmap's workers call lookup() concurrently.
// - A miss is signalled at most once per domain per local-cache-ttl from this process (the
//   Redis side deduplicates across the fleet).
// - Demand: every looked-up domain (local hits too) is noted at most once per local-cache-ttl
//   and handed to a background flusher that records it in the fleet's `wanted` set about
//   once a second; a lookup never waits for it. When Redis fails the batch is dropped and
//   counted (the next lookup after local-cache-ttl notes the domain again).
// - Fail safe (RFC 8461 section 5.1: a sender applies a cached policy until it expires): every
//   entry read is held, whatever local-cache-ttl says (0 included), until its policy (or
//   negative entry) ends. A held usable policy (enforce, testing, none) answers whenever the
//   source fails, has no key, or holds a value this build cannot read; it is replaced only by
//   an entry with a policy checked at least as recently, and forgotten when it expires or
//   when an operator dropped the domain (the drop mark read with the entry changed). An
//   announcement, a resubscription or a reload marks held entries for re-reading; none of
//   them forgets one. A negative or failure-only entry does not replace a held usable
//   policy either (section 5.1: "no live policy can be discovered" keeps the cached one).
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

// What one read of the shared cache found for a domain.
struct SourceRead {
  std::optional<CacheEntry> entry;  // nullopt: no key, or a value this build cannot read
  bool unreadable = false;          // a value was there that this build cannot decode
  // The operator's last drop of the domain (`mta-sts-ctl cache drop`), "" if none: a held
  // copy read under another mark is forgotten.
  std::string drop_mark;
};

// Where entries come from. One production implementation (Redis); fakes in tests/fakes.
class PolicySource {
 public:
  virtual ~PolicySource() = default;
  // One read. Throws (std::exception) when it cannot answer.
  virtual SourceRead get(const Domain& d) = 0;
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
  SourceRead get(const Domain& d) override;
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

// The entries a process has read: a bounded LRU map domain -> entry with two deadlines,
// `until` (served without re-reading) and `keep` (held: answered when the source has nothing
// usable), and the drop mark it was read under. Shared across reloads (a new lookup takes
// the old one's cache). When full, an entry that protects nothing (not an enforce or testing
// policy) among the least recently used goes first. Thread-safe.
class LocalCache {
 public:
  explicit LocalCache(std::size_t capacity);
  // The entry if present and now < its deadline (one past its keep deadline is dropped).
  EntryPtr get(const std::string& domain, SysTime now);
  struct Held {
    EntryPtr entry;
    std::string drop_mark;
  };
  // The held entry if present and now < its keep deadline, however old.
  std::optional<Held> get_held(const std::string& domain, SysTime now);
  EntryPtr get_stale(const std::string& domain, SysTime now) {
    auto h = get_held(domain, now);
    return h ? h->entry : nullptr;
  }
  // Inserts or replaces, evicting when full. When `generation` is not the current one (an
  // invalidation raced with the read that produced `e`), only an entry that protects (enforce
  // or testing) for a domain not yet there is kept, as held only (re-read at the next lookup);
  // otherwise ignored; also when capacity is 0. `keep` (>= until) is how long the entry is
  // held; by default it ends with `until`.
  void put(const std::string& domain, EntryPtr e, SysTime until, std::uint64_t generation,
           std::optional<SysTime> keep = std::nullopt, std::string drop_mark = {});
  // Marks the entry for re-reading (it stays held). True when it was there.
  bool expire(const std::string& domain);
  // Marks every entry for re-reading.
  void expire_all();
  // Forgets the entry, held copy included (an operator's drop).
  bool erase(const std::string& domain);
  void clear();
  void set_capacity(std::size_t capacity);
  std::size_t size() const;
  std::uint64_t generation() const noexcept { return generation_.load(); }

 private:
  struct Slot {
    std::string domain;
    EntryPtr entry;
    SysTime until;
    SysTime keep;
    std::string drop_mark;
    bool protects = false;  // an enforce or testing policy
  };
  void evict_one();  // under mu_
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
  // How often noted lookups are sent to `wanted`; 0: only by flush_demand() (tests).
  std::chrono::milliseconds demand_interval{1000};
  std::size_t demand_max_pending = 100000;  // domains waiting for the next batch, at most
  // Keep the policy file as fetched and the failure's text in the local cache (the mail path
  // drops them; mta-sts-reportd reports them).
  bool keep_texts = false;
};

// stale: the source failed, had no key or an unreadable value, or an older entry than the
// one held: the held copy (past local-cache-ttl, still usable) answered.
enum class LookupSource { local, redis, stale, none };
const char* to_string(LookupSource s) noexcept;

struct LookupResult {
  EntryPtr entry;                       // null: the cache knows nothing of the domain
  LookupSource source = LookupSource::none;
  bool failed = false;                  // the source could not answer (entry is null)
  bool source_failed = false;           // the source could not answer (failed, or stale answered)
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
  // `held` (optional): the cache of the lookup this one replaces (a reload), so that what
  // was read before is still held; its capacity becomes opts.local_cache_size.
  PolicyLookup(PolicySource& source, const Clock& clock, LookupOptions opts, LookupStats* stats = nullptr,
               SleepFn sleep = {}, std::shared_ptr<LocalCache> held = nullptr);

  LookupResult lookup(const Domain& d);
  // The answer of the in-process cache alone (no source read, no miss signalled): nullopt
  // when it holds nothing fresh. Lets a server answer cache hits without a worker thread.
  std::optional<LookupResult> lookup_local(const Domain& d);

  // A fetcher announced a change (raw text from Redis: "<domain> <checked_at>", or a bare
  // domain, see store.hpp): re-read it at the next lookup (the held copy stays until that
  // read says otherwise). With a checked_at, a read of an older entry (a replica behind the
  // one that delivered the announcement, issue 19) is answered but not cached as fresh: each
  // lookup re-reads until the announced entry is read, or for local-cache-ttl at most
  // (never a longer wait: each read is bounded by the budget as usual).
  void invalidate(std::string_view announcement);
  // Announcements may have been lost (subscriber reconnected): re-read everything, again
  // without forgetting what is held.
  void resync();
  // What this lookup holds, for the lookup that replaces it at a reload.
  std::shared_ptr<LocalCache> held() const noexcept { return cache_; }

  // Sends the noted lookups now (see DemandRecorder::flush).
  bool flush_demand() { return demand_.flush(); }
  std::uint64_t demand_dropped() const noexcept { return demand_.dropped(); }

  std::size_t local_size() const { return cache_->size(); }
  const LookupOptions& options() const noexcept { return opts_; }

 private:
  // Reads the source and caches what may be cached; answers the held copy instead where the
  // read has nothing that replaces it (see `how`). Throws what the source
  // throws.
  struct Fetched {
    bool held = false;    // the held copy answered
    bool absent = false;  // the source had no key
  };
  EntryPtr fetch(const Domain& d, SysTime now, Fetched* how = nullptr);
  // True when `read` is older than an announcement for the domain not yet read (`read` null:
  // nothing read). A read at least as recent ends the expectation.
  bool behind_announced(const std::string& domain, const CacheEntry* read, SysTime now);
  void note_demand(const Domain& d, SysTime now);
  SysTime local_deadline(const CacheEntry& e, SysTime now) const;

  PolicySource& source_;
  const Clock& clock_;
  LookupOptions opts_;
  LookupStats* stats_;
  SleepFn sleep_;
  std::shared_ptr<LocalCache> cache_;
  OncePer signalled_;  // misses signalled from this process
  OncePer noted_;      // lookups handed to demand_
  struct Announced {
    SysTime checked_at;  // the entry announced
    SysTime until;       // expected until then at most
  };
  std::mutex announced_mu_;
  std::unordered_map<std::string, Announced> announced_;  // bounded like the local cache
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
