// Decisions, header text and message-level rules; see decision.hpp.
#include "milter/decision.hpp"

#include <algorithm>
#include <cctype>

namespace mtasts::milter {

namespace {

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return lower(x) == lower(y);
         });
}

bool is_wsp(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_wsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_wsp(s.back())) s.remove_suffix(1);
  return s;
}

Action on_failure(OnFailure f) { return f == OnFailure::tempfail ? Action::tempfail : Action::pass; }

// Header folding (CR, LF) becomes plain white space; RFC 5322 comments outside quoted strings
// are dropped. Quoted strings are kept with their quotes and escapes for the next step.
std::string unfold_uncomment(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c == '\r' || c == '\n') continue;
    if (quoted) {
      out += c;
      if (c == '\\' && i + 1 < v.size()) out += v[++i];
      else if (c == '"') quoted = false;
      continue;
    }
    if (depth > 0) {
      if (c == '\\') ++i;
      else if (c == '(') ++depth;
      else if (c == ')') --depth;
      if (depth == 0) out += ' ';
      continue;
    }
    if (c == '(') {
      depth = 1;
    } else {
      if (c == '"') quoted = true;
      out += c;
    }
  }
  return out;
}

// Splits "a; b=c; d=\"e;f\"" on semicolons outside quoted strings.
std::vector<std::string_view> split_params(std::string_view s) {
  std::vector<std::string_view> parts;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (quoted) {
      if (s[i] == '\\') ++i;
      else if (s[i] == '"') quoted = false;
    } else if (s[i] == '"') {
      quoted = true;
    } else if (s[i] == ';') {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(s.substr(start));
  return parts;
}

std::string unquote(std::string_view v) {
  v = trim(v);
  if (v.size() < 2 || v.front() != '"' || v.back() != '"') return std::string(v);
  std::string out;
  for (std::size_t i = 1; i + 1 < v.size(); ++i) {
    if (v[i] == '\\' && i + 2 < v.size()) ++i;
    out += v[i];
  }
  return out;
}

std::string join(const std::vector<std::string>& items, char sep) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

}  // namespace

const char* to_string(Status s) noexcept {
  switch (s) {
    case Status::enforce: return "enforce";
    case Status::testing: return "testing";
    case Status::none: return "none";
    case Status::no_policy: return "no-policy";
    case Status::unknown: return "unknown";
    case Status::error: return "error";
  }
  return "?";
}

const char* to_string(Action a) noexcept {
  switch (a) {
    case Action::tag: return "tag";
    case Action::pass: return "pass";
    case Action::tempfail: return "tempfail";
  }
  return "?";
}

Decision decide(const Domain& d, const LookupResult& r, SysTime now, const DecisionOptions& o) {
  Decision dec;
  dec.domain = d.str();
  dec.source = r.waited ? "redis+wait" : to_string(r.source);
  if (r.failed) {
    dec.status = Status::error;
    dec.reason = "redis-error";
    dec.action = on_failure(o.on_redis_error);
    return dec;
  }
  if (!r.entry) {
    dec.status = Status::unknown;
    dec.reason = "not-cached";
    dec.action = on_failure(o.on_unknown);
    return dec;
  }
  const CacheEntry& e = *r.entry;
  switch (verdict(e, now)) {
    case Verdict::enforce:
    case Verdict::testing: {
      const StoredPolicy& p = *e.policy;
      dec.status = p.policy.mode == Mode::enforce ? Status::enforce : Status::testing;
      dec.action = Action::tag;
      dec.reason = e.failure ? "policy-refresh-failing" : "policy";
      dec.policy_id = p.id;
      for (const auto& m : p.policy.mx) dec.mx.push_back(m.str());
      return dec;
    }
    case Verdict::none:
      dec.status = Status::none;
      dec.action = Action::pass;
      dec.reason = "mode-none";
      if (e.policy) dec.policy_id = e.policy->id;
      return dec;
    case Verdict::no_policy:
      dec.status = Status::no_policy;
      dec.action = Action::pass;
      // RFC 8461 section 5.1: a domain whose policy cannot be fetched, with nothing usable
      // cached, is delivered to as if it had no policy.
      if (e.no_policy_until && now < *e.no_policy_until) dec.reason = "no-policy";
      else if (e.policy && e.policy->policy.max_age.count() == 0) dec.reason = "max-age-0";
      else if (e.policy && short_lived(*e.policy)) dec.reason = "max-age-short";
      else dec.reason = "discovery-failing";
      return dec;
    case Verdict::unknown:
      break;
  }
  dec.status = Status::unknown;
  dec.reason = e.policy ? "policy-expired" : "not-refreshed";
  dec.action = on_failure(o.on_unknown);
  return dec;
}

std::string header_value(const Decision& d, std::string_view header_name) {
  std::string head = d.domain + "; mode=" + to_string(d.status) + "; id=" + d.policy_id + "; mx=";
  // The patterns that fit in kMaxHeaderMxBytes (separators included), in policy order.
  std::size_t n = 0;
  std::size_t mx_bytes = 0;
  while (n < d.mx.size() && mx_bytes + (n > 0 ? 1 : 0) + d.mx[n].size() <= kMaxHeaderMxBytes) {
    mx_bytes += (n > 0 ? 1 : 0) + d.mx[n].size();
    ++n;
  }
  const std::string tail = n < d.mx.size() ? "; mx-truncated=" + std::to_string(d.mx.size() - n) : "";
  // RFC 5322 section 2.1.1: lines must not exceed 998 octets. "Name: " prefixes the first.
  constexpr std::size_t kFoldAt = 900;
  if (header_name.size() + 2 + head.size() + mx_bytes + tail.size() <= 998) {
    std::string out = head;
    for (std::size_t i = 0; i < n; ++i) {
      if (i > 0) out += ',';
      out += d.mx[i];
    }
    return out + tail;
  }
  std::string out = head;
  std::size_t line = header_name.size() + 2 + head.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0) {
      out += ',';
      ++line;
      if (line + d.mx[i].size() > kFoldAt) {
        out += "\n\t";
        line = 1;
      }
    }
    out += d.mx[i];
    line += d.mx[i].size();
  }
  if (!tail.empty()) {
    if (line + tail.size() > kFoldAt) out += "\n\t";
    out += tail;
  }
  return out;
}

namespace {
// Printable ASCII (no SP) without the field's separators ';' and ','.
bool safe_token(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f && c != ';' && c != ',';
  });
}
}  // namespace

bool safe_for_header(const Decision& d) {
  if (!safe_token(d.domain) || !safe_token(d.policy_id)) return false;
  return std::all_of(d.mx.begin(), d.mx.end(), [](const std::string& m) { return safe_token(m); });
}

bool is_tls_required_no(std::string_view value) {
  return iequals(trim(unfold_uncomment(value)), "no");
}

bool is_tlsrpt_report(std::string_view content_type) {
  const std::string ct = unfold_uncomment(content_type);
  const auto params = split_params(ct);
  if (params.empty()) return false;
  // "multipart / report" with white space around the slash is tolerated, as MIME parsers do.
  std::string type;
  for (char c : params[0])
    if (!is_wsp(c)) type += c;
  if (!iequals(type, "multipart/report")) return false;
  for (std::size_t i = 1; i < params.size(); ++i) {
    const std::string_view p = params[i];
    const auto eq = p.find('=');
    if (eq == std::string_view::npos) continue;
    if (!iequals(trim(p.substr(0, eq)), "report-type")) continue;
    return iequals(unquote(p.substr(eq + 1)), "tlsrpt");
  }
  return false;
}

// ---- Message ------------------------------------------------------------------------------

const Decision* Message::find(const Domain& d) const {
  for (const auto& dec : decisions_)
    if (dec.domain == d.str()) return &dec;
  return nullptr;
}

void Message::accept(Decision d) { decisions_.push_back(std::move(d)); }

void Message::deferred(const Decision& d) {
  deferred_.push_back(d.domain + ":" + to_string(d.status) + ":" + d.reason);
}

void Message::skipped(std::string_view reason) {
  std::string r;
  for (char c : reason) r += c == ' ' ? '-' : c;
  skipped_.push_back(std::move(r));
}

void Message::header(std::string_view name, std::string_view value) {
  if (iequals(name, opts_.header_name)) {
    ++own_fields_;
  } else if (iequals(name, "TLS-Required")) {
    if (is_tls_required_no(value)) tls_required_no_ = true;
  } else if (iequals(name, "Content-Type")) {
    // MIME readers use the first Content-Type field; so do we.
    if (!content_type_seen_) tlsrpt_ = is_tlsrpt_report(value);
    content_type_seen_ = true;
  }
}

HeaderPlan Message::plan() const {
  HeaderPlan p;
  // Highest index first: deleting occurrence n never renumbers occurrences below n.
  for (int i = own_fields_; i >= 1; --i) p.delete_indices.push_back(i);
  if (tlsrpt_) {
    p.suppressed = "tlsrpt-report";
  } else if (tls_required_no_ && opts_.honor_tls_required) {
    p.suppressed = "tls-required-no";
  } else {
    for (const auto& d : decisions_) {
      if (d.action != Action::tag) continue;
      // Defence in depth: decoded entries are validated already, but a header line is where
      // an injected CR LF would do its harm, so nothing unchecked is written there.
      if (!safe_for_header(d)) {
        p.refused.push_back(d.domain);
        continue;
      }
      p.add.push_back({opts_.header_name, header_value(d, opts_.header_name)});
    }
  }
  return p;
}

Message::LogFields Message::log_fields(const HeaderPlan& p) const {
  LogFields f;
  std::vector<std::string> tagged, decisions;
  if (p.suppressed.empty())
    for (const auto& d : decisions_)
      if (d.action == Action::tag && std::find(p.refused.begin(), p.refused.end(), d.domain) == p.refused.end())
        tagged.push_back(d.domain);
  for (const auto& d : decisions_)
    decisions.push_back(d.domain + ":" + to_string(d.status) + ":" + d.reason + ":" + d.source);
  f.tagged = join(tagged, ' ');
  f.decisions = join(decisions, ' ');
  f.deferred = join(deferred_, ' ');
  f.skipped = join(skipped_, ' ');
  f.removed = std::to_string(p.delete_indices.size());
  f.suppressed = p.suppressed;
  for (const auto& r : p.refused) f.suppressed += (f.suppressed.empty() ? "" : " ") + ("unsafe-value:" + r);
  return f;
}

}  // namespace mtasts::milter
