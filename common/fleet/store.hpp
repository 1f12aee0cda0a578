// The fleet's shared state in Redis: the key schema and every operation the milter, the
// fetcher and mta-sts-ctl perform on it. The only module that knows key names.
//
// Keys (all under the configured prefix, schema version "v1"):
//   <prefix>v1:e:<domain>   string  encoded CacheEntry; TTL from redis_ttl()      [milter: GET]
//   <prefix>v1:misses       zset    domain -> unix time first signalled (ZADD NX)  [milter: ZADD]
//                                   trimmed to max_misses by the fetchers' housekeeping
//                                   (the milter cannot remove or trim misses)
//   <prefix>v1:schedule     zset    domain -> unix time of next refresh; written by fetchers,
//                                   bounded to max_domains by the fetchers' housekeeping
//                                   (least recently wanted evicted first)
//   <prefix>v1:wanted       zset    domain -> unix time of its last lookup (ZADD GT)  [milter: ZADD]
//                                   also set by a write after a miss, the warm list, and (NX)
//                                   by any write, so that an entry older than this key is
//                                   refreshed for a while; a domain not wanted for
//                                   forget-after leaves wanted and schedule (it ages out)
//   <prefix>v1:lock:<domain> string fetcher token; SET NX PX lock_ttl (claim), renewed while
//                                   the fetcher works (compare-and-PEXPIRE), released by
//                                   compare-and-delete; the fetcher's writes check it
//                                   (put_claimed: a Lua script, all or nothing)
//   <prefix>v1:dropped:<domain> string a random mark of the operator's last drop; TTL
//                                   kDropMarkTtl (longer than any copy is held)  [milter: GET]
//                                   read with the entry (MGET): a host forgets a copy read
//                                   under another mark even when the announcement was lost
//   <prefix>v1:changed      channel PUBLISH "<domain> <checked_at>" (unix seconds of the entry
//                                   written), then "<domain>" (for MTA hosts of older releases,
//                                   which take the whole text for a domain), when a domain's
//                                   verdict/policy changes; "<domain>" alone when an operator
//                                   drops it. A reader that then reads an entry checked before
//                                   the announced time (a replica behind the one that delivered
//                                   the announcement) re-reads it (issue 19). A bare domain
//                                   (also all an older fetcher sends) just marks it for re-reading.
//   <prefix>v1:stats:<fetcher-id> hash counters of one fetcher; TTL 3 x stats interval
// A miss survives a fetcher restart: it leaves `misses` only after its entry was written.
// A fetcher killed mid-work leaves its lock to expire; the domain stays in misses/schedule.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/sts/cache_entry.hpp"
#include "common/sts/domain.hpp"
#include "common/fleet/redis.hpp"

namespace mtasts {

// How far a score in misses or wanted may stray from "now" before housekeeping moves it back
// (see PolicyStore::bound_scores): the members are written by every MTA host's user.
inline constexpr Seconds kScoreSlack{600};
inline constexpr Seconds kMissPast{86400};

// An announcement on the changed channel (see the key schema above). Untrusted text: a
// version that is not a plain unix time is ignored (the domain is still re-read).
struct Announcement {
  std::string domain;                 // as announced, not validated
  std::optional<SysTime> checked_at;  // what the fetcher wrote; nullopt: a bare domain
};
std::string announcement_text(const Domain& d, const CacheEntry& written);
Announcement parse_announcement(std::string_view text);

struct StoreOptions {
  std::string prefix = "mta-sts:";
  std::size_t max_misses = 100000;
  std::size_t max_domains = 1000000;
  Seconds retention{86400};  // extra key life past expiry (see redis_ttl)
};

// What a program does with the shared state; each program's list is in redis_check.cpp.
enum class RedisNeed {
  read_entries,    // GET entries (milter, ctl cache show/list, fetcher)
  read_held,       // MGET of an entry and its drop mark (milter, tlsmap: the mail path)
  signal_misses,   // ZADD NX on misses (milter)
  note_demand,     // ZADD GT on wanted (milter, fetcher warm list)
  watch_changes,   // SUBSCRIBE to the change channel (milter)
  write_entries,   // EVAL of the fenced write (GET lock, SET, ZADD, ZREM, PUBLISH) and MULTI
                   // of the same (fetcher)
  read_queues,     // ZRANGE misses, ZRANGEBYSCORE schedule, ZREM (fetcher)
  count_queues,    // ZCARD misses and schedule (fetcher, ctl cache stats)
  claim_locks,     // SET NX PX and the compare-and-delete EVAL on locks (fetcher)
  schedule,        // ZADD LT on the schedule (fetcher warm list, ctl cache warm)
  housekeeping,    // trim misses (ZREMRANGEBYRANK), the forget EVAL (ZRANGEBYSCORE, ZCARD,
                   // ZRANDMEMBER, ZMSCORE, ZREM on wanted and schedule), eviction reads
                   // (ZRANGE, ZRANDMEMBER, ZMSCORE) (fetcher)
  write_stats,     // MULTI DEL/HSET/EXPIRE EXEC on the fetcher's stats hash (fetcher)
  read_stats,      // SCAN + HGETALL on stats hashes (ctl cache stats)
  list_entries,    // SCAN over entry keys (ctl cache list)
  drop_entries,    // MULTI DEL/ZREM/ZREM/PUBLISH EXEC (ctl cache drop)
  read_clock,      // TIME: the fleet clock (every daemon)
  server_info,     // INFO memory and persistence: the server's settings, for warnings (fetcher)
  // The fleet's TLS-RPT aggregates (report_store.hpp, issue 20): its probes.
  read_reports,    // SMEMBERS, HLEN, HGETALL on v1:rpt: keys (ctl report, the sender)
  write_reports,   // the apply EVAL and what it runs (reportd)
};
const char* to_string(RedisNeed n) noexcept;

// One harmless command that proves a permission: it uses the same command, key and channel
// shapes as the real operation, on a probe name no real domain can have, and changes nothing
// (XX flags, empty ranges, absent members), or it is only queued in a MULTI that never runs.
struct RedisProbe {
  enum class Mode {
    direct,     // run it
    queued,     // queue it inside MULTI; the transaction is made to abort before it runs
    subscribe,  // SUBSCRIBE on a connection of its own, read the confirmation
  };
  Mode mode = Mode::direct;
  std::vector<std::string> argv;
};

// How long a drop mark lives: longer than the longest a policy may be held (max_age's clamp)
// plus a day, so that no copy read before a drop outlives its mark.
inline constexpr Seconds kDropMarkTtl = std::chrono::duration_cast<Seconds>(kMaxAgeLimit) + Seconds{86400};

class PolicyStore {
 public:
  // `read_pool` (optional, e.g. connections to a replica): where get() reads entries; every
  // write, miss signals included, goes to `pool` (the primary).
  PolicyStore(Pool& pool, StoreOptions opts, Pool* read_pool = nullptr);

  // ---- milter side (read-and-signal) ----
  // One round trip. nullopt: no key. Throws RedisError on failure; an undecodable value is
  // treated as absent (and logged by the caller via `*decode_error`); `*writer_version` is
  // the codec version its first line names (0: none), so that an entry of a newer format
  // this build cannot read is told apart from garbage.
  std::optional<CacheEntry> get(const Domain& d, std::string* decode_error = nullptr, int* writer_version = nullptr);
  // get() and the domain's drop mark in one round trip (MGET), for the mail path.
  struct Read {
    std::optional<CacheEntry> entry;
    bool present = false;      // a value was stored (entry is nullopt when it is unreadable)
    std::string decode_error;  // why it is unreadable
    int writer_version = 0;    // as for get()
    std::string drop_mark;     // "" when the domain was never dropped (or the mark expired)
  };
  Read read(const Domain& d);
  // Records a miss (deduplicated: ZADD NX); one round trip. Trimming the set is the
  // fetchers' job (trim_misses), so that a milter's user cannot erase the fleet's misses.
  void signal_miss(const Domain& d, SysTime now);
  // Records that these domains were looked up at these times: one ZADD GT (a time never moves
  // back). Names are taken as given (the caller holds normalized Domain names).
  void note_wanted(const std::vector<std::pair<std::string, SysTime>>& batch);
  std::string changed_channel() const;

  // ---- fetcher side (writer) ----
  // Writes the entry with its TTL, schedules it at e.next_refresh, removes it from misses,
  // and publishes on the changed channel when `announce` is true. One MULTI/EXEC.
  void put(const Domain& d, const CacheEntry& e, SysTime now, bool announce);
  // The fetcher's write, fenced by its claim: one server-side script checks that the lock
  // still holds `token` and only then does what put() does (entry, schedule, misses,
  // announcement), atomically. claim_lost, with nothing written, when the claim was lost (it
  // expired, and another fetcher may have taken the domain and written a newer entry).
  // newer_format_kept when the stored entry was written by a newer codec version (a fleet
  // half upgraded): it is kept, the miss is cleared and the schedule only moved later, never
  // past the entry's own next refresh.
  enum class PutResult { written, claim_lost, newer_format_kept };
  PutResult put_claimed(const Domain& d, const CacheEntry& e, SysTime now, bool announce, const std::string& token);
  // Up to `limit` domains from misses (oldest first), then due from the schedule (score <= now).
  std::vector<std::string> pending_misses(std::size_t limit);
  // The same within the scores a miss signalled about `now` can have (kMissPast before it to
  // kScoreSlack after it): a member a milter's user added far in the past or the future
  // neither jumps the queue nor hides at its end; housekeeping (bound_scores) brings it back.
  std::vector<std::string> pending_misses(SysTime now, std::size_t limit);
  std::vector<std::string> due(SysTime now, std::size_t limit);
  // due() with each domain's entry (nullopt: none or undecodable), in two round trips.
  struct Scheduled {
    std::string name;
    std::optional<CacheEntry> entry;
  };
  std::vector<Scheduled> due_entries(SysTime now, std::size_t limit);
  // Adds a domain to the schedule (warm list) at `when` unless it is already scheduled
  // earlier (ZADD LT semantics, plus NX when absent).
  void schedule(const Domain& d, SysTime when);
  // Removes a name that is not a valid domain from misses and schedule.
  void forget_invalid(const std::string& raw_name);
  // Removes a miss without writing the entry (the fetcher found nothing to do for it).
  void clear_miss(const Domain& d);
  // Clears the miss and moves the domain's schedule to `when` unless it is already later
  // (only a domain still scheduled), and never past the stored entry's own next refresh: for
  // an entry of a newer format that this fetcher leaves to newer fetchers, which must find it
  // due in time. One round trip (a script).
  void defer(const Domain& d, SysTime when);
  // Claim: SET lock NX PX. True when this fetcher holds the domain now.
  bool claim(const Domain& d, const std::string& token, std::chrono::milliseconds ttl);
  void release(const Domain& d, const std::string& token);
  // Extends claims to `ttl` from now where they still hold their token (compare-and-PEXPIRE),
  // all in one round trip. Element i is false when claim i is not ours any more (it expired,
  // or another fetcher holds the domain now).
  std::vector<bool> renew(const std::vector<std::pair<Domain, std::string>>& claims, std::chrono::milliseconds ttl);
  std::size_t misses_size();
  std::size_t schedule_size();
  std::size_t wanted_size();

  // ---- fetcher housekeeping (bounded work per call) ----
  // Drops the oldest misses beyond max_misses; returns how many.
  std::size_t trim_misses();
  // Forgets (removes from wanted and schedule) up to `limit` domains wanted last before
  // `cutoff`; then, beyond max_domains + max_misses names in wanted, drops names that are not
  // scheduled (a scheduled domain keeps its record). Entries stay until their own TTL.
  // Returns how many names left wanted. The wanted set is written by every MTA host's user
  // (any score): a domain whose entry is a usable enforce policy at `now` is never forgotten
  // for its wanted time alone (its record is moved to `now` instead), and a name is removed
  // only if its wanted time did not move since it was read (a compare-and-remove script).
  std::size_t forget_unwanted(SysTime cutoff, std::size_t limit, SysTime now);
  // Brings the scores of misses and wanted back to about `now` (at most `limit` members per
  // set and direction): a miss signalled more than kMissPast ago or any score more than
  // kScoreSlack ahead of `now` is set to `now`. Returns how many were moved.
  std::size_t bound_scores(SysTime now, std::size_t limit);
  // Scheduled domains that may be evicted, for choose_evictions: the `n` least recently
  // wanted that are scheduled, and a random sample of `n` scheduled ones (which finds those
  // with no wanted record), each with its wanted time and entry. A wanted time that is not a
  // plain number is treated as absent.
  struct Candidate {
    std::string name;
    std::optional<SysTime> wanted;
    std::optional<CacheEntry> entry;
    std::string scheduled = {};  // its schedule score as read ("": not known), for the compare
  };
  std::vector<Candidate> eviction_candidates(std::size_t n);
  // Removes these names from schedule and wanted (their entries age out).
  void unschedule(const std::vector<std::string>& names);
  // Evicts: removes each candidate from schedule and wanted in one script, only if its wanted
  // time is still what eviction_candidates read (absent, or not later) and its schedule score
  // is unchanged (no write since): a domain looked up or refreshed between the choice and the
  // removal is not evicted. Returns how many were removed.
  std::size_t unschedule_unwanted(const std::vector<Candidate>& victims);
  // The lowest score of the schedule (the next or most overdue refresh) and of the misses (the
  // oldest waiting miss); nullopt when empty. For the fetcher's metrics (ZRANGE ... WITHSCORES).
  std::optional<SysTime> earliest_scheduled();
  std::optional<SysTime> oldest_miss();
  void write_stats(const std::string& fetcher_id, const std::map<std::string, long long>& counters,
                   Seconds ttl);

  // ---- operator side (mta-sts-ctl cache) ----
  // An operator's drop, one MULTI: a new drop mark (every host forgets a copy read under
  // another one), the entry deleted, the domain's refresh claim deleted (a fetch in progress
  // then cannot write the dropped policy back: its fenced write finds its claim gone),
  // unscheduled, its miss cleared, announced. True when an entry was there.
  bool drop(const Domain& d);
  std::string drop_key(const Domain& d) const;
  // SCAN over entry keys; calls back with domain names. Bounded by `limit`.
  std::vector<std::string> list(std::size_t limit);
  // Every fetcher's counters as written by write_stats: fetcher id -> name -> value.
  // Bounded by `limit` fetchers.
  std::map<std::string, std::map<std::string, std::string>> read_stats(std::size_t limit = 1000);

  std::string entry_key(const Domain& d) const;
  std::string lock_key(const Domain& d) const;
  const StoreOptions& options() const noexcept { return opts_; }

  // The probes that show whether a connection may do `need` (see RedisProbe). Pure: the
  // caller runs them (redis_check.cpp).
  static std::vector<RedisProbe> probes(RedisNeed need, const StoreOptions& opts);

 private:
  // SCAN for keys beginning with `key_prefix` (taken literally); returns the rest of each
  // name, deduplicated, at most `limit`.
  std::vector<std::string> scan_names(Connection& conn, const std::string& key_prefix, std::size_t limit);

  Pool& pool_;
  StoreOptions opts_;
  Pool* read_pool_ = nullptr;
};

}  // namespace mtasts
