// `mta-sts-ctl cache ...` over PolicyStore, which alone knows the key names.
#include "ctl/cache.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <string>

#include "common/util/json.hpp"
#include "common/fleet/redis.hpp"

namespace mtasts::ctl {
namespace {

Output redis_failure(const std::exception& e) {
  Output o;
  o.code = kExitFailed;
  // e.what() begins with "redis: " already.
  o.err = std::string("mta-sts-ctl: ") + e.what() + "\n";
  return o;
}

Output bad_domain(std::string_view text, const DomainParse& p) {
  Output o;
  o.code = kExitUsage;
  o.err = "mta-sts-ctl: \"" + terminal_safe(text) + "\" is not a domain: " +
          (p.address_literal ? "an address literal has no MTA-STS policy" : p.error) + "\n";
  return o;
}


}  // namespace

Output cache_show(PolicyStore& store, std::string_view domain, SysTime now, bool json) {
  DomainParse p = Domain::parse(domain);
  if (!p.domain) return bad_domain(domain, p);
  try {
    std::string decode_error;
    auto e = store.get(*p.domain, &decode_error);
    Output o;
    if (!e) {
      o.code = kExitNo;
      if (!decode_error.empty()) {
        o.err = "mta-sts-ctl: " + p.domain->str() + ": cached value cannot be decoded: " + terminal_safe(decode_error) + "\n";
      } else if (json) {
        o.out = json::Object().str("domain", p.domain->str()).null("verdict").done() + "\n";
      } else {
        o.out = p.domain->str() + ": not cached\n";
      }
      return o;
    }
    o.out = render_entry(*p.domain, *e, now, json);
    return o;
  } catch (const RedisError& e) {
    return redis_failure(e);
  }
}

Output cache_list(PolicyStore& store, std::size_t limit, SysTime now, bool json) {
  try {
    std::vector<std::string> names = store.list(limit);
    std::vector<ListRow> rows;
    rows.reserve(names.size());
    for (const std::string& name : names) {
      ListRow r;
      r.domain = name;
      DomainParse p = Domain::parse(name);
      if (!p.domain) {
        r.verdict = "invalid-name";
        rows.push_back(std::move(r));
        continue;
      }
      std::string decode_error;
      auto e = store.get(*p.domain, &decode_error);
      if (!e) {
        // Expired or dropped between SCAN and GET, or written by another schema.
        if (decode_error.empty()) continue;
        r.verdict = "undecodable";
      } else {
        r.verdict = to_string(verdict(*e, now));
        if (e->policy) {
          r.mode = to_string(e->policy->policy.mode);
          r.id = e->policy->id;
          r.expires_at = e->policy->expires_at;
        }
      }
      rows.push_back(std::move(r));
    }
    Output o;
    o.out = render_list(rows, json);
    if (names.size() >= limit) {
      o.err = "mta-sts-ctl: showing the first " + std::to_string(limit) + " domains (see --limit)\n";
    }
    return o;
  } catch (const RedisError& e) {
    return redis_failure(e);
  }
}

Output cache_drop(PolicyStore& store, std::string_view domain, bool json) {
  DomainParse p = Domain::parse(domain);
  if (!p.domain) return bad_domain(domain, p);
  try {
    // The drop mark moves either way: MTA hosts may hold a copy of a policy whose entry Redis
    // has lost (evicted, FLUSHALL), and they forget it all the same.
    const bool dropped = store.drop(*p.domain);
    Output o;
    o.code = dropped ? kExitOk : kExitNo;
    if (json) o.out = json::Object().str("domain", p.domain->str()).boolean("dropped", dropped).done() + "\n";
    else o.out = p.domain->str() + (dropped ? ": dropped\n" : ": not cached (copies held by MTA hosts are dropped)\n");
    return o;
  } catch (const RedisError& e) {
    return redis_failure(e);
  }
}

Output cache_warm(PolicyStore& store, std::string_view text, std::string_view source, SysTime now,
                  bool json) {
  const std::string name = source == "-" ? std::string("<stdin>") : std::string(source);
  DomainList list = parse_domain_list(text);
  Output o;
  for (const auto& b : list.bad) {
    o.err += name + ":" + std::to_string(b.line) + ": \"" + b.text + "\": " + b.error + "\n";
  }
  try {
    for (const Domain& d : list.domains) store.schedule(d, now);
  } catch (const RedisError& e) {
    return redis_failure(e);
  }
  o.code = list.bad.empty() ? kExitOk : kExitNo;
  if (json) {
    std::vector<std::string> bad;
    for (const auto& b : list.bad) bad.push_back("line " + std::to_string(b.line) + ": " + b.error);
    o.out = json::Object()
                .num("scheduled", static_cast<std::int64_t>(list.domains.size()))
                .strings("errors", bad)
                .done() + "\n";
  } else {
    o.out = "scheduled " + std::to_string(list.domains.size()) + " domain" +
            (list.domains.size() == 1 ? "" : "s") + " for refresh" +
            (list.bad.empty() ? "" : ", " + std::to_string(list.bad.size()) + " bad line" +
                                         (list.bad.size() == 1 ? "" : "s") + " skipped") + "\n";
  }
  return o;
}

namespace {

// A fetcher's report time and interval, when it published them (fetchers before this
// version did not).
struct ReportAge {
  std::optional<SysTime> at;
  Seconds interval{0};
  Seconds age{0};
  bool stale = false;
};

std::optional<long long> integer_of(const std::map<std::string, std::string>& counters, const char* key) {
  auto it = counters.find(key);
  if (it == counters.end() || it->second.empty() || it->second.size() > 18) return std::nullopt;
  long long v = 0;
  for (char c : it->second) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

ReportAge report_age(const std::map<std::string, std::string>& counters, SysTime now) {
  ReportAge r;
  const auto at = integer_of(counters, "reported_at");
  const auto interval = integer_of(counters, "stats_interval");
  if (!at) return r;
  r.at = SysTime{Seconds{*at}};
  r.interval = Seconds{interval.value_or(0)};
  r.age = std::max(Seconds{0}, now - *r.at);
  r.stale = r.interval.count() > 0 && r.age > 2 * r.interval;
  return r;
}

}  // namespace

Output cache_stats(PolicyStore& store, SysTime now, bool json) {
  try {
    const std::size_t misses = store.misses_size();
    const std::size_t scheduled = store.schedule_size();
    const std::size_t wanted = store.wanted_size();
    const auto fetchers = store.read_stats();
    Output o;
    if (json) {
      json::Object f;
      for (const auto& [id, counters] : fetchers) {
        json::Object c;
        for (const auto& [k, v] : counters) {
          // Counters are integers; anything else is passed on as text.
          bool numeric = !v.empty() && v.size() < 19;
          for (std::size_t i = 0; i < v.size(); ++i) {
            numeric = numeric && ((v[i] >= '0' && v[i] <= '9') || (i == 0 && v[i] == '-' && v.size() > 1));
          }
          if (numeric) c.num(utf8_safe(k), std::stoll(v));
          else c.str(utf8_safe(k), utf8_safe(v));
        }
        const ReportAge age = report_age(counters, now);
        if (age.at) {
          c.num("report_age", static_cast<std::int64_t>(age.age.count()));
          c.boolean("stale", age.stale);
        }
        f.raw(utf8_safe(id), counters.empty() ? "{}" : c.done());
      }
      o.out = json::Object()
                  .num("misses", static_cast<std::int64_t>(misses))
                  .num("scheduled", static_cast<std::int64_t>(scheduled))
                  .num("wanted", static_cast<std::int64_t>(wanted))
                  .raw("fetchers", fetchers.empty() ? "{}" : f.done())
                  .done() + "\n";
      return o;
    }
    o.out = "misses        " + std::to_string(misses) + "\n" + "scheduled     " + std::to_string(scheduled) + "\n" +
            "wanted        " + std::to_string(wanted) + "  (domains with a recorded lookup)\n";
    if (fetchers.empty()) o.out += "fetchers      none reporting\n";
    for (const auto& [id, counters] : fetchers) {
      const ReportAge age = report_age(counters, now);
      std::string head = "fetcher " + terminal_safe(id);
      if (age.at) {
        head += "  last report " + iso_time(*age.at) + " (" + std::to_string(age.age.count()) + "s ago)";
        if (age.stale) head += "  STALE: no report for more than 2 stats intervals; stopped or cut off from Redis";
      } else {
        head += "  last report unknown";
      }
      o.out += head + "\n";
      for (const auto& [k, v] : counters) {
        if (k == "reported_at") continue;  // shown in the head line
        std::string l = "  " + terminal_safe(k);
        l.resize(std::max<std::size_t>(l.size() + 1, 28), ' ');
        o.out += l + terminal_safe(v) + "\n";
      }
    }
    return o;
  } catch (const RedisError& e) {
    return redis_failure(e);
  }
}

}  // namespace mtasts::ctl
