// mta-sts-ctl: the operator's command-line tool. This file only splits the command line,
// reads input files and prints; the subcommands live in commands.cpp, cache.cpp and
// query.cpp. The interface (subcommands, options, exit codes, JSON) is fixed: see
// mta-sts-ctl(1).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "common/daemon/config.hpp"
#include "common/sts/policy.hpp"
#include "common/daemon/redis_check.hpp"
#include "common/fleet/redis.hpp"
#include "common/fleet/store.hpp"
#include "ctl/cache.hpp"
#include "ctl/commands.hpp"
#include "ctl/query.hpp"
#include "ctl/report.hpp"

namespace {

using namespace mtasts;
using ctl::Output;

constexpr const char* kSynopsis =
    "usage: mta-sts-ctl [options] lint [--json] FILE|-\n"
    "       mta-sts-ctl [options] check-txt [--json] RECORD...\n"
    "       mta-sts-ctl [options] match PATTERN HOST\n"
    "       mta-sts-ctl [options] query [--json] [--resolver ADDR[:PORT]]... [--ca-file FILE] DOMAIN\n"
    "       mta-sts-ctl [options] cache show [--json] DOMAIN\n"
    "       mta-sts-ctl [options] cache list [--json] [--limit N]\n"
    "       mta-sts-ctl [options] cache drop [--json] DOMAIN\n"
    "       mta-sts-ctl [options] cache warm [--json] FILE|-\n"
    "       mta-sts-ctl [options] cache stats [--json]\n"
    "       mta-sts-ctl [options] report show [--json] [--day DAY] [DOMAIN]\n"
    "       mta-sts-ctl [options] report json --day DAY DOMAIN\n"
    "       mta-sts-ctl -n|--check [-c FILE]\n"
    "       mta-sts-ctl --check-redis [-c FILE]\n"
    "       mta-sts-ctl -h|--help | -V|--version\n";

int emit(const Output& o) {
  std::fwrite(o.out.data(), 1, o.out.size(), stdout);
  std::fflush(stdout);
  std::fwrite(o.err.data(), 1, o.err.size(), stderr);
  return o.code;
}

int usage_error(const std::string& why) {
  std::fprintf(stderr, "mta-sts-ctl: %s\nTry 'mta-sts-ctl --help'.\n", why.c_str());
  return ctl::kExitUsage;
}

// Reads FILE ("-": stdin) up to `cap` bytes. nullopt with *error on I/O failure; *truncated
// when the input is longer than `cap`.
std::optional<std::string> read_input(const std::string& path, std::size_t cap, bool* truncated,
                                      std::string* error) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) {
      *error = path + ": " + std::strerror(errno);
      return std::nullopt;
    }
    in = &file;
  }
  // Read in chunks: the cap bounds memory without allocating it up front.
  std::string data;
  char chunk[65536];
  while (data.size() <= cap) {
    in->read(chunk, sizeof chunk);
    data.append(chunk, static_cast<std::size_t>(in->gcount()));
    if (!*in) break;
  }
  if (in->bad()) {
    *error = (path == "-" ? std::string("<stdin>") : path) + ": read error";
    return std::nullopt;
  }
  *truncated = data.size() > cap;
  if (*truncated) data.resize(cap + 1);
  return data;
}

// The command line, split: options that load_config understands, the subcommand and its
// operands, and the flags that belong to mta-sts-ctl alone (--json, --limit).
struct Args {
  std::vector<std::string> config_args;  // for load_config, in order (no argv[0])
  std::vector<std::string> words;        // subcommand and operands
  std::size_t options_before_subcommand = 0;
  std::size_t options_after_subcommand = 0;
  bool json = false;
  bool help = false;
  bool version = false;
  std::optional<std::string> limit;
  std::optional<std::string> day;  // report: --day YYYY-MM-DD
};

bool takes_value(const std::string& opt) {
  if (opt.rfind("--", 0) == 0) {
    if (opt.find('=') != std::string::npos) return false;
    return opt != "--check" && opt != "--check-redis" && opt != "--help" && opt != "--version" && opt != "--json";
  }
  return opt == "-c";
}

// Throws std::invalid_argument on a malformed command line.
Args split(int argc, char** argv) {
  Args a;
  bool operands_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string t = argv[i];
    if (operands_only || t == "-" || t.empty() || t[0] != '-') {
      a.words.push_back(t);
      continue;
    }
    if (t == "--") {
      operands_only = true;
      continue;
    }
    if (t == "--json") {
      a.json = true;
      continue;
    }
    if (t == "-h" || t == "--help") {
      a.help = true;
      continue;
    }
    if (t == "-V" || t == "--version") {
      a.version = true;
      continue;
    }
    if (t == "--limit" || t.rfind("--limit=", 0) == 0) {
      if (t == "--limit") {
        if (i + 1 >= argc) throw std::invalid_argument("--limit needs a value");
        a.limit = argv[++i];
      } else {
        a.limit = t.substr(8);
      }
      continue;
    }
    if (t == "--day" || t.rfind("--day=", 0) == 0) {
      if (t == "--day") {
        if (i + 1 >= argc) throw std::invalid_argument("--day needs a value");
        a.day = argv[++i];
      } else {
        a.day = t.substr(6);
      }
      continue;
    }
    ++(a.words.empty() ? a.options_before_subcommand : a.options_after_subcommand);
    a.config_args.push_back(t);
    if (takes_value(t)) {
      if (i + 1 >= argc) throw std::invalid_argument(t + " needs a value");
      a.config_args.push_back(argv[++i]);
    }
  }
  return a;
}

Config load(const Args& a, CommandLine* cl) {
  std::vector<const char*> v{"mta-sts-ctl"};
  for (const auto& s : a.config_args) v.push_back(s.c_str());
  return load_config(Program::ctl, static_cast<int>(v.size()), v.data(), cl);
}

int run_lint(const Args& a) {
  if (a.words.size() != 2) return usage_error("lint takes one FILE (or - for standard input)");
  bool truncated = false;
  std::string error;
  auto text = read_input(a.words[1], kMaxPolicyBytes, &truncated, &error);
  if (!text) {
    std::fprintf(stderr, "mta-sts-ctl: %s\n", error.c_str());
    return ctl::kExitUsage;
  }
  return emit(ctl::lint(*text, a.words[1], a.json, truncated));
}

int run_cache(const Args& a, const Config& cfg) {
  if (a.words.size() < 2) return usage_error("cache needs a subcommand: show, list, drop, warm or stats");
  const std::string& what = a.words[1];
  const std::size_t operands = a.words.size() - 2;
  std::size_t limit = 1000;
  if (a.limit) {
    if (what != "list") return usage_error("--limit applies to cache list only");
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(a.limit->c_str(), &end, 10);
    if (a.limit->empty() || *end != '\0' || errno != 0 || n == 0 || (*a.limit)[0] == '-') {
      return usage_error("--limit must be a positive integer");
    }
    limit = static_cast<std::size_t>(n);
  }
  const bool needs_one = what == "show" || what == "drop" || what == "warm";
  if (what != "show" && what != "drop" && what != "warm" && what != "list" && what != "stats") {
    return usage_error("unknown cache subcommand \"" + what + "\"");
  }
  if (needs_one ? operands != 1 : operands != 0) {
    return usage_error("cache " + what + (needs_one ? " takes one operand" : " takes no operand"));
  }

  std::string warm_text;
  if (what == "warm") {
    bool truncated = false;
    std::string error;
    // A warm list of a few million names is plausible; refuse anything absurd.
    constexpr std::size_t kMaxWarmBytes = std::size_t{1} << 30;
    auto text = read_input(a.words[2], kMaxWarmBytes, &truncated, &error);
    if (!text || truncated) {
      std::fprintf(stderr, "mta-sts-ctl: %s\n", text ? (a.words[2] + ": larger than 1 GiB").c_str() : error.c_str());
      return ctl::kExitUsage;
    }
    warm_text = std::move(*text);
  }

  Pool pool(cfg.redis.redis);
  PolicyStore store(pool, cfg.redis.store);
  const SysTime now = SystemClock().now();
  if (what == "show") return emit(ctl::cache_show(store, a.words[2], now, a.json));
  if (what == "drop") return emit(ctl::cache_drop(store, a.words[2], a.json));
  if (what == "list") return emit(ctl::cache_list(store, limit, now, a.json));
  if (what == "warm") return emit(ctl::cache_warm(store, warm_text, a.words[2], now, a.json));
  return emit(ctl::cache_stats(store, now, a.json));
}

// Who reports, as mta-sts-reportd's [reportd] section says (organization-name, contact-info,
// submitter), so that `report json` prints the report reportd sends.
tlsrpt::Reporter reporter_of(const Config& cfg) {
  return tlsrpt::Reporter{cfg.reportd.organization_name, cfg.reportd.contact_info, cfg.reportd.submitter};
}

// The caps reportd writes with ([reportd] keep, max-failure-details): the reader allows as much.
ReportLimits report_limits(const Config& cfg) {
  ReportLimits l;
  l.keep = cfg.reportd.keep;
  l.max_details = cfg.reportd.max_failure_details;
  return l;
}

int run_report(const Args& a, const Config& cfg) {
  if (a.words.size() < 2) return usage_error("report needs a subcommand: show or json");
  const std::string& what = a.words[1];
  const std::size_t operands = a.words.size() - 2;
  if (what != "show" && what != "json") return usage_error("unknown report subcommand \"" + what + "\"");
  if (what == "show" && operands > 1) return usage_error("report show takes at most one DOMAIN");
  if (what == "json") {
    if (operands != 1) return usage_error("report json takes one DOMAIN");
    if (!a.day) return usage_error("report json needs --day DAY");
    if (a.json) return usage_error("report json prints JSON already: no --json");
  }
  // Default: today (UTC), the day the fleet is counting now.
  const std::string day = a.day ? *a.day : tlsrpt::day_of(SystemClock().now().time_since_epoch().count());
  Pool pool(cfg.redis.redis);
  ReportStore store(pool, cfg.redis.store.prefix, report_limits(cfg));
  const std::string domain = operands == 1 ? a.words[2] : std::string();
  if (what == "show") return emit(ctl::report_show(store, domain, day, a.json));
  return emit(ctl::report_json_of(store, reporter_of(cfg), domain, day));
}

int main_(int argc, char** argv) {
  Args a;
  try {
    a = split(argc, argv);
  } catch (const std::invalid_argument& e) {
    return usage_error(e.what());
  }
  if (a.help) {
    std::fputs(kSynopsis, stdout);
    std::fputs("\n", stdout);
    std::fputs(usage(Program::ctl).c_str(), stdout);
    std::fputs("\nExit status: 0 yes/valid/found, 1 no/invalid/not found, 2 usage, configuration or I/O\n"
               "error, 3 discovery or Redis failure (also --check-redis). See mta-sts-ctl(1).\n",
               stdout);
    return ctl::kExitOk;
  }
  if (a.version) {
    std::printf("mta-sts-ctl %s\n", MTASTS_VERSION);
    return ctl::kExitOk;
  }
  const std::string sub = a.words.empty() ? std::string() : a.words[0];
  const bool offline = sub == "lint" || sub == "check-txt" || sub == "match";

  // The offline subcommands read no configuration, so that a domain owner can lint a policy
  // anywhere; options given before them are still checked, never silently ignored.
  Config cfg;
  CommandLine cl;
  if (!offline || a.options_before_subcommand > 0) {
    try {
      cfg = load(a, &cl);
    } catch (const ConfigError& e) {
      std::fprintf(stderr, "mta-sts-ctl: %s\n", e.what());
      return ctl::kExitUsage;
    }
  }
  if (offline && a.options_after_subcommand > 0) {
    return usage_error(sub + " takes no option other than --json");
  }
  if (cl.check) {
    if (!a.words.empty()) return usage_error("--check takes no subcommand");
    std::printf("mta-sts-ctl: configuration %s is valid\n", cfg.path.empty() ? "(defaults)" : cfg.path.c_str());
    return ctl::kExitOk;
  }
  if (cl.check_redis) {
    if (!a.words.empty()) return usage_error("--check-redis takes no subcommand");
    return run_check_redis(cfg, Program::ctl);
  }
  if (sub.empty()) return usage_error("no subcommand");
  if (a.json && sub == "match") return usage_error("match has no --json output");
  if (a.limit && sub != "cache") return usage_error("--limit applies to cache list only");
  if (a.day && sub != "report") return usage_error("--day applies to report only");

  if (sub == "lint") return run_lint(a);
  if (sub == "check-txt") {
    if (a.words.size() < 2) return usage_error("check-txt takes one or more TXT records");
    return emit(ctl::check_txt({a.words.begin() + 1, a.words.end()}, a.json));
  }
  if (sub == "match") {
    if (a.words.size() != 3) return usage_error("match takes PATTERN and HOST");
    return emit(ctl::match(a.words[1], a.words[2]));
  }
  if (sub == "query") {
    if (a.words.size() != 2) return usage_error("query takes one DOMAIN");
    // A host whose fetcher is configured (resolver, trust store) queries the way it does,
    // unless [ctl] or the command line says otherwise.
    CtlConfig qc = cfg.ctl;
    if (qc.resolvers.empty()) qc.resolvers = cfg.cached.resolvers;
    if (qc.ca_file.empty()) qc.ca_file = cfg.cached.ca_file;
    return emit(ctl::query(qc, a.words[1], a.json));
  }
  if (sub == "cache") return run_cache(a, cfg);
  if (sub == "report") return run_report(a, cfg);
  return usage_error("unknown subcommand \"" + sub + "\"");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return main_(argc, argv);
  } catch (const std::exception& e) {
    // Impossible states only: every expected failure has its own exit path above.
    std::fprintf(stderr, "mta-sts-ctl: %s\n", e.what());
    return ctl::kExitUsage;
  }
}
