// mta-sts-ctl's offline subcommands and output formatting. Everything shown to the operator
// that came from the network or a file is escaped: a hostile policy must not be able to
// write terminal control sequences or forge lines of output.
#include "ctl/commands.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <set>

#include "common/util/json.hpp"
#include "common/sts/mx_pattern.hpp"
#include "common/sts/policy.hpp"
#include "common/sts/txt_record.hpp"

namespace mtasts::ctl {
namespace {

std::string diag_text(const Diagnostic& d) {
  if (d.line == 0) return d.message;
  return "line " + std::to_string(d.line) + ": " + d.message;
}

std::vector<std::string> diag_texts(const std::vector<Diagnostic>& ds) {
  std::vector<std::string> v;
  v.reserve(ds.size());
  for (const auto& d : ds) v.push_back(diag_text(d));
  return v;
}

std::vector<std::string> mx_texts(const Policy& p) {
  std::vector<std::string> v;
  v.reserve(p.mx.size());
  for (const auto& m : p.mx) v.push_back(m.str());
  return v;
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

std::string plural(std::size_t n, std::string_view word) {
  return std::to_string(n) + " " + std::string(word) + (n == 1 ? "" : "s");
}

std::string when(SysTime t, SysTime now) {
  if (t.time_since_epoch().count() == 0) return "-";
  auto d = t - now;
  std::string rel = d.count() >= 0 ? "in " + format_duration(d) : format_duration(-d) + " ago";
  return format_time(t) + " (" + rel + ")";
}

std::string json_time(SysTime t) { return json::quote(format_time(t)); }

}  // namespace

std::string terminal_safe(std::string_view s, std::size_t max) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '\\') {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string utf8_safe(std::string_view s) {
  static constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    std::size_t n = 0;  // continuation bytes
    std::uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1fu; }
    else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0fu; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07u; }
    bool ok = n > 0 && i + n < s.size();
    for (std::size_t k = 1; ok && k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xc0u) == 0x80u;
      cp = (cp << 6) | (cc & 0x3fu);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8 (RFC 3629).
    if (ok && ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
               (cp >= 0xd800 && cp <= 0xdfff))) {
      ok = false;
    }
    if (ok) {
      out.append(s.substr(i, n + 1));
      i += n + 1;
    } else {
      out += kReplacement;
      ++i;
    }
  }
  return out;
}

std::string format_time(SysTime t) { return iso_time(t); }

std::string format_duration(Seconds d) {
  if (d.count() < 0) return "-" + format_duration(-d);
  long long s = d.count();
  const long long days = s / 86400, hours = (s % 86400) / 3600, mins = (s % 3600) / 60;
  s %= 60;
  std::string out;
  // Two most significant units are enough to read at a glance.
  if (days) out = std::to_string(days) + "d" + (hours ? std::to_string(hours) + "h" : "");
  else if (hours) out = std::to_string(hours) + "h" + (mins ? std::to_string(mins) + "m" : "");
  else if (mins) out = std::to_string(mins) + "m" + (s ? std::to_string(s) + "s" : "");
  else out = std::to_string(s) + "s";
  return out;
}

Output lint(std::string_view text, std::string_view source, bool json, bool truncated) {
  const std::string name = source == "-" ? std::string("<stdin>") : terminal_safe(source);
  PolicyParseResult r;
  if (truncated) {
    r.errors.push_back({0, "file is larger than " + std::to_string(kMaxPolicyBytes) +
                               " bytes (fetchers refuse such a policy)"});
  } else {
    r = parse_policy(text);
  }
  const bool valid = r.errors.empty() && r.policy.has_value();
  Output o;
  o.code = valid ? kExitOk : kExitNo;
  if (json) {
    json::Object obj;
    obj.boolean("valid", valid).strings("errors", diag_texts(r.errors)).strings("warnings", diag_texts(r.warnings));
    if (valid) {
      obj.str("mode", to_string(r.policy->mode))
          .num("max_age", r.policy->max_age.count())
          .strings("mx", mx_texts(*r.policy));
    }
    o.out = obj.done() + "\n";
    return o;
  }
  // Errors and warnings in file order, the way a compiler prints them.
  std::vector<std::pair<const Diagnostic*, const char*>> all;
  for (const auto& d : r.errors) all.emplace_back(&d, "error");
  for (const auto& d : r.warnings) all.emplace_back(&d, "warning");
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    // Whole-file diagnostics (line 0) come last: they are conclusions.
    auto key = [](const Diagnostic* d) { return d->line == 0 ? SIZE_MAX : d->line; };
    return key(a.first) < key(b.first);
  });
  for (const auto& [d, kind] : all) {
    o.out += name;
    if (d->line) o.out += ":" + std::to_string(d->line);
    o.out += ": " + std::string(kind) + ": " + d->message + "\n";
  }
  if (valid) {
    const Policy& p = *r.policy;
    o.out += name + ": valid: mode=" + to_string(p.mode) + " max_age=" + std::to_string(p.max_age.count());
    if (!p.mx.empty()) o.out += " mx=" + join(mx_texts(p), ",");
    if (!r.warnings.empty()) o.out += " (" + plural(r.warnings.size(), "warning") + ")";
    o.out += "\n";
  } else {
    o.out += name + ": invalid (" + plural(r.errors.size(), "error") + ", " +
             plural(r.warnings.size(), "warning") + ")\n";
  }
  return o;
}

Output check_txt(const std::vector<std::string>& records, bool json) {
  const TxtResult r = parse_sts_txt_records(records);
  const bool valid = r.status == TxtStatus::policy;
  Output o;
  o.code = valid ? kExitOk : kExitNo;
  if (json) {
    json::Object obj;
    obj.boolean("valid", valid).str("status", to_string(r.status)).strings("errors", r.errors).strings("warnings", r.warnings);
    if (valid) obj.str("id", r.id);
    o.out = obj.done() + "\n";
    return o;
  }
  for (const auto& e : r.errors) o.out += "error: " + e + "\n";
  for (const auto& w : r.warnings) o.out += "warning: " + w + "\n";
  switch (r.status) {
    case TxtStatus::policy: o.out += "policy id " + r.id + "\n"; break;
    case TxtStatus::no_policy: o.out += "no policy: no record begins with \"v=STSv1;\"\n"; break;
    case TxtStatus::invalid: o.out += "no policy: the STSv1 record set is invalid\n"; break;
  }
  return o;
}

Output match(std::string_view pattern, std::string_view host) {
  Output o;
  std::string why;
  auto p = MxPattern::parse(pattern, &why);
  if (!p) {
    o.code = kExitUsage;
    o.err = "mta-sts-ctl: invalid mx pattern \"" + terminal_safe(pattern) + "\": " + why + "\n";
    return o;
  }
  const bool m = p->matches(host);
  o.code = m ? kExitOk : kExitNo;
  o.out = std::string(m ? "match" : "no match") + ": " + p->str() + " " + terminal_safe(host) + "\n";
  return o;
}

DomainList parse_domain_list(std::string_view text) {
  DomainList out;
  std::set<std::string> seen;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
    while (!line.empty() && ws(line.front())) line.remove_prefix(1);
    while (!line.empty() && ws(line.back())) line.remove_suffix(1);
    if (line.empty()) continue;
    DomainParse p = Domain::parse(line);
    if (!p.domain) {
      out.bad.push_back({line_no, terminal_safe(line, 80),
                         p.address_literal ? "an address literal has no MTA-STS policy" : p.error});
      continue;
    }
    if (seen.insert(p.domain->str()).second) out.domains.push_back(std::move(*p.domain));
  }
  return out;
}

std::string render_entry(const Domain& d, const CacheEntry& e, SysTime now, bool json) {
  const Verdict v = verdict(e, now);
  if (json) {
    json::Object obj;
    obj.str("domain", d.str()).str("verdict", to_string(v));
    if (e.policy) {
      const StoredPolicy& sp = *e.policy;
      json::Object p;
      p.str("id", utf8_safe(sp.id))
          .str("mode", to_string(sp.policy.mode))
          .num("max_age", sp.policy.max_age.count())
          .strings("mx", mx_texts(sp.policy))
          .raw("fetched_at", json_time(sp.fetched_at))
          .raw("expires_at", json_time(sp.expires_at))
          .boolean("usable", policy_usable(e, now))
          .str("raw", utf8_safe(sp.raw));
      obj.raw("policy", p.done());
    } else {
      obj.null("policy");
    }
    if (e.no_policy_until) obj.raw("no_policy_until", json_time(*e.no_policy_until));
    else obj.null("no_policy_until");
    if (e.failure) {
      const FailureState& f = *e.failure;
      json::Object fo;
      fo.str("kind", to_string(f.kind))
          .str("error", utf8_safe(f.error))
          .str("txt_id", utf8_safe(f.txt_id))
          .num("count", f.count)
          .raw("first_at", json_time(f.first_at))
          .raw("last_at", json_time(f.last_at))
          .raw("retry_after", json_time(f.retry_after));
      obj.raw("failure", fo.done());
    } else {
      obj.null("failure");
    }
    obj.raw("checked_at", json_time(e.checked_at)).raw("next_refresh", json_time(e.next_refresh));
    return obj.done() + "\n";
  }

  std::string o;
  auto row = [&o](std::string_view label, const std::string& value) {
    std::string l(label);
    l.resize(14, ' ');
    o += l + value + "\n";
  };
  row("domain", d.str());
  row("verdict", to_string(v));
  if (e.policy) {
    const StoredPolicy& sp = *e.policy;
    row("policy", std::string("mode=") + to_string(sp.policy.mode) + " max_age=" +
                      std::to_string(sp.policy.max_age.count()) + " id=" + terminal_safe(sp.id) +
                      (policy_usable(e, now) ? "" : " (expired)"));
    if (!sp.policy.mx.empty()) row("  mx", join(mx_texts(sp.policy), " "));
    row("  fetched", when(sp.fetched_at, now));
    row("  expires", when(sp.expires_at, now));
  } else {
    row("policy", "-");
  }
  if (e.no_policy_until) row("no policy", "until " + when(*e.no_policy_until, now));
  if (e.failure) {
    const FailureState& f = *e.failure;
    row("failure", std::string(to_string(f.kind)) + ": " + terminal_safe(f.error));
    row("  count", std::to_string(f.count) + " since " + when(f.first_at, now));
    if (!f.txt_id.empty()) row("  txt id", terminal_safe(f.txt_id));
    row("  retry after", when(f.retry_after, now));
  }
  row("checked", when(e.checked_at, now));
  row("next refresh", when(e.next_refresh, now));
  if (e.policy && !e.policy->raw.empty()) {
    o += "raw policy:\n";
    std::string_view raw = e.policy->raw;
    while (!raw.empty()) {
      auto nl = raw.find('\n');
      std::string_view line = raw.substr(0, nl);
      raw.remove_prefix(nl == std::string_view::npos ? raw.size() : nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      o += "  " + terminal_safe(line) + "\n";
    }
  }
  return o;
}

std::string render_list(const std::vector<ListRow>& rows, bool json) {
  if (json) {
    std::string arr = "[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const ListRow& r = rows[i];
      json::Object o;
      o.str("domain", utf8_safe(r.domain)).str("verdict", r.verdict);
      if (!r.mode.empty()) {
        o.str("mode", r.mode).str("id", utf8_safe(r.id)).raw("expires_at", json_time(r.expires_at));
      }
      if (i) arr += ",";
      arr += o.done();
    }
    arr += "]";
    return json::Object().num("count", static_cast<std::int64_t>(rows.size())).raw("domains", arr).done() + "\n";
  }
  std::string o;
  for (const ListRow& r : rows) {
    std::string line = terminal_safe(r.domain);
    line.resize(std::max<std::size_t>(line.size() + 1, 40), ' ');
    std::string v = r.verdict;
    v.resize(std::max<std::size_t>(v.size() + 1, 10), ' ');
    line += v;
    if (!r.mode.empty()) line += "id=" + terminal_safe(r.id) + " expires=" + format_time(r.expires_at);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    o += line + "\n";
  }
  return o;
}

}  // namespace mtasts::ctl
