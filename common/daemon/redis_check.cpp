// `--check-redis`: the probes of PolicyStore::probes() run as the program's user.
//
// Write permissions are tested without writing: a probe either cannot change anything (XX,
// an empty rank range, an absent member) or is queued inside MULTI and never executed. To
// test EXEC itself, the queue is poisoned with a command of wrong arity (a syntax error that
// Redis reports before any ACL check), so that EXEC answers EXECABORT: EXEC was allowed and
// the transaction was discarded. Redis checks ACLs when a command is queued, so NOPERM on a
// queued command is reported at once.
#include "common/daemon/redis_check.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

#include "common/util/log.hpp"

namespace mtasts {

namespace {

using std::chrono::milliseconds;

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

std::vector<std::string_view> views(const std::vector<std::string>& argv) {
  return {argv.begin(), argv.end()};
}

struct Failed {
  RedisTrouble trouble;
  std::string message;
};

std::string who(const RedisOptions& o) {
  return (o.user.empty() ? std::string("the default user") : "user " + o.user) + " at " + o.address;
}

Failed failed(const RedisError& e, const RedisOptions& o, const std::string& command, RedisNeed need) {
  const RedisTrouble t = classify(e);
  switch (t) {
    case RedisTrouble::noperm:
      return {t, "NOPERM: Redis does not allow " + who(o) + " to run " + command + " (needed to " + to_string(need) +
                     "); fix its ACL (see redis-acl.conf): " + e.what()};
    case RedisTrouble::wrongpass:
      return {t, "WRONGPASS: Redis refused " + who(o) + " while running " + command + ": " + e.what()};
    case RedisTrouble::unreachable:
      return {t, "unreachable: Redis at " + o.address + " stopped answering during " + command + ": " + e.what()};
    case RedisTrouble::other:
      break;
  }
  return {t, command + " failed for " + who(o) + ": " + e.what()};
}

}  // namespace

namespace {
// The value of `field` in INFO text ("field:value" lines), or "" when absent.
std::string info_field(std::string_view info, std::string_view field) {
  std::size_t pos = 0;
  while (pos < info.size()) {
    std::size_t end = info.find('\n', pos);
    if (end == std::string_view::npos) end = info.size();
    std::string_view line = info.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > field.size() && line.starts_with(field) && line[field.size()] == ':')
      return std::string(line.substr(field.size() + 1));
    pos = end + 1;
  }
  return {};
}
}  // namespace

std::vector<std::string> server_warnings(std::string_view info) {
  std::vector<std::string> out;
  const std::string policy = info_field(info, "maxmemory_policy");
  if (!policy.empty() && policy != "noeviction")
    out.push_back("maxmemory-policy is " + policy + ": Redis may evict " +
                  (policy.starts_with("volatile") ? std::string("policy entries and refresh claims (keys with a TTL)")
                                                  : std::string("any key, the schedule and the looked-up set included")) +
                  " when memory runs short; set maxmemory-policy noeviction (see mta-sts.conf(5), FLEET)");
  const std::string aof = info_field(info, "aof_enabled");
  const std::string saves = info_field(info, "rdb_saves");
  const std::string last_save_ok = info_field(info, "rdb_last_bgsave_status");
  if (aof == "0" && saves == "0")
    out.push_back("no persistence seen (appendonly off, no RDB snapshot since the server started): a primary that "
                  "restarts empty wipes its replicas and the fleet's cache; turn on appendonly or save");
  else if (aof == "0" && last_save_ok == "err")
    out.push_back("the last RDB snapshot failed (rdb_last_bgsave_status:err): persistence is not working");
  return out;
}

const std::vector<RedisNeed>& redis_needs(Program program) {
  using N = RedisNeed;
  static const std::vector<N> milter{N::read_entries, N::signal_misses, N::note_demand, N::watch_changes,
                                     N::read_held,    N::read_clock};
  static const std::vector<N> cached{N::read_entries, N::write_entries, N::read_queues,   N::count_queues,
                                     N::claim_locks,  N::schedule,      N::note_demand,   N::housekeeping,
                                     N::write_stats,  N::read_clock,    N::server_info};
  // mta-sts-reportd reads entries (the policy in force at each session) and the clock; its
  // report keys (v1:rpt:*) are checked by its own probes (issue 20).
  static const std::vector<N> reportd{N::read_entries, N::read_clock, N::write_reports};
  static const std::vector<N> ctl{N::read_entries, N::list_entries, N::drop_entries, N::schedule,
                                  N::count_queues, N::read_stats,   N::read_reports};
  switch (program) {
    case Program::milter: return milter;
    case Program::tlsmap: return milter;  // the same reader's rights: read, signal misses and demand, watch changes
    case Program::cached: return cached;
    case Program::ctl: return ctl;
    case Program::reportd: return reportd;
  }
  return ctl;
}

std::vector<std::string> redis_commands(Program program) {
  std::set<std::string> out;
  for (RedisNeed n : redis_needs(program)) {
    for (const RedisProbe& p : PolicyStore::probes(n, StoreOptions{})) {
      out.insert(upper(p.argv.front()));
      if (p.mode == RedisProbe::Mode::queued) out.insert({"MULTI", "EXEC"});
    }
  }
  return {out.begin(), out.end()};
}

RedisCheckResult check_redis(const RedisOptions& opts, const StoreOptions& store, Program program,
                             const std::vector<RedisProbe>& extra) {
  RedisCheckResult r;
  auto fail = [&r](Failed f) {
    r.ok = false;
    r.trouble = f.trouble;
    r.message = std::move(f.message);
    return r;
  };
  std::optional<Connection> conn;
  try {
    conn.emplace(Connection::open(opts));
  } catch (const RedisError& e) {
    const RedisTrouble t = classify(e);
    if (t == RedisTrouble::unreachable) return fail({t, "unreachable: cannot reach Redis at " + opts.address + ": " + e.what()});
    if (t == RedisTrouble::wrongpass)
      return fail({t, "WRONGPASS: Redis refused " + who(opts) + ": wrong user name or password: " + e.what()});
    if (t == RedisTrouble::noperm)
      return fail({t, "NOPERM: Redis does not allow " + who(opts) + " to select database " + std::to_string(opts.db) +
                          ": " + e.what()});
    return fail({t, "cannot connect to Redis at " + opts.address + ": " + e.what()});
  }
  try {
    conn->command({"PING"});
    r.checked.push_back("PING");
  } catch (const RedisError& e) {
    return fail(failed(e, opts, "PING", RedisNeed::read_entries));
  }

  for (RedisNeed need : redis_needs(program)) {
    if (need == RedisNeed::server_info) {
      // Only for warnings: an ACL from before INFO was asked for (no +info) loses the
      // warnings, not the check.
      try {
        const std::string info =
            std::string(conn->command({"INFO", "memory"}).str()) + std::string(conn->command({"INFO", "persistence"}).str());
        r.checked.push_back("INFO");
        r.warnings = server_warnings(info);
      } catch (const RedisError& e) {
        if (classify(e) != RedisTrouble::noperm) return fail(failed(e, opts, "INFO", need));
        r.warnings.push_back("server settings not checked: Redis does not allow " + who(opts) +
                             " to run INFO; add +info to its ACL (see redis-acl.conf)");
      }
      continue;
    }
    const auto probes = PolicyStore::probes(need, store);
    // Direct probes and subscriptions first, then one transaction for the queued ones.
    bool any_queued = false;
    for (const RedisProbe& p : probes) {
      const std::string name = upper(p.argv.front());
      if (p.mode == RedisProbe::Mode::queued) {
        any_queued = true;
        continue;
      }
      try {
        if (p.mode == RedisProbe::Mode::direct) {
          conn->command(views(p.argv));
        } else {
          Connection sub = Connection::open(opts);
          sub.send(views(p.argv));
          auto reply = sub.read(std::max(opts.command_timeout, milliseconds{100}));
          if (!reply)
            return fail({RedisTrouble::unreachable, "unreachable: no answer to " + name + " from Redis at " + opts.address});
        }
        r.checked.push_back(name);
      } catch (const RedisError& e) {
        return fail(failed(e, opts, name, need));
      }
    }
    if (!any_queued) continue;
    try {
      conn->command({"MULTI"});
    } catch (const RedisError& e) {
      return fail(failed(e, opts, "MULTI", need));
    }
    r.checked.push_back("MULTI");
    for (const RedisProbe& p : probes) {
      if (p.mode != RedisProbe::Mode::queued) continue;
      const std::string name = upper(p.argv.front());
      try {
        conn->command(views(p.argv));  // "QUEUED"
        r.checked.push_back(name);
      } catch (const RedisError& e) {
        return fail(failed(e, opts, name, need));  // the connection is dropped with its transaction
      }
    }
    try {
      conn->command({"GET"});  // wrong arity: the transaction can no longer run
    } catch (const RedisError& e) {
      if (classify(e) != RedisTrouble::other) return fail(failed(e, opts, "MULTI", need));
    }
    try {
      conn->command({"EXEC"});
      // EXEC ran the queue: the poison did not work. Nothing changed (every queued probe is
      // harmless by itself), but say so rather than pass silently.
      return fail({RedisTrouble::other, "EXEC did not abort the probe transaction at " + opts.address +
                                            " (is this Redis 6.2 or newer?)"});
    } catch (const RedisError& e) {
      if (std::string_view(e.what()).find("EXECABORT") == std::string_view::npos)
        return fail(failed(e, opts, "EXEC", need));
    }
    r.checked.push_back("EXEC");
  }
  for (const RedisProbe& p : extra) {
    const std::string name = upper(p.argv.front());
    try {
      conn->command(views(p.argv));
      r.checked.push_back(name);
    } catch (const RedisError& e) {
      return fail(failed(e, opts, name, RedisNeed::write_reports));
    }
  }
  r.ok = true;
  r.message = "Redis at " + opts.address + " allows " + (opts.user.empty() ? "the default user" : "user " + opts.user) +
              " everything " + program_name(program) + " needs";
  return r;
}

int run_check_redis(const Config& cfg, Program program, const std::vector<RedisProbe>& extra) {
  const RedisCheckResult r = check_redis(cfg.redis.redis, cfg.redis.store, program, extra);
  if (!r.ok) {
    std::fprintf(stderr, "%s: redis check failed: %s\n", program_name(program), r.message.c_str());
    return exit_status::redis;
  }
  std::string list;
  std::set<std::string> seen;
  for (const auto& c : r.checked)
    if (seen.insert(c).second) list += (list.empty() ? "" : " ") + c;
  std::printf("%s: redis OK: %s (%s)\n", program_name(program), r.message.c_str(), list.c_str());
  for (const auto& w : r.warnings) std::fprintf(stderr, "%s: redis warning: %s\n", program_name(program), w.c_str());
  return exit_status::ok;
}

void log_redis_check(const Config& cfg, Program program) {
  const RedisCheckResult r = check_redis(cfg.redis.redis, cfg.redis.store, program);
  if (r.ok) {
    log::info("redis reachable", {{"address", cfg.redis.redis.address}, {"user", cfg.redis.redis.user}});
    for (const auto& w : r.warnings)
      log::warning("unsafe redis server setting", {{"address", cfg.redis.redis.address}, {"warning", w}});
  } else if (r.trouble == RedisTrouble::unreachable) {
    log::warning("redis not reachable at start-up", {{"address", cfg.redis.redis.address}, {"error", r.message}});
  } else {
    log::error("redis refuses this program", {{"address", cfg.redis.redis.address},
                                              {"problem", to_string(r.trouble)},
                                              {"error", r.message}});
  }
}

}  // namespace mtasts
