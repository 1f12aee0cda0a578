// The fleet's shared state in Redis: key names (schema v1, see store.hpp) and the operations
// of the milter, the fetcher and the CLI. Each operation is one round trip (a command, a
// pipeline or a MULTI/EXEC) on a leased connection.
#include "common/fleet/store.hpp"

#include "common/fleet/report_store.hpp"

#include "common/util/random.hpp"

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <unordered_set>

namespace mtasts {

namespace {

constexpr std::string_view kSchema = "v1:";

std::string unix_text(SysTime t) { return std::to_string(t.time_since_epoch().count()); }

// SCAN MATCH treats these as glob syntax; a prefix must match literally.
std::string glob_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// Compare-and-delete: only the holder of the token may release the lock (a fetcher whose
// lock expired must not delete the lock of the fetcher that took over).
constexpr std::string_view kReleaseScript =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

// Keep-alive of a claim: only its holder may extend it (compare-and-PEXPIRE), so that a
// fetcher whose claim already expired cannot take back a domain another fetcher holds now.
constexpr std::string_view kRenewScript =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

// The fenced write (put_claimed). KEYS: lock, entry, schedule, misses, wanted. ARGV: token,
// value, ttl, next refresh, domain, announce ("1"/"0"), channel, codec version, now, the
// announcement ("<domain> <checked_at>", then the bare domain for MTA hosts of older
// releases; see store.hpp). Nothing
// is written unless the lock still holds the caller's token: a fetcher whose claim expired
// during a long discovery cannot overwrite the entry of the fetcher that took over (a lost
// update, or an old policy brought back). Redis runs a script atomically, so no other write
// interleaves. An entry whose first line "v=N" names a newer codec version than ARGV[8] is
// not replaced (return 2): this fetcher could not write back what it does not know; the miss
// is cleared, and the schedule moved later only up to the entry's own next refresh (its
// "next=" line; not at all without one), never past it: the newer fetchers must find it due
// in time, or the policy expires (a rolling upgrade, issue 19).
// The schedule is not trimmed here (trimming by rank dropped the farthest refreshes, i.e. the
// long-lived policies): the fetchers' housekeeping evicts the least recently wanted. A write
// that answers a miss marks the domain wanted now; any other write gives a domain without a
// wanted record one (an entry from before that key existed is refreshed for a while, not
// forgotten at once).
constexpr std::string_view kFencedPutScript =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "local cur = redis.call('GET', KEYS[2]) "
    "if cur then local v = tonumber(string.match(cur, '^v=(%d+)\\n')) "
    "if v and v > tonumber(ARGV[8]) then "
    "redis.call('ZREM', KEYS[4], ARGV[5]) "
    "local own = tonumber(string.match(cur, '\\nnext=(%d+)\\n')) "
    "if own then redis.call('ZADD', KEYS[3], 'XX', 'GT', math.min(tonumber(ARGV[4]), own), ARGV[5]) end "
    "return 2 end end "
    "redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3]) "
    "redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5]) "
    "if redis.call('ZREM', KEYS[4], ARGV[5]) == 1 then redis.call('ZADD', KEYS[5], 'GT', ARGV[9], ARGV[5]) "
    "else redis.call('ZADD', KEYS[5], 'NX', ARGV[9], ARGV[5]) end "
    "if ARGV[6] == '1' then redis.call('PUBLISH', ARGV[7], ARGV[10]) redis.call('PUBLISH', ARGV[7], ARGV[5]) end "
    "return 1";

// Housekeeping: beyond the bound ARGV[2] of wanted, drops up to ARGV[1] names that are NOT
// scheduled (lookups of domains never fetched: a flood of made-up names whose misses were
// trimmed), found by a random sample: a scheduled domain keeps its record, so that a flood of
// lookups can never push a wanted enforce policy out of the schedule (the schedule has its own
// bound, with eviction that protects those; see sched::choose_evictions). KEYS: wanted,
// schedule.
constexpr std::string_view kForgetScript =
    "local want = math.min(redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2]), tonumber(ARGV[1])) "
    "local gone = 0 "
    "if want <= 0 then return 0 end "
    "local sample = redis.call('ZRANDMEMBER', KEYS[1], want * 4) "
    "local scores = redis.call('ZMSCORE', KEYS[2], unpack(sample)) "
    "for i, n in ipairs(sample) do "
    "if gone >= want then break end "
    "if not scores[i] then gone = gone + redis.call('ZREM', KEYS[1], n) end "
    "end "
    "return gone";

// Leaves a newer fetcher's entry to it (PolicyStore::defer): clears the miss and moves the
// schedule later, to ARGV[1] at most and never past the entry's own next refresh (its "next="
// line; no move without one, or without an entry). KEYS: entry, schedule, misses. ARGV: when,
// domain.
constexpr std::string_view kDeferScript =
    "redis.call('ZREM', KEYS[3], ARGV[2]) "
    "local cur = redis.call('GET', KEYS[1]) "
    "local own = cur and tonumber(string.match(cur, '\\nnext=(%d+)\\n')) "
    "if own then redis.call('ZADD', KEYS[2], 'XX', 'GT', math.min(tonumber(ARGV[1]), own), ARGV[2]) end "
    "return 1";

// Compare-and-unschedule (forgetting and eviction), for triples ARGV[i] name, ARGV[i+1] its
// wanted time as the fetcher read it ("" for no record), ARGV[i+2] its schedule score as read
// (""  for none): the name leaves schedule and wanted only if its wanted time is absent then
// and now, or not later now, and its schedule score is the same (a write, which moves it, did
// not happen since). A domain looked up or refreshed between the fetcher's choice and this
// script keeps its place. Scripts run atomically: nothing interleaves. (The shipped fetcher ACL
// has ZMSCORE, not ZSCORE.) KEYS: wanted, schedule.
constexpr std::string_view kUnscheduleScript =
    "local gone = 0 "
    "for i = 1, #ARGV - 2, 3 do "
    "local w = redis.call('ZMSCORE', KEYS[1], ARGV[i])[1] "
    "local s = redis.call('ZMSCORE', KEYS[2], ARGV[i])[1] "
    "local same "
    "if ARGV[i + 1] == '' then same = not w else same = w and tonumber(w) <= tonumber(ARGV[i + 1]) end "
    "if ARGV[i + 2] == '' then same = same and not s else same = same and s and tonumber(s) == tonumber(ARGV[i + 2]) end "
    "if same then redis.call('ZREM', KEYS[2], ARGV[i]) redis.call('ZREM', KEYS[1], ARGV[i]) gone = gone + 1 end "
    "end "
    "return gone";

// Bounds the scores of a zset that MTA hosts write (misses, wanted) to about "now": at most
// ARGV[4] members scored before ARGV[1] (when it is not "") and at most ARGV[4] scored after
// ARGV[2] are set to ARGV[3]. KEYS: the set.
constexpr std::string_view kBoundScoresScript =
    "local moved = 0 "
    "local function bound(lo, hi) "
    "for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], lo, hi, 'LIMIT', 0, tonumber(ARGV[4]))) do "
    "redis.call('ZADD', KEYS[1], ARGV[3], m) moved = moved + 1 end end "
    "if ARGV[1] ~= '' then bound('-inf', '(' .. ARGV[1]) end "
    "bound('(' .. ARGV[2], '+inf') "
    "return moved";

}  // namespace

std::string announcement_text(const Domain& d, const CacheEntry& written) {
  return d.str() + " " + unix_text(written.checked_at);
}

Announcement parse_announcement(std::string_view text) {
  Announcement a;
  const std::size_t sp = text.find(' ');
  a.domain = std::string(text.substr(0, sp));
  if (sp == std::string_view::npos) return a;
  const std::string_view v = text.substr(sp + 1);
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec == std::errc{} && end == v.data() + v.size() && n >= 0 && !v.empty())
    a.checked_at = SysTime{Seconds{n}};
  return a;
}

PolicyStore::PolicyStore(Pool& pool, StoreOptions opts, Pool* read_pool)
    : pool_(pool), opts_(std::move(opts)), read_pool_(read_pool) {}

std::string PolicyStore::entry_key(const Domain& d) const {
  return opts_.prefix + std::string(kSchema) + "e:" + d.str();
}

std::string PolicyStore::lock_key(const Domain& d) const {
  return opts_.prefix + std::string(kSchema) + "lock:" + d.str();
}

std::string PolicyStore::drop_key(const Domain& d) const {
  return opts_.prefix + std::string(kSchema) + "dropped:" + d.str();
}

std::string PolicyStore::changed_channel() const { return opts_.prefix + std::string(kSchema) + "changed"; }

namespace {
struct Keys {
  std::string misses, schedule, wanted;
  explicit Keys(const std::string& prefix)
      : misses(prefix + std::string(kSchema) + "misses"),
        schedule(prefix + std::string(kSchema) + "schedule"),
        wanted(prefix + std::string(kSchema) + "wanted") {}
};

// A zset score as a time: what another host wrote is untrusted, so anything but a plain
// finite number in a sane range reads as absent.
std::optional<SysTime> score_time(std::string_view text) {
  const std::string score(text);
  char* end = nullptr;
  const double v = std::strtod(score.c_str(), &end);
  if (end == score.c_str() || *end != '\0' || !(v > -1e12 && v < 1e12)) return std::nullopt;
  return SysTime{Seconds{static_cast<long long>(v)}};
}
}  // namespace

std::optional<CacheEntry> PolicyStore::get(const Domain& d, std::string* decode_error, int* writer_version) {
  const std::string key = entry_key(d);
  Reply r = (read_pool_ ? *read_pool_ : pool_).lease()->command({"GET", key});
  if (r.is_nil()) return std::nullopt;
  DecodeResult dr = decode(r.str());
  if (writer_version) *writer_version = dr.version;
  if (!dr.entry) {
    if (decode_error) *decode_error = dr.error;
    return std::nullopt;
  }
  return std::move(dr.entry);
}

PolicyStore::Read PolicyStore::read(const Domain& d) {
  const std::string key = entry_key(d);
  const std::string mark = drop_key(d);
  Reply r = (read_pool_ ? *read_pool_ : pool_).lease()->command({"MGET", key, mark});
  if (r.size() != 2) throw RedisError(RedisError::Kind::protocol, "redis: unexpected MGET reply");
  Read out;
  if (!r.at(1).is_nil()) out.drop_mark = std::string(r.at(1).str());
  if (r.at(0).is_nil()) return out;
  out.present = true;
  DecodeResult dr = decode(r.at(0).str());
  out.writer_version = dr.version;
  if (!dr.entry) out.decode_error = dr.error.empty() ? "undecodable" : dr.error;
  out.entry = std::move(dr.entry);
  return out;
}

void PolicyStore::signal_miss(const Domain& d, SysTime now) {
  const Keys k(opts_.prefix);
  const std::string score = unix_text(now);
  pool_.lease()->command({"ZADD", k.misses, "NX", score, d.str()});
}

void PolicyStore::note_wanted(const std::vector<std::pair<std::string, SysTime>>& batch) {
  if (batch.empty()) return;
  const Keys k(opts_.prefix);
  std::vector<std::string> scores;
  scores.reserve(batch.size());
  for (const auto& [name, t] : batch) scores.push_back(unix_text(t));
  std::vector<std::string_view> argv{"ZADD", k.wanted, "GT"};
  argv.reserve(3 + 2 * batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    argv.push_back(scores[i]);
    argv.push_back(batch[i].first);
  }
  pool_.lease()->command(argv);
}

void PolicyStore::put(const Domain& d, const CacheEntry& e, SysTime now, bool announce) {
  const Keys k(opts_.prefix);
  const std::string key = entry_key(d);
  const std::string value = encode(e);
  const std::string ttl = std::to_string(redis_ttl(e, now, opts_.retention).count());
  const std::string when = unix_text(e.next_refresh);
  const std::string at = unix_text(now);
  const std::string channel = changed_channel();
  const std::string news = announcement_text(d, e);
  std::vector<std::vector<std::string_view>> cmds{
      {"MULTI"},
      {"SET", key, value, "EX", ttl},
      {"ZADD", k.schedule, when, d.str()},
      {"ZADD", k.wanted, "NX", at, d.str()},
      {"ZREM", k.misses, d.str()},
  };
  if (announce) {
    cmds.push_back({"PUBLISH", channel, news});
    cmds.push_back({"PUBLISH", channel, d.str()});  // for MTA hosts of older releases
  }
  cmds.push_back({"EXEC"});
  pool_.lease()->pipeline(cmds);
}

PolicyStore::PutResult PolicyStore::put_claimed(const Domain& d, const CacheEntry& e, SysTime now, bool announce,
                                                const std::string& token) {
  const Keys k(opts_.prefix);
  const std::string lock = lock_key(d);
  const std::string key = entry_key(d);
  const std::string value = encode(e);
  const std::string ttl = std::to_string(redis_ttl(e, now, opts_.retention).count());
  const std::string when = unix_text(e.next_refresh);
  const std::string at = unix_text(now);
  const std::string channel = changed_channel();
  const std::string version = std::to_string(kCodecVersion);
  const std::string news = announcement_text(d, e);
  Reply r = pool_.lease()->command({"EVAL", kFencedPutScript, "5", lock, key, k.schedule, k.misses, k.wanted, token,
                                    value, ttl, when, d.str(), announce ? "1" : "0", channel, version, at, news});
  switch (r.integer()) {
    case 1: return PutResult::written;
    case 2: return PutResult::newer_format_kept;
    default: return PutResult::claim_lost;
  }
}

namespace {
std::vector<std::string> strings_of(const Reply& r) {
  std::vector<std::string> out;
  out.reserve(r.size());
  for (std::size_t i = 0; i < r.size(); ++i) out.emplace_back(r.at(i).str());
  return out;
}
}  // namespace

std::vector<std::string> PolicyStore::pending_misses(std::size_t limit) {
  if (limit == 0) return {};
  const Keys k(opts_.prefix);
  const std::string stop = std::to_string(limit - 1);
  return strings_of(pool_.lease()->command({"ZRANGE", k.misses, "0", stop}));
}

std::vector<std::string> PolicyStore::pending_misses(SysTime now, std::size_t limit) {
  if (limit == 0) return {};
  const Keys k(opts_.prefix);
  const std::string min = unix_text(now - kMissPast);
  const std::string max = unix_text(now + kScoreSlack);
  const std::string count = std::to_string(limit);
  return strings_of(pool_.lease()->command({"ZRANGEBYSCORE", k.misses, min, max, "LIMIT", "0", count}));
}

std::vector<std::string> PolicyStore::due(SysTime now, std::size_t limit) {
  if (limit == 0) return {};
  const Keys k(opts_.prefix);
  const std::string max = unix_text(now);
  const std::string count = std::to_string(limit);
  return strings_of(
      pool_.lease()->command({"ZRANGEBYSCORE", k.schedule, "-inf", max, "LIMIT", "0", count}));
}

namespace {
// The entries of `names`, one pipelined GET each (nullopt: no key, or not decodable).
std::vector<std::optional<CacheEntry>> entries_of(Connection& conn, const PolicyStore& store,
                                                  const std::vector<std::string>& names) {
  std::vector<std::optional<CacheEntry>> out(names.size());
  std::vector<std::string> keys;
  keys.reserve(names.size());
  std::vector<std::vector<std::string_view>> cmds;
  cmds.reserve(names.size());
  for (const auto& n : names) {
    DomainParse p = Domain::parse(n);
    keys.push_back(p.domain ? store.entry_key(*p.domain) : std::string{});
  }
  for (const auto& key : keys)
    if (!key.empty()) cmds.push_back({"GET", key});
  const std::vector<Reply> replies = conn.pipeline(cmds);
  std::size_t r = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (keys[i].empty()) continue;  // not a domain: the worker drops it when it gets there
    const Reply& reply = replies.at(r++);
    if (reply.is_nil()) continue;
    out[i] = decode(reply.str()).entry;
  }
  return out;
}
}  // namespace

std::vector<PolicyStore::Scheduled> PolicyStore::due_entries(SysTime now, std::size_t limit) {
  std::vector<std::string> names = due(now, limit);
  std::vector<Scheduled> out;
  if (names.empty()) return out;
  auto entries = entries_of(*pool_.lease(), *this, names);
  out.reserve(names.size());
  for (std::size_t i = 0; i < names.size(); ++i) out.push_back({std::move(names[i]), std::move(entries[i])});
  return out;
}

void PolicyStore::schedule(const Domain& d, SysTime when) {
  const Keys k(opts_.prefix);
  const std::string score = unix_text(when);
  // LT adds absent members and only ever moves present ones earlier. No trimming here: the
  // fetchers' housekeeping keeps the schedule within max_domains.
  pool_.lease()->command({"ZADD", k.schedule, "LT", score, d.str()});
}

void PolicyStore::forget_invalid(const std::string& raw_name) {
  const Keys k(opts_.prefix);
  pool_.lease()->pipeline({{"ZREM", k.misses, raw_name}, {"ZREM", k.schedule, raw_name}});
}

void PolicyStore::clear_miss(const Domain& d) {
  const Keys k(opts_.prefix);
  pool_.lease()->command({"ZREM", k.misses, d.str()});
}

void PolicyStore::defer(const Domain& d, SysTime when) {
  const Keys k(opts_.prefix);
  const std::string key = entry_key(d);
  const std::string score = unix_text(when);
  pool_.lease()->command({"EVAL", kDeferScript, "3", key, k.schedule, k.misses, score, d.str()});
}

bool PolicyStore::claim(const Domain& d, const std::string& token, std::chrono::milliseconds ttl) {
  const std::string key = lock_key(d);
  const std::string px = std::to_string(std::max<std::chrono::milliseconds::rep>(ttl.count(), 1));
  Reply r = pool_.lease()->command({"SET", key, token, "NX", "PX", px});
  return !r.is_nil();
}

void PolicyStore::release(const Domain& d, const std::string& token) {
  const std::string key = lock_key(d);
  pool_.lease()->command({"EVAL", kReleaseScript, "1", key, token});
}

std::vector<bool> PolicyStore::renew(const std::vector<std::pair<Domain, std::string>>& claims,
                                     std::chrono::milliseconds ttl) {
  if (claims.empty()) return {};
  const std::string px = std::to_string(std::max<std::chrono::milliseconds::rep>(ttl.count(), 1));
  std::vector<std::string> keys;
  keys.reserve(claims.size());
  for (const auto& [d, token] : claims) keys.push_back(lock_key(d));
  std::vector<std::vector<std::string_view>> cmds;
  cmds.reserve(claims.size());
  for (std::size_t i = 0; i < claims.size(); ++i)
    cmds.push_back({"EVAL", kRenewScript, "1", keys[i], claims[i].second, px});
  const std::vector<Reply> replies = pool_.lease()->pipeline(cmds);
  std::vector<bool> held;
  held.reserve(replies.size());
  for (const Reply& r : replies) held.push_back(r.integer() == 1);
  return held;
}

std::size_t PolicyStore::misses_size() {
  const Keys k(opts_.prefix);
  return static_cast<std::size_t>(pool_.lease()->command({"ZCARD", k.misses}).integer());
}

std::size_t PolicyStore::schedule_size() {
  const Keys k(opts_.prefix);
  return static_cast<std::size_t>(pool_.lease()->command({"ZCARD", k.schedule}).integer());
}

std::size_t PolicyStore::wanted_size() {
  const Keys k(opts_.prefix);
  return static_cast<std::size_t>(pool_.lease()->command({"ZCARD", k.wanted}).integer());
}

std::size_t PolicyStore::trim_misses() {
  const Keys k(opts_.prefix);
  // Keep the newest max_misses: ranks 0 .. -(max_misses+1) are the oldest beyond the bound.
  const std::string stop = "-" + std::to_string(opts_.max_misses + 1);
  return static_cast<std::size_t>(pool_.lease()->command({"ZREMRANGEBYRANK", k.misses, "0", stop}).integer());
}

namespace {
// A wanted time as the compare-and-unschedule script compares it ("" for none).
std::string seen_text(const std::optional<SysTime>& t) { return t ? unix_text(*t) : std::string(); }
}  // namespace

std::size_t PolicyStore::forget_unwanted(SysTime cutoff, std::size_t limit, SysTime now) {
  if (limit == 0) return 0;
  const Keys k(opts_.prefix);
  // Strictly before the cutoff: "(" makes the bound exclusive.
  const std::string before = "(" + unix_text(cutoff);
  const std::string max = std::to_string(limit);
  auto conn = pool_.lease();
  const Reply stale = conn->command({"ZRANGEBYSCORE", k.wanted, "-inf", before, "LIMIT", "0", max, "WITHSCORES"});
  std::vector<std::string> names;
  std::vector<std::string> seen;
  for (std::size_t i = 0; i + 1 < stale.size(); i += 2) {
    names.emplace_back(stale.at(i).str());
    seen.emplace_back(stale.at(i + 1).str());
  }
  std::size_t gone = 0;
  if (!names.empty()) {
    // The wanted set is anyone's to write on an MTA host: its time alone never unschedules a
    // usable enforce policy (it would expire, and mail to the domain with it). Such a record
    // is moved to now (checked again after forget-after); the others go if still unwanted
    // and not written since.
    std::vector<std::string_view> zmscore{"ZMSCORE", k.schedule};
    for (const auto& n : names) zmscore.push_back(n);
    const Reply sched = conn->command(zmscore);
    std::vector<std::string> scheduled(names.size());
    for (std::size_t i = 0; i < names.size() && i < sched.size(); ++i)
      if (!sched.at(i).is_nil()) scheduled[i] = std::string(sched.at(i).str());
    const auto entries = entries_of(*conn, *this, names);
    const std::string at = unix_text(now);
    std::vector<std::string_view> keep{"ZADD", k.wanted, "XX", "GT"};
    std::vector<std::string_view> drop{"EVAL", kUnscheduleScript, "2", k.wanted, k.schedule};
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (entries[i] && verdict(*entries[i], now) == Verdict::enforce) {
        keep.push_back(at);
        keep.push_back(names[i]);
      } else {
        drop.push_back(names[i]);
        drop.push_back(seen[i]);
        drop.push_back(scheduled[i]);
      }
    }
    if (keep.size() > 4) conn->command(keep);
    if (drop.size() > 5) gone = static_cast<std::size_t>(std::max<std::int64_t>(conn->command(drop).integer(), 0));
  }
  if (gone < limit) {
    const std::string rest = std::to_string(limit - gone);
    const std::string bound = std::to_string(opts_.max_domains + opts_.max_misses);
    const Reply r = conn->command({"EVAL", kForgetScript, "2", k.wanted, k.schedule, rest, bound});
    gone += static_cast<std::size_t>(std::max<std::int64_t>(r.integer(), 0));
  }
  return gone;
}

std::size_t PolicyStore::bound_scores(SysTime now, std::size_t limit) {
  if (limit == 0) return 0;
  const Keys k(opts_.prefix);
  const std::string past = unix_text(now - kMissPast);
  const std::string ahead = unix_text(now + kScoreSlack);
  const std::string at = unix_text(now);
  const std::string max = std::to_string(limit);
  // A wanted time long past is what forget-after works with: only misses have a lower bound.
  const auto replies = pool_.lease()->pipeline(
      {{"EVAL", kBoundScoresScript, "1", k.misses, past, ahead, at, max},
       {"EVAL", kBoundScoresScript, "1", k.wanted, "", ahead, at, max}});
  std::size_t moved = 0;
  for (const Reply& r : replies) moved += static_cast<std::size_t>(std::max<std::int64_t>(r.integer(), 0));
  return moved;
}

std::vector<PolicyStore::Candidate> PolicyStore::eviction_candidates(std::size_t n) {
  std::vector<Candidate> out;
  if (n == 0) return out;
  const Keys k(opts_.prefix);
  const std::string last = std::to_string(n - 1);
  const std::string count = std::to_string(n);
  auto conn = pool_.lease();
  auto first = conn->pipeline(
      {{"ZRANGE", k.wanted, "0", last, "WITHSCORES"}, {"ZRANDMEMBER", k.schedule, count, "WITHSCORES"}});
  std::vector<std::string> names;
  std::vector<std::optional<SysTime>> wanted;
  std::vector<std::string> schedule_scores;  // as read, for unschedule_unwanted's compare
  std::unordered_set<std::string> seen;
  for (std::size_t i = 0; i + 1 < first[0].size(); i += 2) {
    std::string name(first[0].at(i).str());
    if (!seen.insert(name).second) continue;
    names.push_back(std::move(name));
    wanted.push_back(score_time(first[0].at(i + 1).str()));
  }
  const std::size_t lru = names.size();
  schedule_scores.resize(lru);
  for (std::size_t i = 0; i + 1 < first[1].size(); i += 2) {
    std::string name(first[1].at(i).str());
    if (!seen.insert(name).second) continue;
    names.push_back(std::move(name));
    schedule_scores.emplace_back(first[1].at(i + 1).str());
  }
  if (names.empty()) return out;
  // Which of the least recently wanted are scheduled, and when the sampled ones were wanted.
  std::vector<std::string_view> in_schedule{"ZMSCORE", k.schedule};
  std::vector<std::string_view> in_wanted{"ZMSCORE", k.wanted};
  for (std::size_t i = 0; i < names.size(); ++i) (i < lru ? in_schedule : in_wanted).push_back(names[i]);
  std::vector<std::vector<std::string_view>> cmds;
  if (lru > 0) cmds.push_back(in_schedule);
  if (names.size() > lru) cmds.push_back(in_wanted);
  const auto scores = conn->pipeline(cmds);
  const Reply* sched = lru > 0 ? &scores[0] : nullptr;
  const Reply* want = names.size() > lru ? &scores.back() : nullptr;
  std::vector<bool> scheduled(names.size(), true);
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i < lru) {
      scheduled[i] = sched && i < sched->size() && !sched->at(i).is_nil();
      if (scheduled[i]) schedule_scores[i] = std::string(sched->at(i).str());
    } else if (want && i - lru < want->size() && !want->at(i - lru).is_nil()) {
      wanted.push_back(score_time(want->at(i - lru).str()));
    } else {
      wanted.push_back(std::nullopt);
    }
  }
  auto entries = entries_of(*conn, *this, names);
  for (std::size_t i = 0; i < names.size(); ++i)
    if (scheduled[i]) out.push_back({std::move(names[i]), wanted[i], std::move(entries[i]), std::move(schedule_scores[i])});
  return out;
}

std::size_t PolicyStore::unschedule_unwanted(const std::vector<Candidate>& victims) {
  if (victims.empty()) return 0;
  const Keys k(opts_.prefix);
  std::vector<std::string> seen;
  seen.reserve(victims.size());
  for (const auto& v : victims) seen.push_back(seen_text(v.wanted));
  std::vector<std::string_view> argv{"EVAL", kUnscheduleScript, "2", k.wanted, k.schedule};
  for (std::size_t i = 0; i < victims.size(); ++i) {
    argv.push_back(victims[i].name);
    argv.push_back(seen[i]);
    argv.push_back(victims[i].scheduled);
  }
  return static_cast<std::size_t>(std::max<std::int64_t>(pool_.lease()->command(argv).integer(), 0));
}

void PolicyStore::unschedule(const std::vector<std::string>& names) {
  if (names.empty()) return;
  const Keys k(opts_.prefix);
  std::vector<std::string_view> zrem_s{"ZREM", k.schedule}, zrem_w{"ZREM", k.wanted};
  for (const auto& n : names) {
    zrem_s.push_back(n);
    zrem_w.push_back(n);
  }
  pool_.lease()->pipeline({zrem_s, zrem_w});
}

namespace {
// The score of the first member of a zset, from ZRANGE key 0 0 WITHSCORES. A score we did not
// write (not a number) is treated as absent rather than trusted.
std::optional<SysTime> first_score(Connection& conn, const std::string& key) {
  const Reply r = conn.command({"ZRANGE", key, "0", "0", "WITHSCORES"});
  if (r.size() < 2) return std::nullopt;
  return score_time(r.at(1).str());
}
}  // namespace

std::optional<SysTime> PolicyStore::earliest_scheduled() {
  const Keys k(opts_.prefix);
  return first_score(*pool_.lease(), k.schedule);
}

std::optional<SysTime> PolicyStore::oldest_miss() {
  const Keys k(opts_.prefix);
  return first_score(*pool_.lease(), k.misses);
}

void PolicyStore::write_stats(const std::string& fetcher_id, const std::map<std::string, long long>& counters,
                              Seconds ttl) {
  const std::string key = opts_.prefix + std::string(kSchema) + "stats:" + fetcher_id;
  const std::string ex = std::to_string(std::max<Seconds::rep>(ttl.count(), 1));
  std::vector<std::string> values;
  values.reserve(counters.size());
  for (const auto& [name, v] : counters) values.push_back(std::to_string(v));
  std::vector<std::string_view> hset{"HSET", key};
  std::size_t i = 0;
  for (const auto& [name, v] : counters) {
    hset.push_back(name);
    hset.push_back(values[i++]);
  }
  std::vector<std::vector<std::string_view>> cmds{{"MULTI"}, {"DEL", key}};
  if (!counters.empty()) {
    cmds.push_back(hset);
    cmds.push_back({"EXPIRE", key, ex});
  }
  cmds.push_back({"EXEC"});
  pool_.lease()->pipeline(cmds);
}

bool PolicyStore::drop(const Domain& d) {
  const Keys k(opts_.prefix);
  const std::string key = entry_key(d);
  const std::string mark_key = drop_key(d);
  const std::string lock = lock_key(d);
  const std::string channel = changed_channel();
  // A random step, not a plain counter: a Redis that lost its data (and its marks) must not
  // reissue a mark a host recorded before. INCRBY rather than SET, so that the operator's
  // user cannot write anything a reader would take for a policy entry.
  std::uint64_t r = 0;
  kernel_random(&r, sizeof r);
  const std::string step = std::to_string((r >> 12) + 1);  // 1 .. 2^52: a sum stays exact
  const std::string ttl = std::to_string(kDropMarkTtl.count());
  auto replies = pool_.lease()->pipeline({{"MULTI"},
                                          {"DEL", key},
                                          {"INCRBY", mark_key, step},
                                          {"EXPIRE", mark_key, ttl},
                                          {"DEL", lock},
                                          {"ZREM", k.schedule, d.str()},
                                          {"ZREM", k.misses, d.str()},
                                          {"PUBLISH", channel, d.str()},
                                          {"EXEC"}});
  const Reply& exec = replies.back();
  return exec.size() > 0 && exec.at(0).integer() > 0;
}

std::vector<std::string> PolicyStore::scan_names(Connection& conn, const std::string& key_prefix,
                                                 std::size_t limit) {
  std::vector<std::string> out;
  if (limit == 0) return out;
  const std::string pattern = glob_escape(key_prefix) + "*";
  std::unordered_set<std::string> seen;  // SCAN may return a key more than once
  std::string cursor = "0";
  do {
    Reply r = conn.command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (r.size() != 2) throw RedisError(RedisError::Kind::protocol, "redis: unexpected SCAN reply");
    cursor = std::string(r.at(0).str());
    const Reply::View keys = r.at(1);
    for (std::size_t i = 0; i < keys.size() && out.size() < limit; ++i) {
      const std::string_view k = keys.at(i).str();
      if (!k.starts_with(key_prefix)) continue;
      std::string name(k.substr(key_prefix.size()));
      if (seen.insert(name).second) out.push_back(std::move(name));
    }
  } while (cursor != "0" && out.size() < limit);
  return out;
}

std::vector<std::string> PolicyStore::list(std::size_t limit) {
  auto conn = pool_.lease();
  return scan_names(*conn, opts_.prefix + std::string(kSchema) + "e:", limit);
}

const char* to_string(RedisNeed n) noexcept {
  switch (n) {
    case RedisNeed::read_entries: return "read policy entries";
    case RedisNeed::read_held: return "read policy entries with their drop marks";
    case RedisNeed::signal_misses: return "signal misses";
    case RedisNeed::note_demand: return "record which domains are looked up";
    case RedisNeed::watch_changes: return "subscribe to change announcements";
    case RedisNeed::write_entries: return "write policy entries";
    case RedisNeed::read_queues: return "read the miss and refresh queues";
    case RedisNeed::count_queues: return "count the queues";
    case RedisNeed::claim_locks: return "claim and release refresh locks";
    case RedisNeed::schedule: return "schedule refreshes";
    case RedisNeed::housekeeping: return "bound and age the queues";
    case RedisNeed::write_stats: return "publish fetcher statistics";
    case RedisNeed::read_stats: return "read fetcher statistics";
    case RedisNeed::list_entries: return "list policy entries";
    case RedisNeed::drop_entries: return "drop policy entries";
    case RedisNeed::read_clock: return "read the fleet clock (TIME)";
    case RedisNeed::server_info: return "read the server's memory and persistence settings (INFO)";
    case RedisNeed::read_reports: return "read the TLS-RPT aggregates";
    case RedisNeed::write_reports: return "apply TLS-RPT batches";
  }
  return "?";
}

std::vector<RedisProbe> PolicyStore::probes(RedisNeed need, const StoreOptions& opts) {
  using M = RedisProbe::Mode;
  // ".invalid" (RFC 2606) is never a real destination; no fetcher ever writes this name.
  const std::string probe = "mta-sts-check-redis.invalid";
  const std::string base = opts.prefix + std::string(kSchema);
  const Keys k(opts.prefix);
  const std::string entry = base + "e:" + probe;
  const std::string lock = base + "lock:" + probe;
  const std::string stats = base + "stats:" + probe;
  const std::string channel = base + "changed";
  switch (need) {
    case RedisNeed::read_entries:
      return {{M::direct, {"GET", entry}}};
    case RedisNeed::read_held:
      return {{M::direct, {"MGET", entry, base + "dropped:" + probe}}};
    case RedisNeed::signal_misses:
      // XX: only updates a member that exists, and the probe name never does.
      return {{M::direct, {"ZADD", k.misses, "XX", "0", probe}}};
    case RedisNeed::note_demand:
      // GT with XX: the real command's shape, changing nothing.
      return {{M::direct, {"ZADD", k.wanted, "XX", "GT", "0", probe}}};
    case RedisNeed::watch_changes:
      return {{M::subscribe, {"SUBSCRIBE", channel}}};
    case RedisNeed::write_entries:
      // The fenced write with a token no lock holds: the script reads the probe's lock and
      // stops there, writing nothing.
      return {{M::direct, {"EVAL", std::string(kFencedPutScript), "5", lock, entry, k.schedule, k.misses, k.wanted,
                           "check-redis-holds-no-claim", "x", "1", "0", probe, "0", channel, "1", "0"}},
              {M::queued, {"SET", entry, "x", "XX", "EX", "1"}},
              {M::queued, {"ZADD", k.schedule, "XX", "0", probe}},
              {M::queued, {"ZADD", k.wanted, "XX", "GT", "0", probe}},
              {M::queued, {"ZREM", k.misses, probe}},
              {M::queued, {"PUBLISH", channel, probe}}};
    case RedisNeed::read_queues:
      return {{M::direct, {"ZRANGE", k.misses, "0", "0"}},
              {M::direct, {"ZRANGEBYSCORE", k.schedule, "-inf", "0", "LIMIT", "0", "1"}},
              {M::direct, {"ZREM", k.misses, probe}},
              {M::direct, {"ZREM", k.schedule, probe}}};
    case RedisNeed::count_queues:
      return {{M::direct, {"ZCARD", k.misses}}, {M::direct, {"ZCARD", k.schedule}}, {M::direct, {"ZCARD", k.wanted}}};
    case RedisNeed::claim_locks:
      // A real claim of the probe's lock for a second, released at once by its holder.
      return {{M::direct, {"SET", lock, "check-redis", "NX", "PX", "1000"}},
              {M::direct, {"EVAL", std::string(kRenewScript), "1", lock, "check-redis", "1000"}},
              {M::queued, {"PEXPIRE", lock, "1000"}},  // what the renewal script runs
              {M::direct, {"EVAL", std::string(kReleaseScript), "1", lock, "check-redis"}}};
    case RedisNeed::read_clock:
      return {{M::direct, {"TIME"}}};
    case RedisNeed::server_info:
      return {{M::direct, {"INFO", "memory"}}, {M::direct, {"INFO", "persistence"}}};
    case RedisNeed::schedule:
      return {{M::direct, {"ZADD", k.schedule, "XX", "LT", "0", probe}}};
    case RedisNeed::housekeeping:
      // 1 0: an empty rank range; the forget script with a limit of 0 and no bound reads
      // nothing and removes nothing; the eviction reads change nothing.
      return {{M::direct, {"ZREMRANGEBYRANK", k.misses, "1", "0"}},
              {M::direct, {"EVAL", std::string(kForgetScript), "2", k.wanted, k.schedule, "0", "1000000000000"}},
              {M::direct, {"EVAL", std::string(kUnscheduleScript), "2", k.wanted, k.schedule, probe, "0", "0"}},
              {M::direct, {"EVAL", std::string(kBoundScoresScript), "1", k.misses, "", "+inf", "0", "0"}},
              {M::direct, {"ZRANGEBYSCORE", k.wanted, "-inf", "-inf", "LIMIT", "0", "0", "WITHSCORES"}},
              {M::direct, {"ZADD", k.wanted, "XX", "GT", "0", probe}},
              {M::direct, {"ZRANGEBYSCORE", k.wanted, "-inf", "-inf", "LIMIT", "0", "0"}},
              {M::direct, {"ZRANGE", k.wanted, "1", "0"}},
              {M::direct, {"ZCARD", k.wanted}},
              {M::direct, {"ZREM", k.wanted, probe}},
              {M::direct, {"ZRANDMEMBER", k.schedule, "1", "WITHSCORES"}},
              {M::direct, {"ZMSCORE", k.schedule, probe}},
              {M::direct, {"ZMSCORE", k.wanted, probe}}};
    case RedisNeed::write_stats:
      return {{M::queued, {"DEL", stats}}, {M::queued, {"HSET", stats, "probe", "1"}}, {M::queued, {"EXPIRE", stats, "1"}}};
    case RedisNeed::read_stats:
      return {{M::direct, {"SCAN", "0", "MATCH", glob_escape(base + "stats:") + "*", "COUNT", "10"}},
              {M::direct, {"HGETALL", stats}}};
    case RedisNeed::list_entries:
      return {{M::direct, {"SCAN", "0", "MATCH", glob_escape(base + "e:") + "*", "COUNT", "10"}}};
    case RedisNeed::read_reports:
      return ReportStore::probes(opts.prefix, false);
    case RedisNeed::write_reports:
      return ReportStore::probes(opts.prefix, true);
    case RedisNeed::drop_entries:
      return {{M::queued, {"DEL", entry}},
              {M::queued, {"INCRBY", base + "dropped:" + probe, "1"}},
              {M::queued, {"EXPIRE", base + "dropped:" + probe, "1"}},
              {M::queued, {"DEL", lock}},
              {M::queued, {"ZREM", k.schedule, probe}},
              {M::queued, {"ZREM", k.misses, probe}},
              {M::queued, {"PUBLISH", channel, probe}}};
  }
  return {};
}

std::map<std::string, std::map<std::string, std::string>> PolicyStore::read_stats(std::size_t limit) {
  const std::string key_prefix = opts_.prefix + std::string(kSchema) + "stats:";
  auto conn = pool_.lease();
  std::map<std::string, std::map<std::string, std::string>> out;
  for (const std::string& id : scan_names(*conn, key_prefix, limit)) {
    Reply h = conn->command({"HGETALL", key_prefix + id});
    // A key that expired between SCAN and HGETALL reads as empty: the fetcher stopped.
    if (h.size() == 0) continue;
    auto& counters = out[id];
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) counters[std::string(h.at(i).str())] = std::string(h.at(i + 1).str());
  }
  return out;
}

}  // namespace mtasts
