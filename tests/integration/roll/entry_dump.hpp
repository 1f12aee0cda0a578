// Every field of a CacheEntry as text, one "name=value" line each in a fixed order, written
// from the struct and not through the codec: the rolling-upgrade test compares what the next
// codec version decoded (mta-sts-next-codec) with what today's decoded, field by field.
#pragma once

#include <string>

#include "common/sts/cache_entry.hpp"

namespace mtasts::test {

inline std::string dump(const CacheEntry& e) {
  std::string out;
  auto line = [&out](const char* name, const std::string& value) {
    out += name;
    out += '=';
    out += value;
    out += '\n';
  };
  auto time = [](SysTime t) { return std::to_string(t.time_since_epoch().count()); };
  line("checked", time(e.checked_at));
  line("next", time(e.next_refresh));
  line("nopolicy", e.no_policy_until ? time(*e.no_policy_until) : "-");
  if (e.policy) {
    const StoredPolicy& p = *e.policy;
    line("policy.mode", to_string(p.policy.mode));
    line("policy.max_age", std::to_string(p.policy.max_age.count()));
    for (const auto& mx : p.policy.mx) line("policy.mx", mx.str());
    line("policy.id", p.id);
    line("policy.fetched", time(p.fetched_at));
    line("policy.expires", time(p.expires_at));
    line("policy.raw.bytes", std::to_string(p.raw.size()));
    line("policy.raw", p.raw);  // may hold CR LF: the last field of its group
  } else {
    line("policy", "-");
  }
  if (e.failure) {
    const FailureState& f = *e.failure;
    line("failure.kind", to_string(f.kind));
    line("failure.error", f.error);
    line("failure.txt_id", f.txt_id);
    line("failure.first", time(f.first_at));
    line("failure.last", time(f.last_at));
    line("failure.retry", time(f.retry_after));
    line("failure.count", std::to_string(f.count));
  } else {
    line("failure", "-");
  }
  return out;
}

}  // namespace mtasts::test
