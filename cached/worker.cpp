// The fetcher's scheduler loop and per-domain tasks; see worker.hpp for what it promises.
#include "cached/worker.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <thread>
#include <unordered_set>
#include <vector>

#include "cached/metrics.hpp"
#include "cached/schedule.hpp"
#include "common/util/log.hpp"
#include "common/util/random.hpp"

namespace mtasts::worker {

namespace {

using Steady = std::chrono::steady_clock;
using Fields = std::vector<std::pair<std::string, std::string>>;

// log::write takes an initializer_list (fields are views into the caller's strings); this
// spreads a runtime list over it. Lists longer than 10 are cut (never the case here).
void emit(log::Level lvl, std::string_view msg, const Fields& f) {
  auto v = [&f](std::size_t i) { return log::Field{f[i].first, f[i].second}; };
  switch (f.size()) {
    case 0: log::write(lvl, msg); break;
    case 1: log::write(lvl, msg, {v(0)}); break;
    case 2: log::write(lvl, msg, {v(0), v(1)}); break;
    case 3: log::write(lvl, msg, {v(0), v(1), v(2)}); break;
    case 4: log::write(lvl, msg, {v(0), v(1), v(2), v(3)}); break;
    case 5: log::write(lvl, msg, {v(0), v(1), v(2), v(3), v(4)}); break;
    case 6: log::write(lvl, msg, {v(0), v(1), v(2), v(3), v(4), v(5)}); break;
    case 7: log::write(lvl, msg, {v(0), v(1), v(2), v(3), v(4), v(5), v(6)}); break;
    case 8: log::write(lvl, msg, {v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7)}); break;
    case 9: log::write(lvl, msg, {v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7), v(8)}); break;
    default: log::write(lvl, msg, {v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7), v(8), v(9)}); break;
  }
}

std::mt19937_64& rng() {
  thread_local std::mt19937_64 g{std::random_device{}()};
  return g;
}

// A claim token: 128 bits from the kernel, so that a fetcher can only release its own lock
// (not a user-space generator seeded with 32 bits, whose tokens another fetcher could guess
// or repeat).
std::string random_token() { return random_hex(16); }

double jitter_draw() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng()); }

std::string default_fetcher_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  // Stable across restarts, so that `cache stats` shows one line per host rather than one per
  // process that ever ran; two fetchers on one host need their own `fetcher-id`.
  return std::string(host[0] ? host : "localhost");
}

}  // namespace

Options options_from(const CachedConfig& c) {
  Options o;
  o.concurrency = std::max(1u, c.concurrency);
  o.refresh_share = c.refresh_share;
  o.forget_after = c.forget_after;
  o.lock_ttl = std::chrono::duration_cast<std::chrono::milliseconds>(c.lock_ttl);
  o.poll_interval = c.poll_interval;
  o.stats_interval = c.stats_interval;
  o.rules.cache.refresh_interval = c.refresh_interval;
  o.rules.cache.negative_ttl = c.negative_ttl;
  o.rules.cache.min_backoff = c.min_backoff;
  o.rules.cache.max_backoff = c.max_backoff;
  o.rules.cache.expiry_margin = c.expiry_margin;
  o.rules.failure_alert = c.failure_alert;
  o.rules.jitter_percent = c.refresh_jitter;
  o.discovery.refresh_interval = c.refresh_interval;
  o.discovery.global_addresses_only = c.global_addresses_only;
  o.warm_list = c.warm_list;
  o.warm_interval = c.warm_interval;
  o.fetcher_id = c.fetcher_id.empty() ? default_fetcher_id() : c.fetcher_id;
  return o;
}

std::shared_ptr<const Services> make_services(const Config& cfg, const std::atomic<bool>* abort) {
  const CachedConfig& c = cfg.cached;
  auto s = std::make_shared<Services>();
  dns::ResolverOptions ro;
  for (const auto& r : c.resolvers) ro.servers.push_back(dns::parse_server(r));
  ro.timeout = c.dns_timeout;
  ro.retries = c.dns_retries;
  s->resolver = timed(dns::make_resolver(std::move(ro)));
  https::HttpsOptions ho;
  ho.ca_file = c.ca_file;
  ho.proxy = c.proxy;
  ho.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(c.fetch_timeout);
  ho.connect_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(c.connect_timeout);
  ho.user_agent = std::string("mta-sts-cached/") + MTASTS_VERSION;
  ho.abort = abort;
  s->https = timed(https::make_https_client(std::move(ho)));
  RedisOptions redis = cfg.redis.redis;
  // Every worker thread may hold a connection at once; more than that would only idle.
  redis.pool_size = std::max<std::size_t>(redis.pool_size, c.concurrency + 2);
  s->pool = std::make_shared<Pool>(redis);
  s->store = std::make_shared<PolicyStore>(*s->pool, cfg.redis.store);
  s->options = options_from(c);
  return s;
}

Worker::Worker(std::shared_ptr<const Services> services, const Clock& clock)
    : clock_(clock), services_(std::move(services)) {}

Worker::~Worker() {
  stop();
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return in_flight_.empty(); });
  }
  reap();
}

void Worker::reap() {
  std::vector<std::thread> finished;
  {
    std::lock_guard lock(mu_);
    for (std::uint64_t id : done_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      finished.push_back(std::move(it->second));
      threads_.erase(it);
    }
    done_.clear();
  }
  for (auto& t : finished) t.join();  // a finished task's thread is only exiting: quick
}

std::shared_ptr<const Services> Worker::current() const {
  std::lock_guard lock(mu_);
  return services_;
}

void Worker::reload(std::shared_ptr<const Services> services) {
  std::lock_guard lock(mu_);
  services_ = std::move(services);
  next_warm_ = {};  // the warm list may have changed
}

void Worker::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

bool Worker::wait_idle(std::chrono::milliseconds timeout) {
  bool idle;
  {
    std::unique_lock lock(mu_);
    idle = cv_.wait_for(lock, timeout, [this] { return in_flight_.empty(); });
  }
  reap();
  return idle;
}

std::size_t Worker::in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_.size();
}

std::map<std::string, long long> Worker::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

void Worker::count(const std::string& name, long long n) {
  std::lock_guard lock(mu_);
  counters_[name] += n;
}

void Worker::redis_state(bool up, const std::string& why) {
  // A full Redis (maxmemory with noeviction) refuses writes with OOM and still answers reads,
  // so passes alternate between failing and working: logged as what it is, at most once a
  // minute, without the up/down lines an outage gets (it is not one, and not a misdiagnosis
  // for the operator to chase).
  if (!up && why.find("OOM") != std::string::npos) {
    const auto now = Steady::now();
    {
      std::lock_guard lock(mu_);
      if (oom_logged_ != Steady::time_point{} && now - oom_logged_ < std::chrono::minutes(1)) return;
      oom_logged_ = now;
    }
    log::error("redis is out of memory (OOM): it refuses the fetcher's writes, no policy is refreshed; raise "
               "maxmemory or free memory (keep maxmemory-policy noeviction); the MTA hosts go on reading what "
               "is cached",
               {{"problem", "OOM"}, {"error", why}});
    return;
  }
  // A refused password or a missing ACL permission is not an outage: it needs the operator,
  // and the log says which, so that nobody waits for Redis to "come back".
  const int now_state = up ? 1 : static_cast<int>(classify_text(why)) + 2;
  int before;
  {
    std::lock_guard lock(mu_);
    before = redis_up_;
    redis_up_ = now_state;
  }
  if (now_state == before) return;
  if (up) {
    if (before >= 2) log::notice("redis reachable again");
    return;
  }
  switch (classify_text(why)) {
    case RedisTrouble::wrongpass:
      log::error("redis refused the fetcher's user or password (WRONGPASS); check [cached] redis-acl-user and "
                 "its password; retrying with backoff",
                 {{"problem", "WRONGPASS"}, {"error", why}});
      break;
    case RedisTrouble::noperm:
      log::error("redis ACL forbids a command the fetcher needs (NOPERM); see mta-sts-cached --check-redis; "
                 "retrying with backoff",
                 {{"problem", "NOPERM"}, {"error", why}});
      break;
    default:
      log::error("redis unreachable; retrying with backoff", {{"problem", "unreachable"}, {"error", why}});
      break;
  }
}

void Worker::wait_for_slot(const Services& s) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return stopping_ || in_flight_.size() < s.options.concurrency; });
}

bool Worker::launch(const std::shared_ptr<const Services>& s, const Task& t, PassResult* pr) {
  DomainParse p = Domain::parse(t.name);
  if (!p.domain) {
    log::warning("dropping invalid domain from the queue", {{"name", t.name}, {"error", p.error}});
    s->store->forget_invalid(t.name);
    return false;
  }
  const Domain d = std::move(*p.domain);
  if (d.str() != t.name) {
    // A name no milter writes (they write the normalised form): anyone with an MTA host's
    // Redis user may add one. Taking it as its normalised domain would never remove it (the
    // write clears the normalised name): dropped, like an invalid one. A real lookup of the
    // domain signals its own miss.
    log::warning("dropping a name that is not in canonical form from the queue",
                 {{"name", t.name}, {"domain", d.str()}});
    count("names_dropped");
    s->store->forget_invalid(t.name);
    return false;
  }
  {
    std::lock_guard lock(mu_);
    if (stopping_ || in_flight_.count(d.str())) return false;
    // A refresh this fetcher leaves to newer fetchers for a while (misses are still taken:
    // clearing one is cheap, and the milters wait on it).
    if (!t.miss) {
      const auto it = deferred_.find(d.str());
      if (it != deferred_.end()) {
        if (Steady::now() < it->second) return false;
        deferred_.erase(it);
      }
    }
  }
  std::string token = random_token();
  if (!s->store->claim(d, token, s->options.lock_ttl)) {
    count("claims_lost");
    fetcher_metrics().claims_lost.inc();
    if (pr) ++pr->busy;
    return false;
  }
  claims_.hold(d, token, std::shared_ptr<PolicyStore>(s, s->store.get()), s->options.lock_ttl);
  try {
    // Started under the lock, so that the thread is registered before it can finish.
    std::lock_guard lock(mu_);
    const std::uint64_t id = next_task_++;
    in_flight_.insert(d.str());
    if (!t.miss) ++refreshing_;
    try {
      threads_.emplace(id, std::thread([this, id, s, d, token, miss = t.miss]() mutable {
        handle(id, std::move(s), std::move(d), std::move(token), miss);
      }));
    } catch (...) {
      in_flight_.erase(d.str());
      if (!t.miss) --refreshing_;
      throw;
    }
  } catch (const std::system_error& e) {
    log::error("cannot start a worker thread", {{"domain", d.str()}, {"error", e.what()}});
    claims_.drop(d);
    s->store->release(d, token);
    return false;
  }
  if (pr) ++pr->taken;
  return true;
}

void Worker::handle(std::uint64_t task, std::shared_ptr<const Services> s, Domain d, std::string token,
                    bool miss) {
  const Services& sv = *s;
  // Every write is fenced by the claim: when it expired (a discovery that outlived lock-ttl),
  // another fetcher may own the domain now, and what we have is not written over its entry.
  // Nor is an entry of a newer codec version replaced (a fleet half upgraded): newer fetchers
  // keep it fresh.
  const auto write = [&](const CacheEntry& e, SysTime at, bool announce) {
    if (claims_.lost(d)) {  // Redis said so at a renewal (and logged it): nothing to try
      count("writes_fenced");
      fetcher_metrics().writes_fenced.inc();
      return false;
    }
    switch (sv.store->put_claimed(d, e, at, announce, token)) {
      case PolicyStore::PutResult::written: return true;
      case PolicyStore::PutResult::claim_lost:
        count("writes_fenced");
        fetcher_metrics().writes_fenced.inc();
        log::notice("claim lost before the write; entry not written", {{"domain", d.str()}});
        return false;
      case PolicyStore::PutResult::newer_format_kept:
        count("newer_format_kept");
        fetcher_metrics().newer_format_kept.inc();
        log::info("entry of a newer format kept, not replaced", {{"domain", d.str()}});
        return false;
    }
    return false;
  };
  try {
    const SysTime now = clock_.now();
    std::string decode_error;
    int writer_version = 0;
    std::optional<CacheEntry> entry = sv.store->get(d, &decode_error, &writer_version);
    // Written by a newer codec version, readable here or not: whatever this fetcher fetched
    // would be discarded by the fenced write, so it fetches nothing (issue 19).
    const bool newer_format = writer_version > kCodecVersion;
    if (!decode_error.empty() && !newer_format)
      log::warning("undecodable cache entry will be replaced", {{"domain", d.str()}, {"error", decode_error}});
    refresh::Action action = newer_format ? refresh::Action::newer_format : refresh::plan(entry, now, miss);
    count(std::string("action_") + refresh::to_string(action));
    if (action == refresh::Action::backoff) {
      // The retry rule is per (domain, id): the cheap TXT step tells whether the domain
      // published a new policy since the failure, which may be fetched at once.
      const discovery::Report txt = discovery::check_txt(d, *sv.resolver);
      if (!txt.id.empty() && may_retry(*entry, now, txt.id)) {
        count("backoff_new_id");
        action = refresh::Action::discover;
      }
    }
    switch (action) {
      case refresh::Action::newer_format:
        // Written by a newer fetcher (a fleet half upgraded): newer fetchers keep it fresh, and
        // what this one fetched could not be written over it (the fenced write keeps it). So no
        // fetch: the miss is cleared, and the schedule moved later by the shortest backoff but
        // never past the entry's own next refresh (the newer fetchers must find it due before
        // it expires); this fetcher itself leaves it alone for that backoff (deferred_), so
        // that an overdue one is not taken again at every poll. If no newer fetcher is left,
        // the entry ages out with its own TTL and is fetched anew.
        count("newer_format_kept");
        fetcher_metrics().newer_format_kept.inc();
        sv.store->defer(d, now + kMinFailureBackoff);
        if (!miss) leave_alone(d.str(), kMinFailureBackoff);
        log::info("entry of a newer format kept, not fetched",
                  {{"domain", d.str()}, {"version", std::to_string(writer_version)}});
        break;
      case refresh::Action::backoff: {
        // Same id (or no answer): back in the schedule for the next TXT visit or the retry.
        CacheEntry e = *entry;
        e.next_refresh = std::max(refresh::backoff_visit(e, now), now + kMinRecheck);
        write(e, now, false);
        log::debug("not fetched", {{"domain", d.str()}, {"reason", "backoff"}, {"source", miss ? "miss" : "schedule"}});
        break;
      }
      case refresh::Action::skip:
      case refresh::Action::settled:
        // The entry says all there is to say until its next refresh or retry time. Writing it
        // back unchanged clears the miss and re-aligns the schedule with it, so that a domain
        // put forward in the schedule during a backoff is not taken again at every poll.
        write(*entry, now, false);
        log::debug("not fetched", {{"domain", d.str()}, {"reason", refresh::to_string(action)},
                                   {"source", miss ? "miss" : "schedule"}});
        break;
      case refresh::Action::discover: {
        const StoredPolicy* cached = entry && entry->policy ? &*entry->policy : nullptr;
        const discovery::Report report =
            discovery::discover(d, *sv.resolver, *sv.https, cached, now, sv.options.discovery);
        if (report.fetched && report.fetch.kind == https::ErrorKind::aborted) {
          // Our own shutdown, not the domain's failure: write nothing (no backoff for the
          // fleet); the miss or schedule entry stays for the next fetcher.
          log::notice("fetch abandoned at shutdown", {{"domain", d.str()}});
          break;
        }
        const SysTime after = clock_.now();
        refresh::Outcome out = refresh::apply(entry, report, after, sv.options.rules, jitter_draw());
        fetcher_metrics().discovery(report.status);
        // A lost claim writes nothing: the downgrade, if any, is the other fetcher's to count.
        if (!write(out.entry, after, out.announce)) break;
        fetcher_metrics().downgrade(entry, report);
        {
          std::lock_guard lock(mu_);
          counters_["discoveries"] += 1;
          counters_[std::string("status_") + discovery::to_string(report.status)] += 1;
          if (report.fetched) counters_["https_fetches"] += 1;
          if (auto f = report.failure()) counters_[std::string("failures_") + to_string(*f)] += 1;
          if (report.fetched && !report.fetch.ok())
            counters_[std::string("fetch_error_") + https::to_string(report.fetch.kind)] += 1;
          if (report.policy) counters_[std::string("policies_") + to_string(report.policy->mode)] += 1;
          if (out.entry.no_policy_until && !out.entry.policy) counters_["negative_entries"] += 1;
          if (out.announce) counters_["announcements"] += 1;
        }
        for (const auto& ev : out.events) emit(ev.level, ev.message, ev.fields);
        Fields f{{"domain", d.str()}, {"status", discovery::to_string(report.status)},
                 {"source", miss ? "miss" : "schedule"}};
        if (!report.id.empty()) f.emplace_back("id", report.id);
        if (report.policy) f.emplace_back("mode", to_string(report.policy->mode));
        if (auto why = report.reason(); !why.empty()) f.emplace_back("error", why);
        f.emplace_back("next_refresh", iso_time(out.entry.next_refresh));
        emit(log::Level::info, "discovery", f);
        break;
      }
    }
    claims_.drop(d);
    sv.store->release(d, token);
    redis_state(true, {});
  } catch (const RedisError& e) {
    count("redis_errors");
    fetcher_metrics().redis_errors.inc();
    redis_state(false, e.what());
    claims_.drop(d);
    try {
      sv.store->release(d, token);
    } catch (const std::exception&) {
      // The lock expires by itself after lock_ttl.
    }
  } catch (const std::exception& e) {
    count("internal_errors");
    log::error("domain task failed", {{"domain", d.str()}, {"error", e.what()}});
    claims_.drop(d);
    try {
      sv.store->release(d, token);
    } catch (const std::exception&) {
    }
  }
  // The task's hold on the services ends before it reports itself done: once the Worker sees
  // no task in flight, nothing but itself may own them (a reload may have left this task the
  // last owner, and the process may exit right after the Worker).
  const std::string name = d.str();
  s.reset();
  std::lock_guard lock(mu_);
  in_flight_.erase(name);
  if (!miss) --refreshing_;
  done_.push_back(task);
  cv_.notify_all();
}

void Worker::leave_alone(const std::string& name, std::chrono::seconds how_long) {
  std::lock_guard lock(mu_);
  const auto now = Steady::now();
  // Bounded: past deadlines go first; beyond the bound, the oldest deadline is forgotten (at
  // worst that domain is looked at once more).
  if (deferred_.size() >= kMaxDeferred) std::erase_if(deferred_, [&](const auto& kv) { return kv.second <= now; });
  if (deferred_.size() >= kMaxDeferred)
    deferred_.erase(std::min_element(deferred_.begin(), deferred_.end(),
                                     [](const auto& a, const auto& b) { return a.second < b.second; }));
  deferred_[name] = now + how_long;
}

void Worker::load_warm_list(const Services& s) {
  if (s.options.warm_list.empty()) return;
  std::ifstream in(s.options.warm_list);
  if (!in) {
    log::warning("cannot read the warm list", {{"file", s.options.warm_list}});
    return;
  }
  const SysTime now = clock_.now();
  std::size_t added = 0, known = 0, invalid = 0;
  // The operator pins these domains: each load marks them wanted, so that they are never
  // forgotten for want of lookups (in batches, one round trip each).
  std::vector<std::pair<std::string, SysTime>> wanted;
  const auto mark = [&] {
    s.store->note_wanted(wanted);
    wanted.clear();
  };
  std::string line;
  while (std::getline(in, line)) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    const auto b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos) continue;
    const auto e = line.find_last_not_of(" \t\r");
    const std::string name = line.substr(b, e - b + 1);
    DomainParse p = Domain::parse(name);
    if (!p.domain) {
      ++invalid;
      log::warning("warm list: not a domain", {{"file", s.options.warm_list}, {"name", name}, {"error", p.error}});
      continue;
    }
    wanted.emplace_back(p.domain->str(), now);
    if (wanted.size() >= 1000) mark();
    // Only unknown domains are scheduled now: a known one keeps its own refresh time.
    if (s.store->get(*p.domain)) {
      ++known;
      continue;
    }
    s.store->schedule(*p.domain, now);
    ++added;
  }
  mark();
  count("warm_scheduled", static_cast<long long>(added));
  log::info("warm list read", {{"file", s.options.warm_list}, {"scheduled", std::to_string(added)},
                               {"known", std::to_string(known)}, {"invalid", std::to_string(invalid)}});
}

void Worker::write_stats(const Services& s) {
  const std::size_t misses = s.store->misses_size();
  const std::size_t scheduled = s.store->schedule_size();
  std::map<std::string, long long> c;
  {
    std::lock_guard lock(mu_);
    c = counters_;
    c["in_flight"] = static_cast<long long>(in_flight_.size());
  }
  c["claims_renewed"] = claims_.renewals();
  c["claims_lost_in_work"] = claims_.losses();
  c["claims_renewal_failures"] = claims_.failures();
  c["queue_misses"] = static_cast<long long>(misses);
  c["queue_scheduled"] = static_cast<long long>(scheduled);
  c["concurrency"] = s.options.concurrency;
  // For `mta-sts-ctl cache stats`: when this was written and when the next one is due, so that
  // a fetcher that stopped reporting is shown as stale instead of alive.
  c["reported_at"] = clock_.now().time_since_epoch().count();
  c["stats_interval"] = s.options.stats_interval.count();
  // One line; every value is a number we made, so plain "k=v" needs no quoting. The report
  // time is left out: the line has its own (ISO) time, and no raw Unix time goes to the log.
  std::string line = "stats";
  for (const auto& [k, v] : c)
    if (k != "reported_at") line += " " + k + "=" + std::to_string(v);
  log::info(line, {{"fetcher", s.options.fetcher_id}});
  s.store->write_stats(s.options.fetcher_id, c, 3 * s.options.stats_interval);
}

Worker::Housekeeping Worker::housekeep() {
  auto s = current();
  const StoreOptions& so = s->store->options();
  // Bounded work per step (one script or command of at most kBatch names, a few ms of
  // Redis), repeated while a set is over its bound, for at most kBudget per round: the work
  // scales with the overflow, so that a flood of made-up domains (any rate the MTA hosts can
  // send) does not grow wanted and the schedule past their bounds, and Redis is never blocked
  // by one long step.
  constexpr std::size_t kBatch = 1000;
  constexpr auto kBudget = std::chrono::seconds(1);
  const auto deadline = Steady::now() + kBudget;
  const auto more_time = [&] { return Steady::now() < deadline; };
  Housekeeping h;
  const SysTime now = clock_.now();
  const std::size_t wanted_bound = so.max_domains + so.max_misses;
  // Scores first: a forged far-future miss must not survive the trim (it keeps the newest).
  h.scores_bounded = s->store->bound_scores(now, kBatch);
  h.misses_trimmed = s->store->trim_misses();
  for (;;) {
    const std::size_t gone = s->store->forget_unwanted(now - s->options.forget_after, kBatch, now);
    h.forgotten += gone;
    if (gone == 0 || !more_time()) break;
    if (gone < kBatch && s->store->wanted_size() <= wanted_bound) break;
  }
  for (std::size_t scheduled = s->store->schedule_size(); scheduled > so.max_domains && more_time();
       scheduled = s->store->schedule_size()) {
    const std::size_t excess = std::min(scheduled - so.max_domains, kBatch);
    auto candidates = s->store->eviction_candidates(2 * excess);
    const auto chosen = sched::choose_evictions(candidates, excess, now, s->options.forget_after);
    const std::unordered_set<std::string> pick(chosen.begin(), chosen.end());
    std::vector<PolicyStore::Candidate> victims;
    for (auto& c : candidates)
      if (pick.count(c.name)) victims.push_back(std::move(c));
    const std::size_t evicted = s->store->unschedule_unwanted(victims);
    h.evicted += evicted;
    if (evicted == 0) break;  // only protected ones left in reach: the bound is soft
  }
  if (h.scores_bounded) count("scores_bounded", static_cast<long long>(h.scores_bounded));
  if (h.misses_trimmed) count("misses_trimmed", static_cast<long long>(h.misses_trimmed));
  if (h.forgotten) count("domains_forgotten", static_cast<long long>(h.forgotten));
  if (h.evicted) count("domains_evicted", static_cast<long long>(h.evicted));
  FetcherMetrics& m = fetcher_metrics();
  m.misses_trimmed.inc(h.misses_trimmed);
  m.domains_forgotten.inc(h.forgotten);
  m.domains_evicted.inc(h.evicted);
  if (h.misses_trimmed || h.forgotten || h.evicted || h.scores_bounded)
    log::info("housekeeping", {{"scores_bounded", std::to_string(h.scores_bounded)},
                               {"misses_trimmed", std::to_string(h.misses_trimmed)},
                               {"forgotten", std::to_string(h.forgotten)},
                               {"evicted", std::to_string(h.evicted)}});
  return h;
}

// The queue gauges, read from Redis at most once a second (not at every poll): a scrape sees
// values at most a second old and never waits on Redis itself.
void Worker::update_gauges(const Services& s) {
  FetcherMetrics& m = fetcher_metrics();
  const SysTime now = clock_.now();
  m.misses_waiting.set(static_cast<double>(s.store->misses_size()));
  m.domains_scheduled.set(static_cast<double>(s.store->schedule_size()));
  m.domains_wanted.set(static_cast<double>(s.store->wanted_size()));
  const auto age = [now](std::optional<SysTime> t) {
    return t && *t < now ? static_cast<double>((now - *t).count()) : 0.0;
  };
  m.oldest_miss_age.set(age(s.store->oldest_miss()));
  m.oldest_overdue_age.set(age(s.store->earliest_scheduled()));
  m.in_flight.set(static_cast<double>(in_flight()));
  m.concurrency.set(s.options.concurrency);
  m.last_poll.set(static_cast<double>(now.time_since_epoch().count()));
}

void Worker::run() {
  auto s = current();
  log::notice("fetcher running", {{"fetcher", s->options.fetcher_id},
                                  {"concurrency", std::to_string(s->options.concurrency)}});
  std::chrono::milliseconds backoff = s->options.poll_interval;
  for (;;) {
    s = current();
    reap();
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    bool ok = true;
    bool saturated = false;
    try {
      const auto now = Steady::now();
      // next_warm_ is reset by reload() on another thread: read and advance it under mu_.
      bool warm_due = false;
      if (!s->options.warm_list.empty()) {
        std::lock_guard lock(mu_);
        warm_due = now >= next_warm_;
        if (warm_due) next_warm_ = now + s->options.warm_interval;
      }
      if (warm_due) load_warm_list(*s);
      std::size_t busy, refreshing;
      {
        std::lock_guard lock(mu_);
        busy = in_flight_.size();
        refreshing = refreshing_;
      }
      std::size_t free = s->options.concurrency > busy ? s->options.concurrency - busy : 0;
      // Ask for more than the free slots: the first names may be in flight here or claimed
      // by another fetcher.
      const std::size_t window = std::min<std::size_t>(free + busy + 4 * s->options.concurrency, 4096);
      if (free > 0) {
        // Due refreshes first up to the reserve (fair work, cached/schedule.hpp), then misses,
        // then more due refreshes with whatever is left.
        auto due = s->store->due_entries(clock_.now(), std::min<std::size_t>(window, 1024));
        sched::order_due(due, clock_.now());
        std::size_t first =
            sched::refreshes_first(sched::refresh_reserve(s->options.concurrency, s->options.refresh_share),
                                   refreshing, free);
        auto next_due = due.begin();
        for (; next_due != due.end() && first > 0; ++next_due) {
          if (launch(s, Task{next_due->name, false}, nullptr)) {
            --free;
            --first;
          }
        }
        if (free > 0) {
          for (const auto& name : s->store->pending_misses(clock_.now(), window)) {
            if (free == 0) break;
            if (launch(s, Task{name, true}, nullptr)) --free;
          }
        }
        for (; next_due != due.end() && free > 0; ++next_due)
          if (launch(s, Task{next_due->name, false}, nullptr)) --free;
      }
      saturated = free == 0;
      if (now >= next_housekeeping_) {
        next_housekeeping_ = now + s->options.housekeeping_interval;
        housekeep();
      }
      if (now >= next_gauges_) {
        update_gauges(*s);
        next_gauges_ = now + std::chrono::seconds(1);
      }
      if (now >= next_stats_) {
        // At the first pass too: `mta-sts-ctl cache stats` shows a fetcher as soon as it runs.
        write_stats(*s);
        next_stats_ = now + s->options.stats_interval;
      }
      redis_state(true, {});
      backoff = s->options.poll_interval;
    } catch (const RedisError& e) {
      ok = false;
      fetcher_metrics().redis_errors.inc();
      redis_state(false, e.what());
    } catch (const std::exception& e) {
      ok = false;
      log::error("scheduler error", {{"error", e.what()}});
    }
    std::unique_lock lock(mu_);
    if (ok) {
      // A full house waits for a free slot (or the poll interval), else for the next poll.
      const std::size_t before = in_flight_.size();
      cv_.wait_for(lock, s->options.poll_interval,
                   [&] { return stopping_ || (saturated && in_flight_.size() < before); });
    } else {
      cv_.wait_for(lock, backoff, [&] { return stopping_; });
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
    }
  }
  log::notice("fetcher stopped taking work", {{"in_flight", std::to_string(in_flight())}});
  // Final counters, so that a short-lived fetcher leaves its figures behind too.
  try {
    write_stats(*s);
  } catch (const std::exception& e) {
    log::debug("final stats not written", {{"error", e.what()}});
  }
}

Worker::PassResult Worker::run_once() {
  PassResult pr;
  auto s = current();
  std::set<std::string> attempted;
  try {
    load_warm_list(*s);
    // Misses scored far from now are taken too (pending_misses reads only those near now).
    s->store->bound_scores(clock_.now(), 100000);
    for (;;) {
      std::vector<Task> tasks;
      for (const auto& n : s->store->pending_misses(clock_.now(), 100000))
        if (!attempted.count(n)) tasks.push_back({n, true});
      for (const auto& n : s->store->due(clock_.now(), 100000))
        if (!attempted.count(n)) tasks.push_back({n, false});
      if (tasks.empty()) break;
      for (const auto& t : tasks) {
        if (!attempted.insert(t.name).second) continue;
        wait_for_slot(*s);
        reap();
        {
          std::lock_guard lock(mu_);
          if (stopping_) break;
        }
        launch(s, t, &pr);
      }
      // Let this round finish before looking again, so that what it wrote is seen.
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return in_flight_.empty(); });
      if (stopping_) break;
    }
    redis_state(true, {});
  } catch (const RedisError& e) {
    redis_state(false, e.what());
    pr.redis_ok = false;
  }
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return in_flight_.empty(); });
    pr.failed = static_cast<std::size_t>(counters_["redis_errors"]);
  }
  reap();
  return pr;
}

}  // namespace mtasts::worker
