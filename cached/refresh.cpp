// The RFC 8461 cache rules as pure functions; see refresh.hpp for the rules themselves.
#include "cached/refresh.hpp"

#include <algorithm>
#include <cmath>

namespace mtasts::refresh {

namespace {


// How strong a mode is, for telling a downgrade from an upgrade.
int strength(Mode m) {
  switch (m) {
    case Mode::enforce: return 2;
    case Mode::testing: return 1;
    case Mode::none: return 0;
  }
  return 0;
}

bool same_policy(const StoredPolicy& a, const StoredPolicy& b) {
  return a.id == b.id && a.policy == b.policy;
}

}  // namespace

const char* to_string(Action a) noexcept {
  switch (a) {
    case Action::discover: return "discover";
    case Action::backoff: return "backoff";
    case Action::settled: return "settled";
    case Action::skip: return "skip";
    case Action::newer_format: return "newer_format";
  }
  return "discover";
}

SysTime jittered(SysTime now, SysTime next, unsigned percent, double jitter, SysTime not_before) {
  if (next > now && percent > 0 && jitter > 0.0) {
    const double delay = static_cast<double>((next - now).count());
    const double frac = std::min(jitter, 1.0) * std::min(percent, 100u) / 100.0;
    next -= Seconds{static_cast<Seconds::rep>(std::floor(delay * frac))};
  }
  return std::max(next, not_before);
}

Outcome apply(const std::optional<CacheEntry>& old, const discovery::Report& report, SysTime now,
              const Rules& rules, double jitter) {
  using discovery::Status;
  Outcome out;
  CacheEntry& e = out.entry;
  if (old) e = *old;
  const bool usable = old && policy_usable(*old, now);
  const Verdict before = old ? verdict(*old, now) : Verdict::unknown;
  const std::string& domain = report.domain;
  auto event = [&](log::Level lvl, std::string msg, std::vector<std::pair<std::string, std::string>> f) {
    f.insert(f.begin(), {"domain", domain});
    out.events.push_back(Event{lvl, std::move(msg), std::move(f)});
  };

  const std::optional<FailureKind> failure = report.failure();
  if (report.status == Status::valid && report.policy) {
    StoredPolicy fresh{*report.policy, report.fetch.body, report.id, now, now + report.policy->max_age};
    if (!old || !old->policy) {
      event(log::Level::info, "policy discovered",
            {{"mode", to_string(fresh.policy.mode)}, {"id", fresh.id},
             {"max_age", std::to_string(fresh.policy.max_age.count())}});
    } else if (!same_policy(*old->policy, fresh)) {
      const Mode from = old->policy->policy.mode;
      const Mode to = fresh.policy.mode;
      if (strength(to) < strength(from)) {
        event(log::Level::warning, "policy downgraded",
              {{"from", to_string(from)}, {"to", to_string(to)}, {"old_id", old->policy->id}, {"id", fresh.id}});
      } else {
        event(log::Level::notice, "policy changed",
              {{"from", to_string(from)}, {"to", to_string(to)}, {"old_id", old->policy->id}, {"id", fresh.id}});
      }
    }
    if (old && old->failure && old->failure->count > 0) {
      event(log::Level::notice, "refresh recovered", {{"failures", std::to_string(old->failure->count)}});
    }
    e.policy = std::move(fresh);
    e.no_policy_until.reset();
    e.failure.reset();
  } else if (report.status == Status::unchanged && old && old->policy) {
    // DNS confirmed the same id: the cached policy lives on from now.
    e.policy->expires_at = std::max(e.policy->expires_at, now + e.policy->policy.max_age);
    if (old->failure && old->failure->count > 0) {
      event(log::Level::notice, "refresh recovered", {{"failures", std::to_string(old->failure->count)}});
    }
    e.no_policy_until.reset();
    e.failure.reset();
  } else if (report.status == Status::no_policy && !failure) {
    if (usable) {
      // RFC 8461 section 5.1: a cached, unexpired policy is applied although no live policy
      // can be discovered; it simply runs out at its expiry.
      if (e.policy->policy.mode != Mode::none) {
        event(log::Level::warning, "policy vanished",
              {{"mode", to_string(e.policy->policy.mode)}, {"id", e.policy->id},
               {"kept_until", iso_time(e.policy->expires_at)}});
      }
    } else {
      if (old && old->policy && old->policy->policy.mode != Mode::none) {
        event(log::Level::notice, "policy expired and no longer published",
              {{"mode", to_string(old->policy->policy.mode)}, {"id", old->policy->id}});
      }
      e.policy.reset();
      e.no_policy_until = now + rules.cache.negative_ttl;
    }
    e.failure.reset();
  } else {
    // A failure: the cached policy and any negative entry stay exactly as they were.
    FailureState f;
    const bool streak = old && old->failure;
    f.kind = failure.value_or(FailureKind::fetch);
    f.error = report.reason();
    // Readers refuse longer texts (cache_entry.hpp): keep within the bound.
    if (f.error.size() > kMaxFailureErrorBytes) f.error.resize(kMaxFailureErrorBytes);
    f.txt_id = report.id;
    f.count = streak ? std::max(old->failure->count, old->failure->count + 1) : 1;  // saturates
    // min(): a clock stepped back must not write times out of order (readers refuse those).
    f.first_at = streak ? std::min(old->failure->first_at, now) : now;
    f.last_at = now;
    f.retry_after = now + std::max(failure_backoff(f.count, rules.cache), kMinFailureBackoff);
    const bool alert = e.policy && e.policy->policy.mode != Mode::none && f.count >= rules.failure_alert;
    event(alert ? log::Level::warning : log::Level::info,
          alert ? "refresh failing" : "discovery failed",
          {{"kind", to_string(f.kind)}, {"count", std::to_string(f.count)},
           {"retry_after", iso_time(f.retry_after)},
           {"cached", e.policy ? (usable ? "kept" : "expired") : "none"}, {"error", f.error}});
    e.failure = std::move(f);
  }

  e.checked_at = now;
  const SysTime not_before = std::max(now + kMinRefreshDelay, e.failure ? e.failure->retry_after : now);
  e.next_refresh = jittered(now, next_refresh_time(e, now, rules.cache), rules.jitter_percent, jitter, not_before);
  if (e.failure) e.next_refresh = std::min(e.next_refresh, backoff_visit(e, now));

  const Verdict after = verdict(e, now);
  const bool had_policy = old && old->policy;
  const bool policy_changed = had_policy != e.policy.has_value() ||
                              (had_policy && e.policy && !same_policy(*old->policy, *e.policy));
  out.announce = before != after || policy_changed;
  return out;
}

SysTime backoff_visit(const CacheEntry& e, SysTime now) {
  const SysTime visit = now + kMinFailureBackoff;
  return e.failure ? std::min(e.failure->retry_after, visit) : visit;
}

Action plan(const std::optional<CacheEntry>& entry, SysTime now, bool is_miss) {
  if (!entry) return Action::discover;
  const CacheEntry& e = *entry;
  if (!is_miss) {
    // The schedule said "due". An entry checked within the last minute whose next refresh
    // is later means another fetcher did the work after we read the schedule; an older one
    // was put forward on purpose (e.g. `mta-sts-ctl cache warm`) and is done now.
    if (e.next_refresh > now && now < e.checked_at + kMinRecheck) return Action::skip;
    return may_retry(e, now) ? Action::discover : Action::backoff;
  }
  if (!may_retry(e, now)) return Action::backoff;
  // A miss for a domain whose entry already answers the milter (a policy, a negative entry)
  // and is not yet due: another fetcher filled it after the milter looked.
  if (verdict(e, now) != Verdict::unknown && e.next_refresh > now && !e.failure) return Action::settled;
  return Action::discover;
}

}  // namespace mtasts::refresh
