// Cache entries: the versioned text codec stored in Redis, and the RFC 8461 freshness rules.
//
// Codec v1 is line-based "name=value\n" text, first line "v=1", last line "end=", so that
// `redis-cli GET` stays readable. Values are percent-escaped ('%', control bytes and DEL),
// which keeps any policy body (CRLF, NUL, anything) on one line. The decoder trusts nothing:
// every field is checked, unknown or repeated fields are errors, and a value cut anywhere
// (even at a line boundary) lacks its end line. Rolling upgrades: an entry of a newer codec
// version is read when its `reader` field says this version suffices (its unknown fields are
// then ignored), and is never overwritten by this version's fetcher (store.cpp). The version
// written and the `reader` it declares are compile-time constants (cache_entry.hpp): a test
// builds this file again as the next version to check both directions of an upgrade.
#include "common/sts/cache_entry.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>
#include <vector>

namespace mtasts {

const char* to_string(FailureKind k) noexcept {
  switch (k) {
    case FailureKind::dns: return "dns";
    case FailureKind::txt_invalid: return "txt-invalid";
    case FailureKind::fetch: return "fetch";
    case FailureKind::policy_invalid: return "policy-invalid";
  }
  return "fetch";
}

std::optional<FailureKind> failure_kind_from_string(std::string_view s) noexcept {
  if (s == "dns") return FailureKind::dns;
  if (s == "txt-invalid") return FailureKind::txt_invalid;
  if (s == "fetch") return FailureKind::fetch;
  if (s == "policy-invalid") return FailureKind::policy_invalid;
  return std::nullopt;
}

const char* to_string(Verdict v) noexcept {
  switch (v) {
    case Verdict::enforce: return "enforce";
    case Verdict::testing: return "testing";
    case Verdict::none: return "none";
    case Verdict::no_policy: return "no-policy";
    case Verdict::unknown: return "unknown";
  }
  return "unknown";
}

// ---- codec ----------------------------------------------------------------------------
namespace {

constexpr char kHex[] = "0123456789ABCDEF";
constexpr std::int64_t kMaxTime = 253402300799;  // 9999-12-31T23:59:59Z

bool needs_escape(unsigned char c) noexcept { return c == '%' || c < 0x20 || c == 0x7f; }

void put_escaped(std::string& out, std::string_view v) {
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (needs_escape(c)) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0x0f];
    } else {
      out += ch;
    }
  }
}

void field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out += '=';
  put_escaped(out, value);
  out += '\n';
}

void field(std::string& out, std::string_view name, std::int64_t value) {
  field(out, name, std::to_string(value));
}

std::int64_t unix_time(SysTime t) noexcept { return t.time_since_epoch().count(); }

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unescape(std::string_view in, std::string* out, std::string* why) {
  out->clear();
  out->reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c == '%') {
      if (i + 2 >= in.size()) {
        *why = "truncated %-escape";
        return false;
      }
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) {
        *why = "bad %-escape";
        return false;
      }
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c < 0x20 || c == 0x7f) {
      *why = "unescaped control byte";
      return false;
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
  return true;
}

template <class Int>
bool parse_int(std::string_view s, Int* v) {
  if (s.empty() || s.front() == '+') return false;
  const auto* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, *v);
  return ec == std::errc() && p == end;
}

// Decoder state: the fields of one entry, each seen at most once (except repeatable ones).
class Decoder {
 public:
  explicit Decoder(std::string_view bytes) : in_(bytes) {}

  DecodeResult run() {
    DecodeResult r;
    const bool lines_ok = read_lines();
    r.version = version_;
    if (!lines_ok) {
      // A newer version may have changed more than fields: say which version it was.
      const bool said = error_.find("unknown codec version") != std::string::npos;
      r.error = version_ > kCodecVersion && !said ? "unknown codec version " + std::to_string(version_) + ": " + error_
                                                  : error_;
      return r;
    }
    CacheEntry e;
    if (!build(&e)) {
      r.error = error_;
      return r;
    }
    if (std::string why = check_invariants(e); !why.empty()) {
      r.error = std::move(why);
      return r;
    }
    r.entry = std::move(e);
    return r;
  }

 private:
  struct Value {
    std::size_t line;
    std::string text;
  };

  bool fail(std::size_t line, const std::string& msg) {
    error_ = line ? "line " + std::to_string(line) + ": " + msg : msg;
    return false;
  }

  bool read_lines() {
    if (in_.empty()) return fail(0, "empty value");
    if (in_.back() != '\n') return fail(0, "truncated (no final newline)");
    std::size_t line_no = 0;
    std::size_t pos = 0;
    bool ended = false;
    while (pos < in_.size()) {
      const std::size_t nl = in_.find('\n', pos);  // exists: the value ends with '\n'
      const std::string_view line = in_.substr(pos, nl - pos);
      pos = nl + 1;
      ++line_no;
      const std::size_t eq = line.find('=');
      if (eq == std::string_view::npos) return fail(line_no, "not name=value");
      const std::string_view name = line.substr(0, eq);
      std::string value;
      std::string why;
      if (!unescape(line.substr(eq + 1), &value, &why)) return fail(line_no, why + " in " + std::string(name));
      if (line_no == 1) {
        if (name != "v") return fail(1, "no codec version");
        int version = 0;
        if (!parse_int(value, &version)) return fail(1, "bad codec version");
        if (version < 1) return fail(1, "unknown codec version " + std::to_string(version));
        version_ = version;
        continue;
      }
      // A newer writer's entry says which reader version it needs (`reader`, default: its own
      // version): when ours suffices, the fields we do not know are extensions we may ignore.
      // In an entry of our own version every field must be known: no fetcher writes others.
      if (version_ >= kReaderFieldSince && name == "reader") {
        if (reader_ != 0) return fail(line_no, "repeated field reader");
        if (!parse_int(value, &reader_) || reader_ < 1) return fail(line_no, "bad reader version");
        continue;
      }
      if (ended) return fail(line_no, "data after the end line");
      if (name == "end") {
        if (!value.empty()) return fail(line_no, "bad end line");
        ended = true;
        continue;
      }
      if (!known(name)) {
        if (version_ > kCodecVersion) continue;
        return fail(line_no, "unknown field " + std::string(name));
      }
      if (name == "policy.mx") {
        if (mx_.size() >= kMaxStoredMx) return fail(line_no, "too many policy.mx fields");
        mx_.push_back({line_no, std::move(value)});
        continue;
      }
      auto [it, fresh] = fields_.try_emplace(std::string(name), Value{line_no, std::move(value)});
      if (!fresh) return fail(line_no, "repeated field " + std::string(name));
    }
    if (!ended) return fail(0, "truncated (no end line)");
    const int needs = reader_ != 0 ? reader_ : version_;
    if (needs > kCodecVersion)
      return fail(1, "unknown codec version " + std::to_string(version_) + " (needs reader version " +
                         std::to_string(needs) + ", this reads " + std::to_string(kCodecVersion) + ")");
    return true;
  }

 public:
  int version() const noexcept { return version_; }

 private:

  static bool known(std::string_view n) {
    static constexpr std::string_view names[] = {
        "checked", "next", "nopolicy", "policy.mode", "policy.max_age", "policy.mx", "policy.id",
        "policy.fetched", "policy.expires", "policy.raw", "failure.kind", "failure.error",
        "failure.txt_id", "failure.first", "failure.last", "failure.retry", "failure.count"};
    return std::find(std::begin(names), std::end(names), n) != std::end(names);
  }

  bool has(const char* name) const { return fields_.count(name) != 0; }

  bool take_string(const char* name, std::string* out) {
    auto it = fields_.find(name);
    if (it == fields_.end()) return fail(0, std::string("missing field ") + name);
    *out = std::move(it->second.text);
    return true;
  }

  template <class Int>
  bool take_int(const char* name, Int* out, Int min = std::numeric_limits<Int>::min()) {
    auto it = fields_.find(name);
    if (it == fields_.end()) return fail(0, std::string("missing field ") + name);
    if (!parse_int(it->second.text, out) || *out < min)
      return fail(it->second.line, std::string("bad number in ") + name);
    return true;
  }

  // Times are bounded (epoch to year 9999) so that the rules' arithmetic cannot overflow.
  bool take_time(const char* name, SysTime* out) {
    std::int64_t v = 0;
    if (!take_int(name, &v, std::int64_t{0})) return false;
    if (v > kMaxTime) return fail(fields_.at(name).line, std::string("time out of range in ") + name);
    *out = SysTime{Seconds{v}};
    return true;
  }

  bool build(CacheEntry* e) {
    if (!take_time("checked", &e->checked_at) || !take_time("next", &e->next_refresh)) return false;
    if (has("nopolicy")) {
      SysTime t;
      if (!take_time("nopolicy", &t)) return false;
      e->no_policy_until = t;
    }
    const bool any_policy = !mx_.empty() || has("policy.mode") || has("policy.max_age") ||
                            has("policy.id") || has("policy.fetched") || has("policy.expires") ||
                            has("policy.raw");
    if (any_policy) {
      StoredPolicy sp;
      std::string mode;
      if (!take_string("policy.mode", &mode)) return false;
      auto m = mode_from_string(mode);
      if (!m) return fail(fields_.at("policy.mode").line, "bad policy mode");
      sp.policy.mode = *m;
      std::int64_t max_age = 0;
      if (!take_int("policy.max_age", &max_age, std::int64_t{0})) return false;
      if (max_age > kMaxTime) return fail(fields_.at("policy.max_age").line, "max_age out of range");
      sp.policy.max_age = Seconds{max_age};
      for (auto& v : mx_) {
        std::string why;
        auto p = MxPattern::parse(v.text, &why);
        if (!p || p->str() != v.text) return fail(v.line, "bad mx pattern" + (why.empty() ? "" : ": " + why));
        sp.policy.mx.push_back(std::move(*p));
      }
      if (!take_string("policy.id", &sp.id) || !take_string("policy.raw", &sp.raw) ||
          !take_time("policy.fetched", &sp.fetched_at) || !take_time("policy.expires", &sp.expires_at))
        return false;
      e->policy = std::move(sp);
    }
    const bool any_failure = has("failure.kind") || has("failure.error") || has("failure.txt_id") ||
                             has("failure.first") || has("failure.last") || has("failure.retry") ||
                             has("failure.count");
    if (any_failure) {
      FailureState f;
      std::string kind;
      if (!take_string("failure.kind", &kind)) return false;
      auto k = failure_kind_from_string(kind);
      if (!k) return fail(fields_.at("failure.kind").line, "bad failure kind");
      f.kind = *k;
      if (!take_string("failure.error", &f.error) || !take_string("failure.txt_id", &f.txt_id) ||
          !take_time("failure.first", &f.first_at) || !take_time("failure.last", &f.last_at) ||
          !take_time("failure.retry", &f.retry_after) || !take_int("failure.count", &f.count))
        return false;
      e->failure = std::move(f);
    }
    return true;
  }

  std::string_view in_;
  std::string error_;
  int version_ = 0;  // the writer's codec version (first line)
  int reader_ = 0;   // the reader version a newer entry needs; 0: not given
  std::map<std::string, Value, std::less<>> fields_;
  std::vector<Value> mx_;
};

}  // namespace

std::string encode(const CacheEntry& e) {
  std::string out;
  out.reserve(256 + (e.policy ? e.policy->raw.size() + e.policy->raw.size() / 8 : 0));
  field(out, "v", kCodecVersion);
  // Today's readers read what they know of this entry when the writer says they may.
  if (kCodecReader < kCodecVersion) field(out, "reader", kCodecReader);
  field(out, "checked", unix_time(e.checked_at));
  field(out, "next", unix_time(e.next_refresh));
  if (e.no_policy_until) field(out, "nopolicy", unix_time(*e.no_policy_until));
  if (e.policy) {
    const StoredPolicy& p = *e.policy;
    field(out, "policy.mode", to_string(p.policy.mode));
    field(out, "policy.max_age", p.policy.max_age.count());
    for (const auto& mx : p.policy.mx) field(out, "policy.mx", mx.str());
    field(out, "policy.id", p.id);
    field(out, "policy.fetched", unix_time(p.fetched_at));
    field(out, "policy.expires", unix_time(p.expires_at));
    field(out, "policy.raw", p.raw);
  }
  if (e.failure) {
    const FailureState& f = *e.failure;
    field(out, "failure.kind", to_string(f.kind));
    field(out, "failure.error", f.error);
    field(out, "failure.txt_id", f.txt_id);
    field(out, "failure.first", unix_time(f.first_at));
    field(out, "failure.last", unix_time(f.last_at));
    field(out, "failure.retry", unix_time(f.retry_after));
    field(out, "failure.count", std::int64_t{f.count});
  }
  out += "end=\n";
  return out;
}

DecodeResult decode(std::string_view bytes) {
  // Bad bytes are results, never exceptions; only memory exhaustion may escape.
  if (bytes.size() > kMaxEncodedBytes) {
    DecodeResult r;
    r.error = "entry is " + std::to_string(bytes.size()) + " bytes, more than the limit of " +
              std::to_string(kMaxEncodedBytes);
    return r;
  }
  return Decoder(bytes).run();
}

bool valid_policy_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 32) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  });
}

std::string check_invariants(const CacheEntry& e) {
  if (e.policy) {
    const StoredPolicy& p = *e.policy;
    if (!valid_policy_id(p.id)) return "policy.id is not 1 to 32 letters and digits";
    if (p.policy.mode != Mode::none && p.policy.mx.empty()) return "policy.mode enforce or testing without policy.mx";
    if (p.policy.mx.size() > kMaxStoredMx) return "too many policy.mx patterns";
    if (p.policy.max_age < Seconds{0} || p.policy.max_age > kMaxAgeLimit) return "policy.max_age out of range";
    if (p.raw.size() > kMaxPolicyBytes) return "policy.raw longer than a policy file may be";
    if (p.expires_at < p.fetched_at + p.policy.max_age) return "policy.expires before policy.fetched + max_age";
  }
  if (e.failure) {
    const FailureState& f = *e.failure;
    if (!f.txt_id.empty() && !valid_policy_id(f.txt_id)) return "failure.txt_id is not 1 to 32 letters and digits";
    if (f.count == 0) return "failure.count is 0";
    if (f.first_at > f.last_at || f.last_at > f.retry_after) return "failure times out of order";
    if (f.error.size() > kMaxFailureErrorBytes) return "failure.error too long";
  }
  return {};
}

// ---- freshness rules --------------------------------------------------------------------
bool policy_usable(const CacheEntry& e, SysTime now) noexcept {
  return e.policy && now < e.policy->expires_at;
}

Verdict verdict(const CacheEntry& e, SysTime now) noexcept {
  if (policy_usable(e, now)) {
    switch (e.policy->policy.mode) {
      case Mode::enforce: return Verdict::enforce;
      case Mode::testing: return Verdict::testing;
      case Mode::none: return Verdict::none;
    }
  }
  if (e.no_policy_until && now < *e.no_policy_until) return Verdict::no_policy;
  // `max_age: 0` (or a few seconds): the owner allows the policy for the fetch's own
  // decision only, and the fleet decides later, from the cache. Known, but nothing cacheable:
  // as if no policy (not "unknown", which could hold mail under on-unknown=tempfail at every
  // lookup until the next check, an hour away: see next_refresh_time).
  if (e.policy && short_lived(*e.policy)) return Verdict::no_policy;
  // RFC 8461 section 5.1: discovery failed and nothing valid is cached: deliver as if the
  // domain had no policy.
  if (e.failure) return Verdict::no_policy;
  return Verdict::unknown;
}

bool may_retry(const CacheEntry& e, SysTime now) noexcept {
  return !e.failure || now >= e.failure->retry_after;
}

bool may_retry(const CacheEntry& e, SysTime now, std::string_view txt_id) noexcept {
  if (may_retry(e, now)) return true;
  // The 5-minute rule is per (domain, id): a new id is a new policy and may be fetched at once.
  return !txt_id.empty() && txt_id != e.failure->txt_id;
}

Seconds failure_backoff(std::uint32_t consecutive, const RefreshRules& r) noexcept {
  const Seconds base = std::max(r.min_backoff, kMinFailureBackoff);
  Seconds d = base;
  for (std::uint32_t i = 1; i < consecutive && d < r.max_backoff; ++i) d *= 2;
  d = std::min(d, r.max_backoff);
  return std::max(d, kMinFailureBackoff);
}

SysTime next_refresh_time(const CacheEntry& e, SysTime now, const RefreshRules& r) noexcept {
  std::optional<SysTime> next;
  auto consider = [&next](SysTime t) { next = next ? std::min(*next, t) : t; };
  if (e.policy) {
    const StoredPolicy& p = *e.policy;
    consider(p.fetched_at + r.refresh_interval);
    if (short_lived(p)) {
      // Expired before any recheck could confirm it: every check would be an HTTPS fetch, so
      // the domain is scheduled like a negative entry instead of every kMinRecheck forever.
      consider(e.checked_at + r.negative_ttl);
    } else {
      // Refresh ahead of expiry, but never so early that a short max_age is refreshed at once.
      const Seconds margin = std::min(r.expiry_margin, p.policy.max_age / 2);
      consider(p.expires_at - margin);
    }
  }
  if (e.no_policy_until) consider(*e.no_policy_until);
  SysTime t = next.value_or(now);
  // A policy with max_age 0 (or a tiny one) would otherwise be due again at once, forever.
  t = std::max(t, e.checked_at + kMinRecheck);
  if (e.failure) t = std::max(t, e.failure->retry_after);
  return t;
}

bool refresh_due(const CacheEntry& e, SysTime now, const RefreshRules& r) noexcept {
  return now >= next_refresh_time(e, now, r);
}

Seconds redis_ttl(const CacheEntry& e, SysTime now, Seconds retention) noexcept {
  SysTime last = now;
  if (e.policy) last = std::max(last, e.policy->expires_at);
  if (e.no_policy_until) last = std::max(last, *e.no_policy_until);
  if (e.failure) last = std::max(last, e.failure->retry_after);
  last = std::max(last, e.next_refresh);
  const Seconds ttl = (last - now) + std::max(retention, Seconds{0});
  return std::max(ttl, Seconds{1});
}

}  // namespace mtasts
