// The fleet's TLS-RPT aggregates (report_store.hpp). Keys, all under P = "<prefix>v1:rpt:" so
// that one ACL pattern covers them:
//
//   P seq:<host>            string: the last batch number applied for that host (expires
//                           `keep` after its last batch)
//   P d:<day>               set: the policy domains with sessions on that day
//   P h:<day>:<domain>      hash: the counts of one (day, domain):
//       p:<policy-key>      the policy (tlsrpt::encode_policy), written once
//       s:<policy-key>      successful sessions
//       f:<policy-key>      failed sessions (all of them, detailed or not)
//       n:<policy-key>      distinct failure details kept (at most max_details)
//       x:<policy-key>      failed sessions whose detail was over the cap (not detailed)
//       d:<policy-key>:<d>  failed sessions of the detail <d> (tlsrpt::encode_detail)
//       np                  policies kept (at most max_policies)
//       xs, xf              successful and failed sessions of policies over that cap
//
// A day's keys expire at the day's start (00:00:00Z) plus `keep`, whenever they are written.
//
// apply() is one EVAL: the script compares the host's batch number with the one recorded and
// applies the batch only when it is newer, in the same atomic step, so a batch replayed after
// a lost reply, a crash or a restart counts once. Key and field names reach the script only
// as KEYS and ARGV, never in its source. The script never fails half-way: before writing, it
// removes keys of a wrong type (they hold nothing of ours), and it replaces a counter that is
// not a number instead of letting HINCRBY fail (Redis does not roll back a failed script).
//
// Reading back treats every field as untrusted input: a field of unknown form, a count that
// is not a plain decimal, a policy that does not decode or does not match its key, a detail
// that does not decode: each is skipped (and the skips logged), never counted.
#include "common/fleet/report_store.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <unordered_map>

#include "common/tlsrpt/codec.hpp"
#include "common/util/log.hpp"

namespace mtasts {

namespace {

// KEYS: [1] the host's seq key, [2 .. 1+ARGV[5]] day sets, then (day, domain) hashes.
// ARGV: [1] seq, [2] seconds the seq key lives, [3] max_details, [4] max_policies, [5] the
// number of day-set keys, then per entry: hash key index, day-set key index, expire-at,
// domain, policy key, encoded policy, success, failure, number of details, and per detail
// its encoding and count, then the failures whose detail is not kept (not valid: a value a
// collector should not have handed on; counted like those over the cap).
// Returns 1 when applied, 0 for a batch number not above the recorded one, and 0 for a batch
// without entries (apply() sends none; --check-redis's probe does, to write nothing).
constexpr std::string_view kApplyScript = R"lua(
local function num(v)
  if not v then return 0 end
  if #v > 15 or not string.match(v, '^%d+$') then return nil end
  return tonumber(v)
end
local function incr(k, f, by)
  if by == '0' then return end
  if num(redis.call('HGET', k, f)) == nil then redis.call('HSET', k, f, by)
  else redis.call('HINCRBY', k, f, by) end
end
local cur = redis.call('TYPE', KEYS[1])['ok']
if cur == 'string' then
  cur = redis.call('GET', KEYS[1])
  if string.match(cur, '^%d+$') then
    cur = string.gsub(cur, '^0+(%d)', '%1')
    if #cur > #ARGV[1] or (#cur == #ARGV[1] and cur >= ARGV[1]) then return 0 end
  end
elseif cur ~= 'none' then
  redis.call('DEL', KEYS[1])
end
if #ARGV <= 5 then return 0 end
local ndays = tonumber(ARGV[5])
for k = 2, #KEYS do
  local want = 'hash'
  if k <= 1 + ndays then want = 'set' end
  local t = redis.call('TYPE', KEYS[k])['ok']
  if t ~= 'none' and t ~= want then redis.call('DEL', KEYS[k]) end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local maxd, maxp = tonumber(ARGV[3]), tonumber(ARGV[4])
local i = 6
while i <= #ARGV do
  local hk, dk, at = KEYS[tonumber(ARGV[i])], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2]
  local domain, pk, pol = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local s, f, n = ARGV[i + 6], ARGV[i + 7], tonumber(ARGV[i + 8])
  i = i + 9
  local pf = 'p:' .. pk
  local have = redis.call('HGET', hk, pf)
  if have and have ~= pol then redis.call('HSET', hk, pf, pol) end
  if not have then
    local np = num(redis.call('HGET', hk, 'np'))
    if np ~= nil and np < maxp then
      redis.call('HSET', hk, pf, pol)
      incr(hk, 'np', '1')
      have = true
    end
  end
  if have then
    incr(hk, 's:' .. pk, s)
    incr(hk, 'f:' .. pk, f)
    local nf = 'n:' .. pk
    local nd = num(redis.call('HGET', hk, nf))
    for _ = 1, n do
      local df, c = 'd:' .. pk .. ':' .. ARGV[i], ARGV[i + 1]
      i = i + 2
      if redis.call('HEXISTS', hk, df) == 1 then
        incr(hk, df, c)
      elseif nd ~= nil and nd < maxd then
        redis.call('HSET', hk, df, c)
        nd = nd + 1
        redis.call('HSET', hk, nf, nd)
      else
        incr(hk, 'x:' .. pk, c)
      end
    end
    incr(hk, 'x:' .. pk, ARGV[i])
    i = i + 1
  else
    incr(hk, 'xs', s)
    incr(hk, 'xf', f)
    i = i + 2 * n + 1
  end
  redis.call('SADD', dk, domain)
  redis.call('EXPIREAT', hk, at)
  redis.call('EXPIREAT', dk, at)
end
return 1
)lua";

// The key names (see the top of this file).
std::string base_of(const std::string& prefix) { return prefix + "v1:rpt:"; }
std::string seq_name(const std::string& base, std::string_view host) { return base + "seq:" + std::string(host); }
std::string day_name(const std::string& base, std::string_view day) { return base + "d:" + std::string(day); }
std::string counts_name(const std::string& base, std::string_view day, std::string_view domain) {
  return base + "h:" + std::string(day) + ":" + std::string(domain);
}

bool valid_host(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  return std::all_of(host.begin(), host.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

bool valid_domain(std::string_view d) {
  return tlsrpt::is_normal_host(d) && d.find('.') != std::string_view::npos;
}

bool is_policy_key(std::string_view pk) {
  return pk.size() == 16 &&
         std::all_of(pk.begin(), pk.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

ReportStore::ReportStore(Pool& pool, std::string prefix, ReportLimits limits)
    : pool_(pool), prefix_(std::move(prefix)), limits_(limits) {}

std::string ReportStore::key_base() const { return base_of(prefix_); }
std::string ReportStore::seq_key(std::string_view host) const { return seq_name(key_base(), host); }
std::string ReportStore::day_key(std::string_view day) const { return day_name(key_base(), day); }
std::string ReportStore::counts_key(std::string_view day, std::string_view domain) const {
  return counts_name(key_base(), day, domain);
}

ReportStore::Applied ReportStore::apply(std::string_view host, std::uint64_t seq, const tlsrpt::Batch& batch) {
  if (!valid_host(host)) throw std::invalid_argument("ReportStore::apply: invalid host name");
  // Nothing to count: no round trip (and nothing to record: applying it again changes nothing).
  if (batch.empty()) return Applied::applied;
  const auto keep = std::max<std::int64_t>(limits_.keep.count(), 1);

  // Keys first (day sets, then hashes), each once; the entries refer to them by index.
  std::vector<std::string> day_keys, hash_keys;
  std::map<std::string, std::size_t> day_index, hash_index;
  for (const auto& [key, entry] : batch.entries()) {
    const std::string dk = day_key(key.day);
    if (day_index.emplace(dk, day_keys.size()).second) day_keys.push_back(dk);
    const std::string hk = counts_key(key.day, key.domain);
    if (hash_index.emplace(hk, hash_keys.size()).second) hash_keys.push_back(hk);
  }
  std::vector<std::string> args;  // owns the texts the argv views point into
  args.reserve(1 + day_keys.size() + hash_keys.size() + 5 + batch.entries().size() * 9);
  args.push_back(seq_key(host));
  for (auto& k : day_keys) args.push_back(std::move(k));
  for (auto& k : hash_keys) args.push_back(std::move(k));
  const std::size_t n_keys = args.size();
  args.push_back(std::to_string(seq));
  args.push_back(std::to_string(keep));
  args.push_back(std::to_string(limits_.max_details));
  args.push_back(std::to_string(limits_.max_policies));
  args.push_back(std::to_string(day_keys.size()));
  for (const auto& [key, entry] : batch.entries()) {
    const auto start = tlsrpt::day_start(key.day);
    if (!start || !valid_domain(key.domain)) continue;  // Batch::decode refuses these; add() is trusted
    // KEYS are 1-based in Lua, the seq key first, the day sets, then the hashes.
    args.push_back(std::to_string(2 + day_keys.size() + hash_index.at(counts_key(key.day, key.domain))));
    args.push_back(std::to_string(2 + day_index.at(day_key(key.day))));
    args.push_back(std::to_string(*start + keep));
    args.push_back(key.domain);
    args.push_back(key.policy_key);
    args.push_back(tlsrpt::encode_policy(entry.policy));
    args.push_back(std::to_string(entry.counts.success));
    args.push_back(std::to_string(entry.counts.failure));
    const std::size_t count_at = args.size();
    args.emplace_back();
    std::size_t kept = 0;
    std::uint64_t invalid = 0;
    for (const auto& [d, n] : entry.counts.details) {
      if (!tlsrpt::valid_detail(d, nullptr)) {
        invalid += n;
        continue;
      }
      args.push_back(tlsrpt::encode_detail(d));
      args.push_back(std::to_string(n));
      ++kept;
    }
    args[count_at] = std::to_string(kept);
    args.push_back(std::to_string(invalid));
    if (invalid > 0) {
      const std::string n = std::to_string(invalid);
      log::warning("TLS-RPT batch: failure details with invalid values counted without their detail",
                   {{"domain", key.domain}, {"sessions", n}});
    }
  }
  const std::string n_keys_text = std::to_string(n_keys);
  std::vector<std::string_view> argv;
  argv.reserve(3 + args.size());
  argv.push_back("EVAL");
  argv.push_back(kApplyScript);
  argv.push_back(n_keys_text);
  for (const auto& a : args) argv.push_back(a);
  const Reply r = pool_.lease()->command(argv);
  return r.is_integer() && r.integer() == 1 ? Applied::applied : Applied::duplicate;
}

std::vector<RedisProbe> ReportStore::probes(const std::string& prefix, bool write) {
  using M = RedisProbe::Mode;
  // ".invalid" (RFC 2606) is never a policy domain nor a host-id reportd writes; 1970-01-01
  // is long expired.
  const std::string probe = "mta-sts-check-redis.invalid";
  const std::string day = "1970-01-01";
  const std::string base = base_of(prefix);
  const std::string seq = seq_name(base, probe), dk = day_name(base, day), hk = counts_name(base, day, probe);
  std::vector<RedisProbe> out{{M::direct, {"SMEMBERS", dk}}, {M::direct, {"HLEN", hk}}, {M::direct, {"HGETALL", hk}}};
  if (!write) return out;
  // The apply script with a batch of no entries: it reads the probe host's batch number and
  // stops there, writing nothing; then what it runs for a real batch, queued only.
  out.push_back({M::direct, {"EVAL", std::string(kApplyScript), "1", seq, "1", "1", "1", "1", "0"}});
  out.push_back({M::direct, {"TYPE", seq}});
  out.push_back({M::direct, {"GET", seq}});
  out.push_back({M::queued, {"SET", seq, "1", "EX", "1"}});
  out.push_back({M::queued, {"DEL", hk}});
  out.push_back({M::queued, {"HGET", hk, "np"}});
  out.push_back({M::queued, {"HEXISTS", hk, "np"}});
  out.push_back({M::queued, {"HSET", hk, "np", "0"}});
  out.push_back({M::queued, {"HINCRBY", hk, "np", "1"}});
  out.push_back({M::queued, {"SADD", dk, probe}});
  out.push_back({M::queued, {"EXPIREAT", hk, "1"}});
  return out;
}

std::vector<std::string> ReportStore::domains(std::string_view day) {
  std::vector<std::string> out;
  if (!tlsrpt::day_start(day)) return out;
  const std::string key = day_key(day);
  const Reply r = pool_.lease()->command({"SMEMBERS", key});
  std::size_t skipped = 0;
  for (std::size_t i = 0; i < r.size(); ++i) {
    const auto v = r.at(i);
    if (v.is_string() && valid_domain(v.str())) {
      out.emplace_back(v.str());
    } else {
      ++skipped;
    }
  }
  if (skipped > 0) {
    const std::string n = std::to_string(skipped);
    log::warning("TLS-RPT aggregates: invalid domain names skipped", {{"key", key}, {"skipped", n}});
  }
  std::sort(out.begin(), out.end());
  return out;
}

ReportStore::DayCounts ReportStore::read(std::string_view day, std::string_view domain) {
  DayCounts out;
  if (!tlsrpt::day_start(day) || !valid_domain(domain)) return out;
  const std::string key = counts_key(day, domain);
  auto conn = pool_.lease();
  // A hash larger than the caps allow was not written by reportd: refuse it rather than read
  // it into memory.
  const std::uint64_t bound =
      std::max<std::uint64_t>(4 * limits_.max_policies * (limits_.max_details + 8) + 16, 100000);
  const Reply len = conn->command({"HLEN", key});
  if (len.is_integer() && static_cast<std::uint64_t>(std::max<std::int64_t>(len.integer(), 0)) > bound) {
    const std::string n = std::to_string(len.integer());
    log::error("TLS-RPT aggregates: hash larger than any batch could make it, not read", {{"key", key}, {"fields", n}});
    out.skipped_fields = static_cast<std::uint64_t>(len.integer());
    return out;
  }
  const Reply h = conn->command({"HGETALL", key});

  struct Acc {
    std::optional<tlsrpt::AppliedPolicy> policy;
    std::uint64_t success = 0, failure = 0, dropped = 0;
    std::map<tlsrpt::FailureDetail, std::uint64_t> details;
  };
  std::map<std::string, Acc> acc;  // by policy key
  std::string first_reason;
  auto skip = [&](std::string reason) {
    if (out.skipped_fields++ == 0) first_reason = std::move(reason);
  };
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    const auto fv = h.at(i), vv = h.at(i + 1);
    if (!fv.is_string() || !vv.is_string()) {
      skip("not a string");
      continue;
    }
    const std::string_view field = fv.str(), value = vv.str();
    if (field == "np") continue;  // the script's own bookkeeping
    if (field == "xs" || field == "xf") {
      const auto c = tlsrpt::parse_count(value);
      if (!c) {
        skip("count not a number");
        continue;
      }
      out.dropped_policy_sessions += *c;
      continue;
    }
    if (field.size() < 2 + 16 || field[1] != ':' || !is_policy_key(field.substr(2, 16))) {
      skip("unknown field");
      continue;
    }
    const char kind = field[0];
    const std::string pk(field.substr(2, 16));
    const std::string_view rest = field.substr(18);
    if (kind == 'p' && rest.empty()) {
      std::string why;
      auto p = tlsrpt::decode_policy(value, &why);
      if (!p || p->key() != pk) {
        skip(p ? "policy does not match its key" : "policy: " + why);
        continue;
      }
      acc[pk].policy = std::move(*p);
      continue;
    }
    const auto c = tlsrpt::parse_count(value);
    if (!c) {
      skip("count not a number");
      continue;
    }
    if (rest.empty() && (kind == 's' || kind == 'f' || kind == 'x' || kind == 'n')) {
      if (kind == 's') acc[pk].success = *c;
      if (kind == 'f') acc[pk].failure = *c;
      if (kind == 'x') acc[pk].dropped = *c;
      continue;
    }
    if (kind == 'd' && rest.size() > 1 && rest[0] == ':') {
      std::string why;
      auto d = tlsrpt::decode_detail(rest.substr(1), &why);
      if (!d || *c == 0) {
        skip(d ? "detail count 0" : "detail: " + why);
        continue;
      }
      auto& a = acc[pk];
      if (a.details.size() >= limits_.max_details && !a.details.count(*d)) {
        skip("details over the cap");
        continue;
      }
      a.details[std::move(*d)] = *c;
      continue;
    }
    skip("unknown field");
  }
  for (auto& [pk, a] : acc) {
    if (!a.policy) {
      if (a.success || a.failure || !a.details.empty()) skip("counts without a policy");
      continue;
    }
    if (out.policies.size() >= limits_.max_policies) {
      skip("policies over the cap");
      continue;
    }
    std::uint64_t detailed = 0;
    for (const auto& [d, n] : a.details) detailed += n;
    tlsrpt::PolicyCounts pc;
    pc.policy = std::move(*a.policy);
    pc.counts.success = a.success;
    pc.counts.failure = a.failure;
    if (detailed > a.failure) {
      // Written by someone else: the summary stands, the details that contradict it do not.
      skip("failure details exceed the failure count");
      out.dropped_details += a.failure;
    } else {
      pc.counts.details = std::move(a.details);
      out.dropped_details += a.dropped;
    }
    out.policies.push_back(std::move(pc));
  }
  if (out.skipped_fields > 0) {
    const std::string n = std::to_string(out.skipped_fields);
    log::warning("TLS-RPT aggregates: invalid fields skipped",
                 {{"key", key}, {"skipped", n}, {"first", first_reason}});
  }
  return out;
}

}  // namespace mtasts
