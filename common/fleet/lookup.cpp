// Policy lookup: local cache, Redis source, miss signalling and the change subscriber.
// See lookup.hpp for the promises.
#include "common/fleet/lookup.hpp"

#include <algorithm>
#include <vector>

#include "common/util/log.hpp"

namespace mtasts {

using std::chrono::milliseconds;

// ---- Redis source -----------------------------------------------------------------------

RedisPolicySource::RedisPolicySource(Pool& pool, StoreOptions opts, Pool* read_pool)
    : store_(pool, std::move(opts), read_pool) {}

SourceRead RedisPolicySource::get(const Domain& d) {
  // A pooled connection may have died with a Redis restart; that shows as an immediate I/O
  // error, so one retry on a fresh connection costs nothing and hides the restart. Timeouts
  // are not retried: the budget is spent.
  for (int attempt = 0;; ++attempt) {
    try {
      PolicyStore::Read r = store_.read(d);
      if (!r.decode_error.empty())
        // As absent: a copy held locally answers for it (see fetch()).
        log::warning("undecodable cache entry, treated as absent", {{"domain", d.str()}, {"error", r.decode_error}});
      SourceRead out;
      out.unreadable = r.present && !r.entry;
      out.entry = std::move(r.entry);
      out.drop_mark = std::move(r.drop_mark);
      return out;
    } catch (const RedisError& e) {
      const bool stale = e.kind() == RedisError::Kind::io || e.kind() == RedisError::Kind::closed;
      if (attempt > 0 || !stale) throw;
    }
  }
}

void RedisPolicySource::signal_miss(const Domain& d, SysTime now) {
  for (int attempt = 0;; ++attempt) {
    try {
      store_.signal_miss(d, now);
      return;
    } catch (const RedisError& e) {
      // -READONLY: the pooled connection reached a primary that was demoted by a failover; it
      // is dropped, and the retry opens one to the primary the sentinels name now.
      const bool stale = e.kind() == RedisError::Kind::io || e.kind() == RedisError::Kind::closed ||
                         std::string_view(e.what()).find("READONLY") != std::string_view::npos;
      if (attempt > 0 || !stale) throw;
    }
  }
}

void RedisPolicySource::note_wanted(const std::vector<std::pair<std::string, SysTime>>& batch) {
  // Not retried: the recorder drops a failed batch, and the domains are noted again later.
  store_.note_wanted(batch);
}

// ---- demand ---------------------------------------------------------------------------------

bool OncePer::first(const std::string& name, SysTime now) {
  std::lock_guard lk(mu_);
  if (auto it = seen_.find(name); it != seen_.end() && now < it->second + window_) return false;
  if (seen_.size() >= bound_) {
    std::erase_if(seen_, [&](const auto& kv) { return now >= kv.second + window_; });
    if (seen_.size() >= bound_) seen_.clear();
  }
  seen_[name] = now;
  return true;
}

void OncePer::forget(const std::string& name) {
  std::lock_guard lk(mu_);
  seen_.erase(name);
}

DemandRecorder::DemandRecorder(PolicySource& source, const Clock& clock, milliseconds interval,
                               std::size_t max_pending, std::atomic<std::uint64_t>* dropped)
    : source_(source),
      clock_(clock),
      interval_(interval),
      max_pending_(std::max<std::size_t>(max_pending, 1)),
      dropped_out_(dropped) {}

DemandRecorder::~DemandRecorder() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  flush();
}

void DemandRecorder::note(const std::string& domain, SysTime when) {
  std::lock_guard lk(mu_);
  // Started here rather than in the constructor: a daemon builds its lookup before it may
  // detach (fork), and a thread does not survive a fork.
  if (interval_.count() > 0 && !thread_.joinable() && !stopping_) {
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
      // Demand is advisory: without the thread, notes wait for the next flush() or drop.
      log::warning("cannot start the demand recorder thread", {{"error", e.what()}});
    }
  }
  if (auto it = pending_.find(domain); it != pending_.end()) {
    it->second = std::max(it->second, when);
    return;
  }
  if (pending_.size() >= max_pending_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    if (dropped_out_) dropped_out_->fetch_add(1, std::memory_order_relaxed);
    return;
  }
  pending_.emplace(domain, when);
}

std::size_t DemandRecorder::pending() const {
  std::lock_guard lk(mu_);
  return pending_.size();
}

bool DemandRecorder::flush() {
  std::lock_guard one(flush_mu_);
  std::unordered_map<std::string, SysTime> taken;
  {
    std::lock_guard lk(mu_);
    taken.swap(pending_);
  }
  if (taken.empty()) return true;
  // Commands of at most 1000 domains: a long backlog does not become one huge command.
  constexpr std::size_t kChunk = 1000;
  std::vector<std::pair<std::string, SysTime>> batch;
  batch.reserve(std::min(taken.size(), kChunk));
  std::size_t sent = 0;
  try {
    for (auto& kv : taken) {
      batch.emplace_back(kv.first, kv.second);
      if (batch.size() == kChunk) {
        source_.note_wanted(batch);
        sent += batch.size();
        batch.clear();
      }
    }
    source_.note_wanted(batch);
  } catch (const std::exception& e) {
    const std::uint64_t lost = taken.size() - sent;
    dropped_.fetch_add(lost, std::memory_order_relaxed);
    if (dropped_out_) dropped_out_->fetch_add(lost, std::memory_order_relaxed);
    const FailureLog::Report r = failures_.failure(clock_.now());
    if (r.event == FailureLog::Event::down)
      log::warning("lookups not recorded in redis (batch dropped)", {{"domains", std::to_string(lost)}, {"error", e.what()}});
    else if (r.event == FailureLog::Event::still_down)
      log::warning("lookups still not recorded in redis", {{"batches", std::to_string(r.failures)}, {"error", e.what()}});
    return false;
  }
  if (failures_.success(clock_.now()).event == FailureLog::Event::up) log::notice("lookups recorded in redis again");
  return true;
}

void DemandRecorder::run() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    cv_.wait_for(lk, interval_, [&] { return stopping_; });
    if (stopping_) break;
    lk.unlock();
    flush();
    lk.lock();
  }
}

MailPathPools make_mail_path_pools(RedisOptions budgeted, bool read_from_replica) {
  MailPathPools p;
  if (!read_from_replica) {
    budgeted.role = RedisOptions::Role::primary;
    p.writes = std::make_unique<Pool>(std::move(budgeted));
    return p;
  }
  RedisOptions w = budgeted;
  w.role = RedisOptions::Role::primary;
  w.pool_size = std::min(w.pool_size, kWritePoolWithReplica);
  p.writes = std::make_unique<Pool>(std::move(w));
  budgeted.role = RedisOptions::Role::replica;
  p.reads = std::make_unique<Pool>(std::move(budgeted));
  return p;
}

RedisOptions subscriber_options(RedisOptions configured, bool read_from_replica) {
  configured.role = read_from_replica ? RedisOptions::Role::replica : RedisOptions::Role::primary;
  return configured;
}

// ---- local cache --------------------------------------------------------------------------

LocalCache::LocalCache(std::size_t capacity) : capacity_(capacity) {}

EntryPtr LocalCache::get(const std::string& domain, SysTime now) {
  std::lock_guard lk(mu_);
  auto it = index_.find(domain);
  if (it == index_.end()) return nullptr;
  if (now >= it->second->keep) {
    lru_.erase(it->second);
    index_.erase(it);
    return nullptr;
  }
  if (now >= it->second->until) return nullptr;  // held only, to be re-read
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->entry;
}

std::optional<LocalCache::Held> LocalCache::get_held(const std::string& domain, SysTime now) {
  std::lock_guard lk(mu_);
  auto it = index_.find(domain);
  if (it == index_.end()) return std::nullopt;
  if (now >= it->second->keep) {
    lru_.erase(it->second);
    index_.erase(it);
    return std::nullopt;
  }
  return Held{it->second->entry, it->second->drop_mark};
}

namespace {
bool protects(const CacheEntry& e) {
  return e.policy && (e.policy->policy.mode == Mode::enforce || e.policy->policy.mode == Mode::testing);
}
}  // namespace

void LocalCache::evict_one() {
  // Among the least recently used few, an entry that protects nothing goes first: an outage
  // then costs the fallback of a negative entry before that of an enforce policy.
  constexpr int kLook = 16;
  auto victim = std::prev(lru_.end());
  auto it = victim;
  for (int i = 0; i < kLook; ++i) {
    if (!it->protects) {
      victim = it;
      break;
    }
    if (it == lru_.begin()) break;
    --it;
  }
  index_.erase(victim->domain);
  lru_.erase(victim);
}

void LocalCache::put(const std::string& domain, EntryPtr e, SysTime until, std::uint64_t generation,
                     std::optional<SysTime> keep_opt, std::string drop_mark) {
  const SysTime keep = std::max(until, keep_opt.value_or(until));
  const bool guards = e && protects(*e);
  std::lock_guard lk(mu_);
  if (capacity_ == 0) return;
  if (generation != generation_.load()) {
    // An invalidation raced with the read: `e` may be older than what was announced, so it is
    // not served without re-reading. A policy that protects was answered all the same, and is
    // held (when nothing is there yet): if the shared cache then loses it (a failover to a
    // replica without it), this host still applies what it answered (issue 19, partition).
    if (!guards || index_.count(domain) > 0) return;
    until = SysTime{};
  }
  if (auto it = index_.find(domain); it != index_.end()) {
    it->second->entry = std::move(e);
    it->second->until = until;
    it->second->keep = keep;
    it->second->drop_mark = std::move(drop_mark);
    it->second->protects = guards;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  if (index_.size() >= capacity_) evict_one();
  lru_.push_front(Slot{domain, std::move(e), until, keep, std::move(drop_mark), guards});
  index_.emplace(domain, lru_.begin());
}

bool LocalCache::expire(const std::string& domain) {
  std::lock_guard lk(mu_);
  // Bumped even when absent: a read in flight may be about to insert the old value.
  generation_.fetch_add(1);
  auto it = index_.find(domain);
  if (it == index_.end()) return false;
  it->second->until = SysTime{};
  return true;
}

void LocalCache::expire_all() {
  std::lock_guard lk(mu_);
  generation_.fetch_add(1);
  for (Slot& s : lru_) s.until = SysTime{};
}

bool LocalCache::erase(const std::string& domain) {
  std::lock_guard lk(mu_);
  generation_.fetch_add(1);
  auto it = index_.find(domain);
  if (it == index_.end()) return false;
  lru_.erase(it->second);
  index_.erase(it);
  return true;
}

void LocalCache::clear() {
  std::lock_guard lk(mu_);
  generation_.fetch_add(1);
  index_.clear();
  lru_.clear();
}

void LocalCache::set_capacity(std::size_t capacity) {
  std::lock_guard lk(mu_);
  capacity_ = capacity;
  while (index_.size() > capacity_) evict_one();
}

std::size_t LocalCache::size() const {
  std::lock_guard lk(mu_);
  return index_.size();
}

// ---- lookup -------------------------------------------------------------------------------

const char* to_string(LookupSource s) noexcept {
  switch (s) {
    case LookupSource::local: return "local";
    case LookupSource::redis: return "redis";
    case LookupSource::stale: return "stale";
    case LookupSource::none: return "none";
  }
  return "?";
}

PolicyLookup::PolicyLookup(PolicySource& source, const Clock& clock, LookupOptions opts, LookupStats* stats,
                           SleepFn sleep, std::shared_ptr<LocalCache> held)
    : source_(source),
      clock_(clock),
      opts_(opts),
      stats_(stats),
      sleep_(sleep ? std::move(sleep) : SleepFn([](milliseconds d) { std::this_thread::sleep_for(d); })),
      cache_(held ? std::move(held) : std::make_shared<LocalCache>(opts.local_cache_size)),
      signalled_(opts.local_ttl, std::max<std::size_t>(opts.local_cache_size, 1024)),
      noted_(opts.local_ttl, std::max<std::size_t>(opts.local_cache_size, 1024)),
      demand_(source, clock, opts.demand_interval, opts.demand_max_pending, stats ? &stats->demand_dropped : nullptr) {
  cache_->set_capacity(opts.local_cache_size);
}

void PolicyLookup::note_demand(const Domain& d, SysTime now) {
  if (noted_.first(d.str(), now)) demand_.note(d.str(), now);
}

SysTime PolicyLookup::local_deadline(const CacheEntry& e, SysTime now) const {
  // `max_age: 0`: the owner allows no caching at all, whatever the verdict says.
  if (e.policy && e.policy->policy.max_age.count() == 0) return now;
  SysTime until = now + opts_.local_ttl;
  switch (verdict(e, now)) {
    case Verdict::enforce:
    case Verdict::testing:
    case Verdict::none:
      if (e.policy) until = std::min(until, e.policy->expires_at);
      break;
    case Verdict::no_policy:
      if (e.no_policy_until) until = std::min(until, *e.no_policy_until);
      break;
    case Verdict::unknown:
      // Must be re-read: the fetchers were (or will be) asked to fill it.
      return now;
  }
  return until;
}

namespace {
// Does an entry just read replace the copy held locally? RFC 8461 section 5.1: a cached
// policy is applied until it expires even when "no live policy can be discovered", so only an
// entry with a policy (any mode: `mode: none` is how a domain withdraws), checked at least as
// recently as the held one and itself usable, replaces a held enforce or testing policy. A
// negative or failure-only entry (a fetcher that rediscovered the domain after the fleet's
// cache was lost), an older one (a replica behind, a restored backup) or an expired one do
// not. Whatever protects nothing is simply replaced.
bool replaces(const CacheEntry& fresh, const CacheEntry& held, SysTime now) {
  if (!protects(held) || !policy_usable(held, now)) return true;
  if (!fresh.policy || fresh.checked_at < held.checked_at) return false;
  return verdict(fresh, now) != Verdict::unknown;
}
}  // namespace

EntryPtr PolicyLookup::fetch(const Domain& d, SysTime now, Fetched* how) {
  std::uint64_t gen = cache_->generation();
  SourceRead rd = source_.get(d);
  if (how) how->absent = !rd.entry && !rd.unreadable;
  std::optional<LocalCache::Held> held = cache_->get_held(d.str(), now);
  if (held && !rd.drop_mark.empty() && held->drop_mark != rd.drop_mark) {
    // An operator dropped the domain since this copy was read (the announcement may have been
    // lost): the copy goes, whatever Redis holds now.
    cache_->erase(d.str());
    gen = cache_->generation();
    held.reset();
    log::notice("held policy forgotten: dropped by an operator", {{"domain", d.str()}});
  }
  const auto answer_held = [&]() -> EntryPtr {
    if (!held || !held->entry || verdict(*held->entry, now) == Verdict::unknown) return nullptr;
    if (how) how->held = true;
    return held->entry;
  };
  if (!rd.entry) {
    // No key (evicted, FLUSHALL, a Redis restarted empty, a replica without the data) or a
    // value this build cannot read: nothing that replaces what is held.
    return answer_held();
  }
  std::optional<CacheEntry>& e = rd.entry;
  // The raw policy text (up to 64 KiB) and error texts are not needed on the mail path;
  // dropping them keeps 100,000 local entries small (mta-sts-reportd keeps them: they are
  // what its reports say). (Swapped with empty strings, not cleared: clear() keeps the
  // allocation.)
  if (!opts_.keep_texts) {
    if (e->policy) std::string().swap(e->policy->raw);
    if (e->failure) std::string().swap(e->failure->error);
  }
  auto p = std::make_shared<const CacheEntry>(std::move(*e));
  if (held && held->entry && !replaces(*p, *held->entry, now)) {
    if (EntryPtr h = answer_held()) return h;
  }
  SysTime until = local_deadline(*p, now);
  // Held as long as the entry itself says it is usable, whatever local-cache-ttl says: the
  // policy's expiry, or the end of the negative entry (`max_age: 0` allows no caching).
  std::optional<SysTime> keep;
  if (p->policy && policy_usable(*p, now) && p->policy->policy.max_age.count() > 0) keep = p->policy->expires_at;
  else if (p->no_policy_until) keep = *p->no_policy_until;
  // Older than announced: answered (and held) but re-read at the next lookup.
  if (behind_announced(d.str(), p.get(), now)) until = now;
  if (until > now || (keep && *keep > now)) {
    cache_->put(d.str(), p, until, gen, keep, std::move(rd.drop_mark));
  } else if (held) {
    cache_->erase(d.str());  // replaced by an answer that may not be kept
  }
  return p;
}

LookupResult PolicyLookup::lookup(const Domain& d) {
  const auto t0 = std::chrono::steady_clock::now();
  LookupResult r;
  SysTime now = clock_.now();
  note_demand(d, now);
  const auto finish = [&](LatencyHistogram LookupStats::*h) {
    r.latency = std::chrono::steady_clock::now() - t0;
    if (stats_) (stats_->*h).record(r.latency);
    return r;
  };

  if (EntryPtr e = cache_->get(d.str(), now)) {
    r.entry = std::move(e);
    r.source = LookupSource::local;
    return finish(&LookupStats::local);
  }
  Fetched how;
  try {
    r.entry = fetch(d, now, &how);
    r.source = how.held ? LookupSource::stale : LookupSource::redis;
  } catch (const std::exception& ex) {
    r.error = ex.what();
    r.source_failed = true;
    EntryPtr e = cache_->get_stale(d.str(), now);
    if (e && verdict(*e, now) != Verdict::unknown) {
      r.entry = std::move(e);
      r.source = LookupSource::stale;
      return finish(&LookupStats::failed);
    }
    r.failed = true;
    return finish(&LookupStats::failed);
  }

  const auto unknown = [&] { return !r.entry || verdict(*r.entry, now) == Verdict::unknown; };
  // A held copy answered for a key that is gone: the fleet must fetch the domain again before
  // the copy expires, so the miss is signalled all the same.
  if (!unknown() && !(how.held && how.absent)) return finish(&LookupStats::redis);

  if (signalled_.first(d.str(), now)) {
    try {
      source_.signal_miss(d, now);
      r.miss_signalled = true;
      if (stats_) stats_->misses_signalled.fetch_add(1, std::memory_order_relaxed);
    } catch (const std::exception& ex) {
      // The read worked, so the answer stands; the next lookup signals again.
      signalled_.forget(d.str());
      r.error = std::string("miss not signalled: ") + ex.what();
    }
  }
  if (!unknown() || opts_.miss_wait.count() <= 0) return finish(&LookupStats::redis);

  r.waited = true;
  const milliseconds step = std::max(opts_.poll_interval, milliseconds{1});
  for (milliseconds left = opts_.miss_wait; left.count() > 0 && unknown(); left -= step) {
    sleep_(std::min(step, left));
    now = clock_.now();
    try {
      r.entry = fetch(d, now);
    } catch (const std::exception& ex) {
      // Stop waiting but keep the answer we had: the domain is not known yet.
      r.error = std::string("miss-wait read failed: ") + ex.what();
      break;
    }
  }
  return finish(&LookupStats::waited);
}

std::optional<LookupResult> PolicyLookup::lookup_local(const Domain& d) {
  const auto t0 = std::chrono::steady_clock::now();
  const SysTime now = clock_.now();
  EntryPtr e = cache_->get(d.str(), now);
  if (!e) return std::nullopt;
  note_demand(d, now);
  LookupResult r;
  r.entry = std::move(e);
  r.source = LookupSource::local;
  r.latency = std::chrono::steady_clock::now() - t0;
  if (stats_) stats_->local.record(r.latency);
  return r;
}

bool PolicyLookup::behind_announced(const std::string& domain, const CacheEntry* read, SysTime now) {
  std::lock_guard lk(announced_mu_);
  auto it = announced_.find(domain);
  if (it == announced_.end()) return false;
  if (now >= it->second.until || (read && read->checked_at >= it->second.checked_at)) {
    announced_.erase(it);
    return false;
  }
  return true;
}

void PolicyLookup::invalidate(std::string_view text) {
  Announcement a = parse_announcement(text);
  if (a.checked_at) {
    const SysTime now = clock_.now();
    const std::size_t bound = std::max<std::size_t>(opts_.local_cache_size, 1024);
    std::lock_guard lk(announced_mu_);
    if (announced_.size() >= bound && !announced_.count(a.domain)) {
      std::erase_if(announced_, [&](const auto& kv) { return now >= kv.second.until; });
      // Still full: forgotten expectations only cost the old behaviour (local-cache-ttl).
      if (announced_.size() >= bound) announced_.clear();
    }
    Announced& slot = announced_[a.domain];
    slot.checked_at = std::max(slot.checked_at, *a.checked_at);
    slot.until = now + std::max(opts_.local_ttl, Seconds{1});
  }
  cache_->expire(a.domain);
  if (stats_) stats_->invalidations.fetch_add(1, std::memory_order_relaxed);
}

void PolicyLookup::resync() {
  cache_->expire_all();
  if (stats_) stats_->resyncs.fetch_add(1, std::memory_order_relaxed);
}

// ---- change subscriber --------------------------------------------------------------------

ChangeSubscriber::ChangeSubscriber(RedisOptions opts, std::string channel, ChangeFn on_change,
                                   std::function<void()> on_resync)
    : opts_(std::move(opts)),
      channel_(std::move(channel)),
      on_change_(std::move(on_change)),
      on_resync_(std::move(on_resync)) {}

ChangeSubscriber::~ChangeSubscriber() { stop(); }

void ChangeSubscriber::start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void ChangeSubscriber::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool ChangeSubscriber::sleep_unless_stopped(milliseconds d) {
  std::unique_lock lk(mu_);
  return !cv_.wait_for(lk, d, [&] { return stopping_; });
}

void ChangeSubscriber::run() {
  const auto stopping = [&] {
    std::lock_guard lk(mu_);
    return stopping_;
  };
  milliseconds backoff{100};
  bool down_logged = false;
  while (!stopping()) {
    try {
      Connection c = Connection::open(opts_);
      c.send({"SUBSCRIBE", channel_});
      const milliseconds confirm_wait = std::max(opts_.command_timeout, milliseconds{1000});
      auto confirm = c.read(confirm_wait);
      if (!confirm || !confirm->is_array() || confirm->size() < 1 || confirm->at(0).str() != "subscribe")
        throw RedisError(RedisError::Kind::protocol, "no SUBSCRIBE confirmation");
      subscribed_ = true;
      on_resync_();
      if (down_logged) log::notice("change subscription restored", {{"channel", channel_}});
      down_logged = false;
      backoff = milliseconds{100};
      // Keepalive: a host that vanished without a FIN (crash, partition) would leave this
      // connection "subscribed" forever while every announcement is lost. A PING after
      // kSubscriberKeepalive of silence must be answered within the confirm wait; else the
      // connection is given up and the subscription made anew.
      auto heard = std::chrono::steady_clock::now();
      bool pinged = false;
      while (!stopping()) {
        // Short reads so that stop() is honoured promptly.
        auto m = c.read(milliseconds{200});
        const auto now = std::chrono::steady_clock::now();
        if (m) {
          heard = now;
          pinged = false;
        } else if (pinged && now - heard >= kSubscriberKeepalive + confirm_wait) {
          throw RedisError(RedisError::Kind::timeout, "no answer to PING on the subscribed connection");
        } else if (!pinged && now - heard >= kSubscriberKeepalive) {
          c.send({"PING"});
          pinged = true;
        }
        if (!m || !m->is_array() || m->size() < 3) continue;
        if (m->at(0).is_string() && m->at(0).str() == "message" && m->at(2).is_string())
          on_change_(m->at(2).str());
      }
    } catch (const std::exception& e) {
      // Local entries stay: while Redis is away they are the only answers there are. They are
      // marked for re-reading once the subscription is back (announcements in the gap were
      // lost), and stay held until a read replaces them.
      subscribed_ = false;
      if (!down_logged) {
        log::warning("change subscription down, retrying", {{"channel", channel_}, {"error", e.what()}});
        down_logged = true;
      }
      if (!sleep_unless_stopped(backoff)) break;
      backoff = std::min(backoff * 2, milliseconds{5000});
    }
  }
  subscribed_ = false;
}

}  // namespace mtasts
