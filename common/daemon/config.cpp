// Configuration for every program: the one table of options (default, bounds, description),
// the INI reader (every error says FILE:LINE) and the command line (Boost.Program_options).
//
// The table is the single source of truth: load starts from the table's defaults, usage() and
// the man-page checks list it, and the example configuration is checked against it.
#include "common/daemon/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>

#include "common/util/log.hpp"
#include "common/util/metrics.hpp"

namespace mtasts {

const char* to_string(Program p) noexcept {
  switch (p) {
    case Program::milter: return "milter";
    case Program::cached: return "cached";
    case Program::ctl: return "ctl";
    case Program::tlsmap: return "tlsmap";
    case Program::reportd: return "reportd";
  }
  return "ctl";
}

const char* program_name(Program p) noexcept {
  switch (p) {
    case Program::milter: return "mta-sts-milter";
    case Program::cached: return "mta-sts-cached";
    case Program::ctl: return "mta-sts-ctl";
    case Program::tlsmap: return "mta-sts-tlsmap";
    case Program::reportd: return "mta-sts-reportd";
  }
  return "mta-sts";
}

namespace {

namespace po = boost::program_options;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A value that does not fit its option; the caller adds where it came from.
struct BadValue {
  std::string message;
};

// ---- value parsers ----------------------------------------------------------------------
bool has_control(std::string_view v) {
  return std::any_of(v.begin(), v.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

std::string text(std::string_view v) {
  if (has_control(v)) throw BadValue{"control characters are not allowed"};
  return std::string(v);
}

// A name without spaces (user, group, prefix, fetcher id).
std::string word(std::string_view v, bool allow_empty = true, std::size_t max = 256) {
  if (v.empty() && !allow_empty) throw BadValue{"must not be empty"};
  if (has_control(v) || v.find(' ') != std::string_view::npos || v.find('\t') != std::string_view::npos)
    throw BadValue{"spaces and control characters are not allowed"};
  if (v.size() > max) throw BadValue{"longer than " + std::to_string(max) + " characters"};
  return std::string(v);
}

std::string lower(std::string_view v) {
  std::string s(v);
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

bool boolean(std::string_view v) {
  const std::string s = lower(v);
  if (s == "yes" || s == "true" || s == "on" || s == "1") return true;
  if (s == "no" || s == "false" || s == "off" || s == "0") return false;
  throw BadValue{"expected yes/no, true/false, on/off or 1/0"};
}

std::optional<unsigned long long> digits(std::string_view v, int base = 10) {
  if (v.empty()) return std::nullopt;
  unsigned long long n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n, base);
  if (ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
  return n;
}

unsigned long long number(std::string_view v, unsigned long long min, unsigned long long max) {
  auto n = digits(v);
  if (!n) throw BadValue{"expected a whole number"};
  if (*n < min || *n > max)
    throw BadValue{"must be between " + std::to_string(min) + " and " + std::to_string(max)};
  return *n;
}

unsigned octal(std::string_view v, unsigned max) {
  auto n = digits(v, 8);
  if (!n) throw BadValue{"expected an octal mode such as 0660"};
  if (*n > max) throw BadValue{"must be at most 0" + [max] {
    std::ostringstream o;
    o << std::oct << max;
    return o.str();
  }()};
  return static_cast<unsigned>(*n);
}

std::string duration_text(milliseconds d) {
  const auto ms = d.count();
  if (ms == 0) return "0";
  if (ms % 86400000 == 0) return std::to_string(ms / 86400000) + "d";
  if (ms % 3600000 == 0) return std::to_string(ms / 3600000) + "h";
  if (ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

enum class Unit { ms, s };

// "250", "250ms", "30s", "5m", "2h", "1d"; a plain number is in the option's natural unit.
milliseconds duration(std::string_view v, Unit unit, milliseconds min, milliseconds max) {
  std::size_t i = 0;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
  const std::string_view num = v.substr(0, i);
  const std::string suffix = lower(v.substr(i));
  auto n = digits(num);
  if (!n || *n > 1'000'000'000'000ULL) throw BadValue{"expected a duration such as 250ms, 30s, 5m, 2h or 1d"};
  long long scale = 0;
  if (suffix.empty()) scale = unit == Unit::ms ? 1 : 1000;
  else if (suffix == "ms") scale = 1;
  else if (suffix == "s") scale = 1000;
  else if (suffix == "m") scale = 60000;
  else if (suffix == "h") scale = 3600000;
  else if (suffix == "d") scale = 86400000;
  else throw BadValue{"unknown unit '" + suffix + "' (use ms, s, m, h or d)"};
  const milliseconds d{static_cast<long long>(*n) * scale};
  if (d < min || d > max)
    throw BadValue{"must be between " + duration_text(min) + " and " + duration_text(max)};
  if (unit == Unit::s && d.count() % 1000 != 0) throw BadValue{"must be a whole number of seconds"};
  return d;
}

milliseconds ms(std::string_view v, long long min, long long max) {
  return duration(v, Unit::ms, milliseconds{min}, milliseconds{max});
}
seconds secs(std::string_view v, long long min, long long max) {
  return std::chrono::duration_cast<seconds>(duration(v, Unit::s, seconds{min}, seconds{max}));
}

constexpr long long kMinute = 60, kHour = 3600, kDay = 86400;

std::string choice(std::string_view v, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed)
    if (v == a) return std::string(v);
  std::string list;
  for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  throw BadValue{"expected one of: " + list};
}

OnFailure on_failure(std::string_view v) {
  return choice(v, {"accept", "tempfail"}) == "accept" ? OnFailure::accept : OnFailure::tempfail;
}

std::string log_target(std::string_view v) { return choice(v, {"syslog", "stderr"}); }
std::string log_level(std::string_view v) {
  return choice(v, {"debug", "info", "notice", "warning", "error"});
}
std::string log_facility(std::string_view v) {
  if (!log::is_facility_name(v)) throw BadValue{"not a syslog facility (mail, daemon, local0 ... local7, ...)"};
  return std::string(v);
}

bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

void check_port(std::string_view p) {
  auto n = digits(p);
  if (!n || *n < 1 || *n > 65535) throw BadValue{"bad port '" + std::string(p) + "'"};
}

// A DNS resolver: "ADDR", "ADDR:PORT" (IPv4), "V6ADDR" or "[V6ADDR]:PORT".
std::string resolver(std::string_view v) {
  std::string host(v);
  if (!v.empty() && v.front() == '[') {
    const auto close = v.find(']');
    if (close == std::string_view::npos) throw BadValue{"missing ']'"};
    host = std::string(v.substr(1, close - 1));
    const auto rest = v.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') throw BadValue{"expected ':PORT' after ']'"};
      check_port(rest.substr(1));
    }
  } else if (std::count(v.begin(), v.end(), ':') == 1) {
    const auto colon = v.find(':');
    host = std::string(v.substr(0, colon));
    check_port(v.substr(colon + 1));
  }
  if (!is_ip(host)) throw BadValue{"a resolver is an IP address, optionally with a port"};
  return std::string(v);
}

// A DNS name to query: "." (the root) or LDH labels separated by dots, a trailing dot allowed.
std::string dns_name(std::string_view v) {
  if (v == ".") return ".";
  std::string_view n = v;
  if (!n.empty() && n.back() == '.') n.remove_suffix(1);
  if (n.empty() || n.size() > 253) throw BadValue{"expected \".\" or a domain name"};
  std::size_t label = 0;
  for (char c : n) {
    if (c == '.') {
      if (label == 0) throw BadValue{"empty label"};
      label = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63) throw BadValue{"not a domain name"};
  }
  if (label == 0) throw BadValue{"empty label"};
  return std::string(n);
}

std::string redis_address(std::string_view v) {
  std::string why;
  if (!parse_redis_address(v, &why)) throw BadValue{why};
  return text(v);
}

// libmilter's socket syntax.
std::string milter_socket(std::string_view v) {
  const auto colon = v.find(':');
  const std::string proto = colon == std::string_view::npos ? "" : lower(v.substr(0, colon));
  const std::string_view rest = colon == std::string_view::npos ? v : v.substr(colon + 1);
  if (proto == "unix" || proto == "local" || (proto.empty() && v.starts_with("/"))) {
    if (!rest.starts_with("/")) throw BadValue{"a unix socket needs an absolute path"};
    return text(v);
  }
  if (proto == "inet" || proto == "inet6") {
    const auto at = rest.find('@');
    check_port(rest.substr(0, at));
    if (at != std::string_view::npos && at + 1 == rest.size()) throw BadValue{"empty host after '@'"};
    return text(v);
  }
  throw BadValue{"expected unix:PATH, local:PATH, inet:PORT[@HOST] or inet6:PORT[@HOST]"};
}

// RFC 5322 section 3.6.8: printable US-ASCII except ':'.
std::string header_name(std::string_view v) {
  if (v.empty() || v.size() > 64) throw BadValue{"must be 1 to 64 characters"};
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || c == ':') throw BadValue{"not a valid header field name (RFC 5322)"};
  }
  return std::string(v);
}

std::string proxy_url(std::string_view v) {
  if (v.empty()) return {};
  const auto p = v.find("://");
  if (p == std::string_view::npos || p == 0 || p + 3 == v.size())
    throw BadValue{"expected a URL such as http://proxy.example:3128"};
  return word(v, false, 1024);
}

DaemonConfig& daemon_of(Config& c, std::string_view section) {
  if (section == "tlsmap") return c.tlsmap.daemon;
  if (section == "reportd") return c.reportd.daemon;
  return section == "milter" ? c.milter.daemon : c.cached.daemon;
}
std::vector<std::string>& resolvers_of(Config& c, std::string_view section) {
  if (section == "tlsmap") return c.tlsmap.resolvers;
  if (section == "reportd") return c.reportd.resolvers;
  return section == "cached" ? c.cached.resolvers : c.ctl.resolvers;
}
// The list a repeatable option fills (command-line values replace the file's).
std::vector<std::string>& list_of(Config& c, std::string_view section, std::string_view key) {
  if (section == "redis" && key == "sentinel") return c.redis.redis.sentinels;
  if (section == "tlsmap" && key == "listen") return c.tlsmap.listen;
  if (section == "tlsmap" && key == "dane-trusted-resolver") return c.tlsmap.dane_trusted_resolvers;
  if (section == "reportd" && key == "source") return c.reportd.sources;
  if (section == "reportd" && key == "exclude") return c.reportd.exclude;
  return resolvers_of(c, section);
}

// mta-sts-tlsmap's listening sockets: "unix:/PATH" or "inet:HOST:PORT" with HOST a numeric
// IPv4 address or "[IPv6]" (no name: what is bound must not depend on DNS at start-up).
std::string tlsmap_listen(std::string_view v) {
  if (v.starts_with("unix:")) {
    const std::string_view path = v.substr(5);
    if (!path.starts_with("/")) throw BadValue{"a unix socket needs an absolute path"};
    if (path.size() > 100) throw BadValue{"unix socket path longer than 100 characters"};
    return word(v, false, 1024);
  }
  if (v.starts_with("inet:")) {
    const std::string_view rest = v.substr(5);
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) throw BadValue{"expected inet:HOST:PORT"};
    std::string host(rest.substr(0, colon));
    check_port(rest.substr(colon + 1));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
      unsigned char buf[16];
      if (inet_pton(AF_INET6, host.c_str(), buf) != 1) throw BadValue{"'" + host + "' is not an IPv6 address"};
    } else {
      unsigned char buf[4];
      if (inet_pton(AF_INET, host.c_str(), buf) != 1)
        throw BadValue{"HOST must be an IPv4 address or [IPv6 address]"};
    }
    return std::string(v);
  }
  throw BadValue{"expected unix:/PATH or inet:HOST:PORT"};
}

// The metrics endpoint: a numeric address (what is bound must not depend on DNS) and a port.
std::string metrics_listen(std::string_view v) {
  if (v.empty()) return {};
  std::string why;
  if (!metrics::parse_listen(std::string(v), nullptr, &why)) throw BadValue{why};
  return std::string(v);
}

// A `source =` of mta-sts-reportd: "postfix-log:/PATH", "sendmail-log:/PATH",
// "tlsrpt-socket:/PATH" or "journal".
std::string report_source(std::string_view v) {
  if (v == "journal") return std::string(v);
  for (std::string_view kind : {"postfix-log:", "sendmail-log:", "tlsrpt-socket:"}) {
    if (!v.starts_with(kind)) continue;
    const std::string_view path = v.substr(kind.size());
    if (!path.starts_with("/")) throw BadValue{"needs an absolute path after '" + std::string(kind) + "'"};
    if (kind == "tlsrpt-socket:" && path.size() > 100) throw BadValue{"unix socket path longer than 100 characters"};
    return word(v, false, 1024);
  }
  throw BadValue{"expected postfix-log:/PATH, sendmail-log:/PATH, tlsrpt-socket:/PATH or journal"};
}

// An addr-spec for report mail: local@domain, printable ASCII, no header-breaking characters.
std::string mail_address(std::string_view v) {
  if (v.empty()) return {};
  const auto at = v.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == v.size()) throw BadValue{"expected local-part@domain"};
  if (v.size() > 254) throw BadValue{"longer than 254 characters"};
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127 || c == '<' || c == '>' || c == ',' || c == ';' || c == '"' || c == '(' || c == ')' ||
        c == '\\' || c == '[' || c == ']')
      throw BadValue{"not a plain address (no spaces, quotes, brackets, commas or control characters)"};
  }
  return std::string(v);
}

// One line of text that goes into a report or a mail header: no control characters.
std::string report_text(std::string_view v) {
  if (v.size() > 256) throw BadValue{"longer than 256 characters"};
  return text(v);
}

TlsmapAction tlsmap_action(std::string_view v) {
  return choice(v, {"accept", "defer"}) == "accept" ? TlsmapAction::accept : TlsmapAction::defer;
}

// ---- the table ----------------------------------------------------------------------------
struct Option {
  const char* section;
  const char* key;
  const char* def;      // default, as it would be written in the file
  const char* metavar;  // for usage()
  const char* help;
  void (*apply)(Config&, std::string_view section, std::string_view value);
  bool repeat = false;
  bool flag = false;  // boolean: "--KEY" alone on the command line means yes
};

using S = std::string_view;

// The options every daemon has, the same in its own section: they land in DaemonConfig.
std::vector<Option> daemon_options(const char* section, const char* user_help) {
  return {
      {section, "daemonize", "no", "BOOL", "detach into the background",
       [](Config& c, S s, S v) { daemon_of(c, s).daemonize = boolean(v); }, false, true},
      {section, "pid-file", "", "FILE", "write the process id to FILE",
       [](Config& c, S s, S v) { daemon_of(c, s).pid_file = text(v); }},
      {section, "user", "", "USER", user_help,
       [](Config& c, S s, S v) { daemon_of(c, s).user = word(v); }},
      {section, "group", "", "GROUP", "group to run as (default: USER's primary group)",
       [](Config& c, S s, S v) { daemon_of(c, s).group = word(v); }},
      {section, "log", "syslog", "syslog|stderr", "where to log",
       [](Config& c, S s, S v) { daemon_of(c, s).log = log_target(v); }},
      {section, "log-level", "info", "LEVEL", "least important level logged: debug, info, notice, warning, error",
       [](Config& c, S s, S v) { daemon_of(c, s).log_level = log_level(v); }},
      {section, "log-facility", "mail", "FACILITY", "syslog facility",
       [](Config& c, S s, S v) { daemon_of(c, s).log_facility = log_facility(v); }},
      {section, "metrics-listen", "", "HOST:PORT",
       "serve Prometheus metrics at http://HOST:PORT/metrics (IPv4 or [IPv6] address; empty: off)",
       [](Config& c, S s, S v) { daemon_of(c, s).metrics_listen = metrics_listen(v); }},
  };
}

Program program_of_section(std::string_view section) {
  for (Program p : kAllPrograms)
    if (section == to_string(p)) return p;
  throw std::logic_error("no program has the section [" + std::string(section) + "]");
}

// Every program's own Redis ACL user. The keys begin with "redis-acl-" so that on the command
// line they cannot be confused with `--redis-KEY`, which sets [redis] KEY for every program.
// A new program adds `add(redis_acl_options("SECTION"))` to the table (and its needs to
// redis_needs() in redis_check.cpp).
std::vector<Option> redis_acl_options(const char* section) {
  return {
      {section, "redis-acl-user", "", "USER", "this program's Redis ACL user; replaces [redis] user",
       [](Config& c, S s, S v) { c.redis_acl[program_of_section(s)].user = word(v); }},
      {section, "redis-acl-password-file", "", "FILE",
       "file holding the password of redis-acl-user; replaces [redis] password and password-file",
       [](Config& c, S s, S v) { c.redis_acl[program_of_section(s)].password_file = text(v); }},
  };
}

const std::vector<Option>& table() {
  static const std::vector<Option> t = [] {
    std::vector<Option> rows = {
      // [redis]
      {"redis", "address", "127.0.0.1:6379", "ADDR", "Redis server: HOST:PORT, [IPV6]:PORT, HOST or unix:/PATH",
       [](Config& c, S, S v) { c.redis.redis.address = redis_address(v); }},
      {"redis", "sentinel", "", "HOST:PORT", "Redis Sentinel to ask for the primary (repeatable; replaces address)",
       [](Config& c, S, S v) {
         if (v.empty()) return;  // "sentinel =": none (as the example file has it)
         const std::string a = redis_address(v);
         if (a.starts_with("unix:") || a.starts_with("/")) throw BadValue{"a sentinel is HOST:PORT"};
         c.redis.redis.sentinels.push_back(a);
       }, true},
      {"redis", "master-name", "", "NAME", "name the sentinels monitor the primary under (with sentinel)",
       [](Config& c, S, S v) { c.redis.redis.master_name = word(v, true, 128); }},
      {"redis", "read-from", "primary", "primary|replica", "where the milter and mta-sts-tlsmap read entries",
       [](Config& c, S, S v) { c.redis.read_from_replica = choice(v, {"primary", "replica"}) == "replica"; }},
      {"redis", "replica", "", "ADDR", "replica to read from with read-from = replica (none: ask the sentinels)",
       [](Config& c, S, S v) { c.redis.redis.replica_address = v.empty() ? std::string{} : redis_address(v); }},
      {"redis", "user", "", "USER", "Redis ACL user (empty: the default user)",
       [](Config& c, S, S v) { c.redis.redis.user = word(v); }},
      {"redis", "password", "", "PASSWORD", "Redis password (prefer password-file)",
       [](Config& c, S, S v) { c.redis.redis.password = text(v); }},
      {"redis", "password-file", "", "FILE", "file holding the Redis password; overrides password",
       [](Config& c, S, S v) { c.redis.password_file = text(v); }},
      {"redis", "db", "0", "N", "Redis database number (0-15)",
       [](Config& c, S, S v) { c.redis.redis.db = static_cast<int>(number(v, 0, 15)); }},
      {"redis", "connect-timeout", "200ms", "DURATION", "limit on connecting and authenticating (plain number: ms)",
       [](Config& c, S, S v) { c.redis.redis.connect_timeout = ms(v, 1, 60000); }},
      {"redis", "command-timeout", "250ms", "DURATION", "limit on every Redis command (plain number: ms)",
       [](Config& c, S, S v) { c.redis.redis.command_timeout = ms(v, 1, 60000); }},
      {"redis", "pool-size", "8", "N", "Redis connections per process at most (1-1024)",
       [](Config& c, S, S v) { c.redis.redis.pool_size = number(v, 1, 1024); }},
      {"redis", "prefix", "mta-sts:", "PREFIX", "prefix of every Redis key (no spaces)",
       [](Config& c, S, S v) { c.redis.store.prefix = word(v, false, 64); }},
      {"redis", "max-misses", "100000", "N", "bound on the set of signalled misses",
       [](Config& c, S, S v) { c.redis.store.max_misses = number(v, 1, 100'000'000); }},
      {"redis", "max-domains", "1000000", "N", "bound on the refresh schedule",
       [](Config& c, S, S v) { c.redis.store.max_domains = number(v, 1, 1'000'000'000); }},
      {"redis", "retention", "1d", "DURATION", "how long an entry outlives its expiry in Redis (plain number: s)",
       [](Config& c, S, S v) { c.redis.store.retention = secs(v, 0, 365 * kDay); }},
      {"redis", "clock-skew-warning", "10s", "DURATION", "warn when this host's clock is off the Redis clock by more (plain number: s)",
       [](Config& c, S, S v) { c.redis.clock_skew_warning = secs(v, 1, kDay); }},
      {"redis", "clock-skew-limit", "1h", "DURATION",
       "refuse the Redis clock when it is off this host's clock by more (plain number: s)",
       [](Config& c, S, S v) { c.redis.clock_skew_limit = secs(v, 1, 30 * kDay); }}
    };
    const auto add = [&rows](std::vector<Option> more) { rows.insert(rows.end(), more.begin(), more.end()); };
    add(daemon_options("milter", "drop privileges to USER after opening the socket"));
    add(redis_acl_options("milter"));
    add({
      // [milter]
      {"milter", "socket", "inet:8462@127.0.0.1", "SOCKET",
       "milter socket: unix:PATH, inet:PORT@HOST or inet6:PORT@HOST",
       [](Config& c, S, S v) { c.milter.socket = milter_socket(v); }},
      {"milter", "socket-mode", "0660", "MODE", "permissions of a unix socket (octal)",
       [](Config& c, S, S v) { c.milter.socket_mode = octal(v, 0777); }},
      {"milter", "header-name", "X-MTA-STS", "NAME", "name of the header field added to messages",
       [](Config& c, S, S v) { c.milter.header_name = header_name(v); }},
      {"milter", "redis-budget", "50ms", "DURATION", "longest wait on Redis per lookup (plain number: ms)",
       [](Config& c, S, S v) { c.milter.redis_budget = ms(v, 1, 10000); }},
      {"milter", "local-cache-ttl", "60s", "DURATION", "how long a local entry is used without re-reading Redis, never past expiry; 0: always re-read; entries are held until they expire (plain number: s)",
       [](Config& c, S, S v) { c.milter.local_cache_ttl = secs(v, 0, kDay); }},
      {"milter", "local-cache-size", "100000", "N", "entries in the in-process cache, held copies included (1-10000000)",
       [](Config& c, S, S v) { c.milter.local_cache_size = number(v, 1, 10'000'000); }},
      {"milter", "miss-wait", "0", "DURATION", "wait for a signalled miss to be filled; 0: no wait (plain number: ms)",
       [](Config& c, S, S v) { c.milter.miss_wait = ms(v, 0, 10000); }},
      {"milter", "on-unknown", "accept", "accept|tempfail", "action when a domain's policy is not yet known and none is held",
       [](Config& c, S, S v) { c.milter.on_unknown = on_failure(v); }},
      {"milter", "on-redis-error", "accept", "accept|tempfail", "action when Redis is unreachable or too slow and no policy is held",
       [](Config& c, S, S v) { c.milter.on_redis_error = on_failure(v); }},
      {"milter", "honor-tls-required", "yes", "BOOL", "do not tag messages with \"TLS-Required: No\" (RFC 8689)",
       [](Config& c, S, S v) { c.milter.honor_tls_required = boolean(v); }, false, true},
      {"milter", "milter-timeout", "7210s", "DURATION", "libmilter's timeout talking to the MTA (plain number: s)",
       [](Config& c, S, S v) { c.milter.milter_timeout = static_cast<unsigned>(secs(v, 1, kDay).count()); }}
    });
    add(daemon_options("cached", "drop privileges to USER"));
    add(redis_acl_options("cached"));
    add({
      // [cached]
      {"cached", "resolver", "", "ADDR[:PORT]", "DNS resolver (repeatable; none: /etc/resolv.conf)",
       [](Config& c, S s, S v) { resolvers_of(c, s).push_back(resolver(v)); }, true},
      {"cached", "dns-timeout", "2000ms", "DURATION", "limit on one DNS query attempt (plain number: ms)",
       [](Config& c, S, S v) { c.cached.dns_timeout = ms(v, 10, 60000); }},
      {"cached", "dns-retries", "2", "N", "DNS retries after a timeout (0-10)",
       [](Config& c, S, S v) { c.cached.dns_retries = static_cast<unsigned>(number(v, 0, 10)); }},
      {"cached", "ca-file", "", "FILE", "trusted CA certificates, replacing the system store",
       [](Config& c, S, S v) { c.cached.ca_file = text(v); }},
      {"cached", "proxy", "", "URL", "HTTPS proxy (empty: none; the environment is ignored)",
       [](Config& c, S, S v) { c.cached.proxy = proxy_url(v); }},
      {"cached", "global-addresses-only", "yes", "BOOL", "refuse policy hosts at loopback, private, link-local or other non-global addresses",
       [](Config& c, S, S v) { c.cached.global_addresses_only = boolean(v); }},
      {"cached", "fetch-timeout", "60s", "DURATION", "limit on one policy fetch (plain number: s)",
       [](Config& c, S, S v) { c.cached.fetch_timeout = secs(v, 1, 300); }},
      {"cached", "connect-timeout", "10s", "DURATION", "limit on the TCP and TLS connect of a fetch (plain number: s)",
       [](Config& c, S, S v) { c.cached.connect_timeout = secs(v, 1, 300); }},
      {"cached", "concurrency", "32", "N", "discoveries in flight (1-4096)",
       [](Config& c, S, S v) { c.cached.concurrency = static_cast<unsigned>(number(v, 1, 4096)); }},
      {"cached", "refresh-share", "25", "PERCENT", "share of concurrency kept for due refreshes, so that misses cannot starve them (0-100)",
       [](Config& c, S, S v) { c.cached.refresh_share = static_cast<unsigned>(number(v, 0, 100)); }},
      {"cached", "forget-after", "30d", "DURATION", "stop refreshing a domain nobody looked up this long (plain number: s)",
       [](Config& c, S, S v) { c.cached.forget_after = secs(v, kHour, 3650 * kDay); }},
      {"cached", "warm-list", "", "FILE", "file of domains to keep warm, one per line",
       [](Config& c, S, S v) { c.cached.warm_list = text(v); }},
      {"cached", "warm-interval", "1h", "DURATION", "how often the warm list is read again (plain number: s)",
       [](Config& c, S, S v) { c.cached.warm_interval = secs(v, kMinute, 7 * kDay); }},
      {"cached", "refresh-interval", "1d", "DURATION", "re-check DNS and re-fetch every policy at least this often (plain number: s)",
       [](Config& c, S, S v) { c.cached.refresh_interval = secs(v, kMinute, kDay); }},
      {"cached", "negative-ttl", "1h", "DURATION", "life of a \"no policy\" entry (plain number: s)",
       [](Config& c, S, S v) { c.cached.negative_ttl = secs(v, kMinute, kDay); }},
      {"cached", "min-backoff", "5m", "DURATION", "first retry delay after a failure, at least 5m (plain number: s)",
       [](Config& c, S, S v) { c.cached.min_backoff = secs(v, 300, kDay); }},
      {"cached", "max-backoff", "1h", "DURATION", "longest retry delay after repeated failures (plain number: s)",
       [](Config& c, S, S v) { c.cached.max_backoff = secs(v, 300, 7 * kDay); }},
      {"cached", "expiry-margin", "1h", "DURATION", "refresh a policy this long before it expires (plain number: s)",
       [](Config& c, S, S v) { c.cached.expiry_margin = secs(v, 0, 7 * kDay); }},
      {"cached", "refresh-jitter", "10", "PERCENT", "random spread of refresh times (0-50)",
       [](Config& c, S, S v) { c.cached.refresh_jitter = static_cast<unsigned>(number(v, 0, 50)); }},
      {"cached", "lock-ttl", "3m", "DURATION", "how long a dead fetcher's claim outlives it; renewed while working (plain number: s)",
       [](Config& c, S, S v) { c.cached.lock_ttl = secs(v, 2, kHour); }},
      {"cached", "poll-interval", "200ms", "DURATION", "how often to look for signalled misses (plain number: ms)",
       [](Config& c, S, S v) { c.cached.poll_interval = ms(v, 10, 60000); }},
      {"cached", "stats-interval", "5m", "DURATION", "how often counters are logged and published (plain number: s)",
       [](Config& c, S, S v) { c.cached.stats_interval = secs(v, 10, kDay); }},
      {"cached", "shutdown-timeout", "15s", "DURATION", "on SIGTERM, time allowed to finish work in flight (plain number: s)",
       [](Config& c, S, S v) { c.cached.shutdown_timeout = secs(v, 1, 300); }},
      {"cached", "failure-alert", "3", "N", "warn after this many failed refreshes in a row (1-1000)",
       [](Config& c, S, S v) { c.cached.failure_alert = static_cast<unsigned>(number(v, 1, 1000)); }},
      {"cached", "fetcher-id", "", "ID", "this fetcher's name in Redis (default: the host name)",
       [](Config& c, S, S v) { c.cached.fetcher_id = word(v, true, 128); }}
    });
    add(redis_acl_options("ctl"));
    add(daemon_options("tlsmap", "drop privileges to USER after opening the sockets"));
    add(redis_acl_options("tlsmap"));
    add({
      // [tlsmap]
      {"tlsmap", "listen", "inet:127.0.0.1:8461", "ADDR", "socketmap address: unix:/PATH or inet:HOST:PORT (repeatable)",
       [](Config& c, S, S v) { c.tlsmap.listen.push_back(tlsmap_listen(v)); }, true},
      {"tlsmap", "socket-mode", "0666", "MODE", "permissions of a unix socket (octal)",
       [](Config& c, S, S v) { c.tlsmap.socket_mode = octal(v, 0777); }},
      {"tlsmap", "redis-budget", "100ms", "DURATION", "longest wait on Redis per lookup (plain number: ms)",
       [](Config& c, S, S v) { c.tlsmap.redis_budget = ms(v, 1, 10000); }},
      {"tlsmap", "local-cache-ttl", "60s", "DURATION", "how long a local entry is used without re-reading Redis, never past expiry; 0: always re-read; entries are held until they expire (plain number: s)",
       [](Config& c, S, S v) { c.tlsmap.local_cache_ttl = secs(v, 0, kDay); }},
      {"tlsmap", "local-cache-size", "100000", "N", "entries in the in-process cache, held copies included (1-10000000)",
       [](Config& c, S, S v) { c.tlsmap.local_cache_size = number(v, 1, 10'000'000); }},
      {"tlsmap", "miss-wait", "0", "DURATION", "wait for a signalled miss to be filled; 0: no wait (plain number: ms)",
       [](Config& c, S, S v) { c.tlsmap.miss_wait = ms(v, 0, 30000); }},
      {"tlsmap", "on-unknown", "accept", "accept|defer", "reply when a domain's policy is not yet known (accept: NOTFOUND, defer: TEMP)",
       [](Config& c, S, S v) { c.tlsmap.on_unknown = tlsmap_action(v); }},
      {"tlsmap", "on-redis-error", "accept", "accept|defer", "reply when Redis cannot answer and nothing usable is held locally",
       [](Config& c, S, S v) { c.tlsmap.on_redis_error = tlsmap_action(v); }},
      {"tlsmap", "strict-testing", "no", "BOOL", "enforce policies in mode testing too",
       [](Config& c, S, S v) { c.tlsmap.strict_testing = boolean(v); }, false, true},
      {"tlsmap", "idle-timeout", "5m", "DURATION", "close a client connection idle this long (plain number: s)",
       [](Config& c, S, S v) { c.tlsmap.idle_timeout = secs(v, 1, kDay); }},
      {"tlsmap", "request-timeout", "10s", "DURATION", "close a client that takes longer to send a request or to read a reply (plain number: s)",
       [](Config& c, S, S v) { c.tlsmap.request_timeout = secs(v, 1, 3600); }},
      {"tlsmap", "workers", "8", "N", "threads for lookups that may wait on Redis (1-256)",
       [](Config& c, S, S v) { c.tlsmap.workers = static_cast<unsigned>(number(v, 1, 256)); }},
      {"tlsmap", "dns-workers", "8", "N", "threads for the part of lookups that waits on DNS (1-256)",
       [](Config& c, S, S v) { c.tlsmap.dns_workers = static_cast<unsigned>(number(v, 1, 256)); }},
      {"tlsmap", "queue-size", "4096", "N", "lookups waiting for a worker at most; beyond, TEMP (1-1000000)",
       [](Config& c, S, S v) { c.tlsmap.queue_size = number(v, 1, 1'000'000); }},
      {"tlsmap", "max-connections", "4096", "N", "client connections at once (1-1000000)",
       [](Config& c, S, S v) { c.tlsmap.max_connections = number(v, 1, 1'000'000); }},
      {"tlsmap", "resolver", "", "ADDR[:PORT]", "DNS resolver for MX and TLSA lookups (repeatable; none: /etc/resolv.conf)",
       [](Config& c, S s, S v) { resolvers_of(c, s).push_back(resolver(v)); }, true},
      {"tlsmap", "dns-timeout", "2000ms", "DURATION", "limit on one DNS query attempt (plain number: ms)",
       [](Config& c, S, S v) { c.tlsmap.dns_timeout = ms(v, 10, 60000); }},
      {"tlsmap", "dns-retries", "1", "N", "extra rounds over the resolvers after a timeout (0-5)",
       [](Config& c, S, S v) { c.tlsmap.dns_retries = static_cast<unsigned>(number(v, 0, 5)); }},
      {"tlsmap", "mx-cache-ttl", "5m", "DURATION", "longest life of a cached MX set, below its DNS TTL (plain number: s)",
       [](Config& c, S, S v) { c.tlsmap.mx_cache_ttl = secs(v, 0, kDay); }},
      {"tlsmap", "mx-cache-size", "100000", "N", "domains whose MX set is cached",
       [](Config& c, S, S v) { c.tlsmap.mx_cache_size = number(v, 0, 10'000'000); }},
      {"tlsmap", "dane", "yes", "BOOL", "answer dane-only for domains whose every MX host has usable DNSSEC-validated TLSA records",
       [](Config& c, S, S v) { c.tlsmap.dane = boolean(v); }, false, true},
      {"tlsmap", "dane-trusted-resolver", "", "ADDR[:PORT]",
       "a resolver not on loopback whose AD bit DANE may trust (repeatable; the path to it must be protected)",
       [](Config& c, S, S v) { c.tlsmap.dane_trusted_resolvers.push_back(resolver(v)); }, true},
      {"tlsmap", "dane-probe-name", ".", "NAME", "name in a signed zone the resolver must validate at start for DANE to be used",
       [](Config& c, S, S v) { c.tlsmap.dane_probe_name = dns_name(v); }}
    });
    add(daemon_options("reportd", "drop privileges to USER after opening the datagram socket"));
    add(redis_acl_options("reportd"));
    add({
      // [reportd]
      {"reportd", "source", "", "SOURCE",
       "where TLS outcomes come from (repeatable): postfix-log:/PATH, sendmail-log:/PATH, tlsrpt-socket:/PATH, journal",
       [](Config& c, S, S v) {
         if (!v.empty()) c.reportd.sources.push_back(report_source(v));
       }, true},
      {"reportd", "state-directory", "/var/lib/mta-sts-reportd", "DIR", "where log positions and unsent batches are kept",
       [](Config& c, S, S v) {
         if (!v.starts_with("/")) throw BadValue{"needs an absolute path"};
         c.reportd.state_directory = text(v);
       }},
      {"reportd", "host-id", "", "ID", "this host's name in Redis (default: the host name)",
       [](Config& c, S, S v) { c.reportd.host_id = word(v, true, 128); }},
      {"reportd", "sending-mta-ip", "", "IP", "this host's sending address, reported when the log does not say",
       [](Config& c, S, S v) {
         if (!v.empty() && !is_ip(std::string(v))) throw BadValue{"not an IPv4 or IPv6 address"};
         c.reportd.sending_mta_ip = std::string(v);
       }},
      {"reportd", "flush-interval", "30s", "DURATION", "how often counts go to Redis (plain number: s)",
       [](Config& c, S, S v) { c.reportd.flush_interval = secs(v, 1, 3600); }},
      {"reportd", "send", "no", "BOOL", "this host takes part in sending the fleet's reports",
       [](Config& c, S, S v) { c.reportd.send = boolean(v); }},
      {"reportd", "organization-name", "", "TEXT", "organization-name of the reports (needed to send)",
       [](Config& c, S, S v) { c.reportd.organization_name = report_text(v); }},
      {"reportd", "contact-info", "", "ADDRESS", "contact-info of the reports (needed to send)",
       [](Config& c, S, S v) { c.reportd.contact_info = report_text(v); }},
      {"reportd", "submitter", "", "DOMAIN", "the reports' submitter (default: the domain of contact-info)",
       [](Config& c, S, S v) { c.reportd.submitter = v.empty() ? std::string{} : lower(dns_name(v)); }},
      {"reportd", "sender-address", "", "ADDRESS",
       "envelope sender and From: of report mail; its sessions are never counted (default: noreply-tlsrpt@SUBMITTER)",
       [](Config& c, S, S v) { c.reportd.sender_address = mail_address(v); }},
      {"reportd", "sendmail-command", "/usr/sbin/sendmail -i", "COMMAND",
       "command that submits report mail to the local MTA (no shell; -f and the recipient are added)",
       [](Config& c, S, S v) {
         if (!v.starts_with("/")) throw BadValue{"needs an absolute path to the program"};
         c.reportd.sendmail_command = text(v);
       }},
      {"reportd", "only-failures", "no", "BOOL", "send a report only when the day had failures",
       [](Config& c, S, S v) { c.reportd.only_failures = boolean(v); }},
      {"reportd", "exclude", "", "DOMAIN", "a domain never reported to (repeatable)",
       [](Config& c, S, S v) {
         if (!v.empty()) c.reportd.exclude.push_back(lower(dns_name(v)));
       }, true},
      {"reportd", "send-delay-max", "1h", "DURATION",
       "reports go out at a random time this long after 00:00 UTC at most (plain number: s)",
       [](Config& c, S, S v) { c.reportd.send_delay_max = secs(v, 0, 12 * 3600); }},
      {"reportd", "ca-file", "", "FILE", "trusted CA certificates for https: report URIs, replacing the system store",
       [](Config& c, S, S v) { c.reportd.ca_file = text(v); }},
      {"reportd", "https-timeout", "60s", "DURATION", "limit on one https: report upload (plain number: s)",
       [](Config& c, S, S v) { c.reportd.https_timeout = secs(v, 1, 600); }},
      {"reportd", "resolver", "", "ADDR[:PORT]", "DNS resolver for _smtp._tls records (repeatable; none: /etc/resolv.conf)",
       [](Config& c, S s, S v) { resolvers_of(c, s).push_back(resolver(v)); }, true},
      {"reportd", "dns-timeout", "2000ms", "DURATION", "limit on one DNS query attempt (plain number: ms)",
       [](Config& c, S, S v) { c.reportd.dns_timeout = ms(v, 10, 60000); }},
      {"reportd", "keep", "8d", "DURATION", "how long a day's counts stay in Redis (plain number: s)",
       [](Config& c, S, S v) { c.reportd.keep = secs(v, 2 * kDay, 60 * kDay); }},
      {"reportd", "max-failure-details", "1000", "N", "distinct failure details kept per day, domain and policy",
       [](Config& c, S, S v) { c.reportd.max_failure_details = number(v, 1, 100000); }}
    });
    add({
      // [ctl]
      {"ctl", "resolver", "", "ADDR[:PORT]", "DNS resolver for query (repeatable; none: /etc/resolv.conf)",
       [](Config& c, S s, S v) { resolvers_of(c, s).push_back(resolver(v)); }, true},
      {"ctl", "ca-file", "", "FILE", "trusted CA certificates for query, replacing the system store",
       [](Config& c, S, S v) { c.ctl.ca_file = text(v); }},
      {"ctl", "fetch-timeout", "30s", "DURATION", "limit on the policy fetch of query (plain number: s)",
       [](Config& c, S, S v) { c.ctl.fetch_timeout = secs(v, 1, 300); }},
      {"ctl", "dns-timeout", "2000ms", "DURATION", "limit on one DNS query attempt (plain number: ms)",
       [](Config& c, S, S v) { c.ctl.dns_timeout = ms(v, 10, 60000); }}
    });
    return rows;
  }();
  return t;
}

const Option* find_option(std::string_view section, std::string_view key) {
  for (const auto& o : table())
    if (section == o.section && key == o.key) return &o;
  return nullptr;
}

bool is_section(std::string_view s) {
  if (s == "redis") return true;
  for (Program p : kAllPrograms)
    if (s == to_string(p)) return true;
  return false;
}

// "[redis], [milter], [cached] or [ctl]"
std::string section_list() {
  std::string out = "[redis]";
  for (std::size_t i = 0; i < std::size(kAllPrograms); ++i)
    out += std::string(i + 1 == std::size(kAllPrograms) ? " or [" : ", [") + to_string(kAllPrograms[i]) + "]";
  return out;
}

// Where each value came from, for cross-option errors ("FILE:LINE" or "--option").
using Origins = std::map<std::string, std::string>;

std::string full_key(const Option& o) { return std::string(o.section) + "." + o.key; }

// The value as shown in an error; a password is never echoed.
std::string quoted(const Option& o, std::string_view value) {
  if (std::string_view(o.key) == "password") return "(not shown)";
  return "'" + std::string(value) + "'";
}

// ---- the INI reader -----------------------------------------------------------------------
std::string trim(std::string_view s) {
  const auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return std::string(s);
}

std::string errno_text(int e) { return std::strerror(e); }

void read_file(const std::string& path, Config& cfg, Origins& origins) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read: " + errno_text(errno));
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw ConfigError(path + ": is a directory");
  std::string section;
  std::string line;
  std::size_t line_no = 0;
  std::map<std::string, std::size_t> seen;  // "section.key" -> first line
  while (std::getline(in, line)) {
    ++line_no;
    if (line_no == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);  // a UTF-8 BOM from an editor
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    const std::string l = trim(line);
    if (l.empty() || l.front() == '#' || l.front() == ';') continue;
    if (l.front() == '[') {
      if (l.back() != ']') throw ConfigError(where + "expected '[section]'");
      section = trim(std::string_view(l).substr(1, l.size() - 2));
      if (!is_section(section))
        throw ConfigError(where + "unknown section [" + section + "] (expected " + section_list() + ")");
      continue;
    }
    const auto eq = l.find('=');
    if (eq == std::string::npos) throw ConfigError(where + "expected 'key = value'");
    const std::string key = trim(std::string_view(l).substr(0, eq));
    const std::string value = trim(std::string_view(l).substr(eq + 1));
    if (section.empty()) throw ConfigError(where + "'" + key + "' is outside any [section]");
    if (key.empty()) throw ConfigError(where + "missing option name before '='");
    const Option* o = find_option(section, key);
    if (!o) throw ConfigError(where + "unknown option '" + key + "' in [" + section + "]");
    auto [it, fresh] = seen.try_emplace(full_key(*o), line_no);
    if (!fresh && !o->repeat)
      throw ConfigError(where + "'" + key + "' repeated in [" + section + "] (first set on line " +
                        std::to_string(it->second) + ")");
    try {
      o->apply(cfg, o->section, value);
    } catch (const BadValue& b) {
      throw ConfigError(where + "[" + section + "] " + key + ": bad value " + quoted(*o, value) + ": " + b.message);
    }
    origins[full_key(*o)] = path + ":" + std::to_string(line_no);
  }
  if (in.bad()) throw ConfigError(path + ": read error");
}

// ---- after all values are in --------------------------------------------------------------
std::string origin_of(const Origins& origins, const std::string& key, const std::string& fallback) {
  auto it = origins.find(key);
  return it != origins.end() ? it->second : fallback;
}

bool from_command_line(const Origins& origins, const std::string& key) {
  auto it = origins.find(key);
  return it != origins.end() && it->second.starts_with("--");
}

// Folds `program`'s own Redis user and password file into [redis]. Within one layer the
// program's own value wins; a command-line value wins over any value from the file, so
// `--redis-user X` still means X although the file names an ACL user for the program.
void apply_program_credentials(Config& cfg, Origins& origins, Program program) {
  auto it = cfg.redis_acl.find(program);
  if (it == cfg.redis_acl.end()) return;
  const RedisCredentials& own = it->second;
  const std::string section = to_string(program);
  const std::string user_key = section + ".redis-acl-user", file_key = section + ".redis-acl-password-file";
  if (!own.user.empty() && (!from_command_line(origins, "redis.user") || from_command_line(origins, user_key))) {
    cfg.redis.redis.user = own.user;
    origins["redis.user"] = origins[user_key];
  }
  const bool shared_pw_cli =
      from_command_line(origins, "redis.password") || from_command_line(origins, "redis.password-file");
  if (!own.password_file.empty() && (!shared_pw_cli || from_command_line(origins, file_key))) {
    cfg.redis.password_file = own.password_file;
    cfg.redis.redis.password.clear();
    origins["redis.password-file"] = origins[file_key];
  }
}

void read_password_file(Config& cfg, const Origins& origins, const std::string& path_hint) {
  const std::string& pf = cfg.redis.password_file;
  if (pf.empty()) return;
  const std::string where = origin_of(origins, "redis.password-file", path_hint);
  std::ifstream in(pf, std::ios::binary);
  if (!in) throw ConfigError(where + ": password-file " + pf + ": cannot read: " + errno_text(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string pw = ss.str();
  while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r')) pw.pop_back();
  if (pw.empty()) throw ConfigError(where + ": password-file " + pf + " is empty");
  if (pw.find('\n') != std::string::npos) throw ConfigError(where + ": password-file " + pf + " has more than one line");
  cfg.redis.redis.password = pw;
}

// The domain of an address ("mailto:" and angle brackets allowed around it), "" when none.
std::string domain_of_address(std::string_view a) {
  if (a.starts_with("mailto:")) a.remove_prefix(7);
  while (!a.empty() && (a.back() == '>' || a.back() == ' ')) a.remove_suffix(1);
  const auto at = a.rfind('@');
  if (at == std::string_view::npos) return {};
  try {
    return lower(dns_name(a.substr(at + 1)));
  } catch (const BadValue&) {
    return {};
  }
}

// Defaults that follow from other values: [reportd] submitter from contact-info, and
// sender-address from the submitter.
void derive_defaults(Config& cfg) {
  ReportdConfig& r = cfg.reportd;
  if (r.submitter.empty()) r.submitter = domain_of_address(r.contact_info);
  if (r.sender_address.empty() && !r.submitter.empty()) r.sender_address = "noreply-tlsrpt@" + r.submitter;
}

void cross_check(const Config& cfg, const Origins& origins, const std::string& path_hint) {
  auto where = [&](const char* key) { return origin_of(origins, key, path_hint.empty() ? "configuration" : path_hint); };
  const ReportdConfig& rd = cfg.reportd;
  if (rd.send && (rd.organization_name.empty() || rd.contact_info.empty()))
    throw ConfigError(where("reportd.send") + ": [reportd] send = yes needs organization-name and contact-info");
  if (rd.send && rd.submitter.empty())
    throw ConfigError(where("reportd.send") +
                      ": [reportd] send = yes needs submitter (contact-info has no domain to take it from)");
  const RedisConfig& r = cfg.redis;
  if (!r.redis.sentinels.empty() && r.redis.master_name.empty())
    throw ConfigError(where("redis.sentinel") + ": [redis] sentinel needs master-name");
  if (r.redis.sentinels.empty() && !r.redis.master_name.empty())
    throw ConfigError(where("redis.master-name") + ": [redis] master-name needs at least one sentinel");
  if (r.read_from_replica && r.redis.sentinels.empty() && r.redis.replica_address.empty())
    throw ConfigError(where("redis.read-from") + ": [redis] read-from = replica needs sentinel or replica");
  const CachedConfig& c = cfg.cached;
  if (c.max_backoff < c.min_backoff)
    throw ConfigError(where("cached.max-backoff") + ": [cached] max-backoff (" + duration_text(c.max_backoff) +
                      ") must not be less than min-backoff (" + duration_text(c.min_backoff) + ")");
  if (c.connect_timeout > c.fetch_timeout)
    throw ConfigError(where("cached.connect-timeout") + ": [cached] connect-timeout (" +
                      duration_text(c.connect_timeout) + ") must not exceed fetch-timeout (" +
                      duration_text(c.fetch_timeout) + ")");
}

Config defaults() {
  Config cfg;
  for (const auto& o : table()) {
    if (o.repeat) continue;  // a list's default is empty
    o.apply(cfg, o.section, o.def);
  }
  return cfg;
}

// The options of `program` on the command line, with the Option each one sets.
struct CliOption {
  std::string name;  // without "--"
  const Option* opt;
};

std::vector<CliOption> cli_options(Program program) {
  std::vector<CliOption> out;
  const std::string own = to_string(program);
  for (const auto& o : table()) {
    if (o.section == own) out.push_back({o.key, &o});
  }
  for (const auto& o : table()) {
    if (std::string_view(o.section) == "redis") out.push_back({std::string("redis-") + o.key, &o});
  }
  // A program key named like "redis-KEY" of [redis] would make one command-line name mean two
  // options: the table must never allow it.
  std::set<std::string> names;
  for (const auto& c : out)
    if (!names.insert(c.name).second) throw std::logic_error("option --" + c.name + " is ambiguous");
  return out;
}

}  // namespace

// ---- public API ---------------------------------------------------------------------------
Config load_config_file(const std::string& path) {
  Config cfg = defaults();
  Origins origins;
  read_file(path, cfg, origins);
  cfg.path = path;
  derive_defaults(cfg);
  read_password_file(cfg, origins, path);
  cross_check(cfg, origins, path);
  return cfg;
}

Config load_config(Program program, int argc, const char* const* argv, CommandLine* cl_out) {
  CommandLine cl;
  const auto options = cli_options(program);

  po::options_description desc;
  desc.add_options()("config,c", po::value<std::string>(), "")("check,n", "")("check-redis", "")("help,h", "")(
      "version,V", "")(
      "positional-args", po::value<std::vector<std::string>>(), "");
  for (const auto& c : options) {
    if (c.opt->flag)
      desc.add_options()(c.name.c_str(), po::value<std::string>()->implicit_value("yes"), "");
    else if (c.opt->repeat)
      desc.add_options()(c.name.c_str(), po::value<std::vector<std::string>>(), "");
    else
      desc.add_options()(c.name.c_str(), po::value<std::string>(), "");
  }
  po::positional_options_description positional;
  positional.add("positional-args", -1);

  std::vector<po::option> parsed;
  try {
    // No abbreviations: "--sock" must not silently mean "--socket".
    const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    parsed = po::command_line_parser(argc, argv)
                 .options(desc)
                 .positional(positional)
                 .style(style)
                 .run()
                 .options;
  } catch (const po::error& e) {
    throw ConfigError(e.what());  // the caller prefixes the program's name
  }

  std::optional<std::string> config_path;
  std::vector<std::pair<const CliOption*, std::string>> values;
  std::set<std::string> given;
  for (const auto& p : parsed) {
    const std::string& k = p.string_key;
    if (k == "config") {
      if (config_path) throw ConfigError("--config given more than once");
      config_path = p.value.empty() ? std::string() : p.value.front();
      cl.config_explicit = true;
    } else if (k == "check") {
      cl.check = true;
    } else if (k == "check-redis") {
      cl.check_redis = true;
    } else if (k == "help") {
      cl.help = true;
    } else if (k == "version") {
      cl.version = true;
    } else if (k == "positional-args") {
      for (const auto& v : p.value) cl.positional.push_back(v);
    } else {
      auto it = std::find_if(options.begin(), options.end(), [&](const CliOption& c) { return c.name == k; });
      if (it == options.end()) throw ConfigError("--" + k + ": unknown option");
      if (!it->opt->repeat && !given.insert(k).second) throw ConfigError("--" + k + " given more than once");
      values.emplace_back(&*it, p.value.empty() ? std::string("yes") : p.value.front());
    }
  }
  if (program != Program::ctl && !cl.positional.empty())
    throw ConfigError("unexpected argument '" + cl.positional.front() + "'");

  Config cfg = defaults();
  Origins origins;
  if (cl.help || cl.version) {  // nothing else is read: help must work with a broken file
    if (cl_out) *cl_out = std::move(cl);
    return cfg;
  }

  const std::string path = config_path.value_or(kDefaultConfigPath);
  std::error_code ec;
  if (cl.config_explicit || std::filesystem::exists(path, ec)) {
    read_file(path, cfg, origins);
    cfg.path = path;
  }

  std::set<std::string> lists_cleared;  // command-line values of a list replace the file's
  for (const auto& [c, value] : values) {
    const Option& o = *c->opt;
    if (o.repeat && lists_cleared.insert(full_key(o)).second) list_of(cfg, o.section, o.key).clear();
    try {
      o.apply(cfg, o.section, value);
    } catch (const BadValue& b) {
      throw ConfigError("--" + c->name + ": bad value " + quoted(o, value) + ": " + b.message);
    }
    origins[full_key(o)] = "--" + c->name;
  }
  apply_program_credentials(cfg, origins, program);
  derive_defaults(cfg);
  read_password_file(cfg, origins, cfg.path);
  cross_check(cfg, origins, cfg.path);
  if (cl_out) *cl_out = std::move(cl);
  return cfg;
}

std::string usage(Program program) {
  std::ostringstream out;
  out << "Usage: " << program_name(program) << " [OPTIONS]" << (program == Program::ctl ? " COMMAND [ARGS]" : "")
      << "\n\nOptions:\n";
  auto line = [&out](const std::string& left, const std::string& help) {
    out << "  " << left;
    if (left.size() < 34) out << std::string(34 - left.size(), ' ');
    else out << "\n" << std::string(36, ' ');
    out << help << "\n";
  };
  line("-c, --config FILE", std::string("configuration file (default ") + kDefaultConfigPath + ")");
  line("-n, --check", "check the configuration and exit (0: valid); needs no Redis");
  line("--check-redis", "connect to Redis as this program's user, try every command it needs, exit");
  line("-h, --help", "show this help and exit");
  line("-V, --version", "show the version and exit");
  const std::string own = to_string(program);
  bool redis_header = false;
  for (const auto& c : cli_options(program)) {
    const Option& o = *c.opt;
    if (std::string_view(o.section) == "redis" && !redis_header) {
      out << "\nRedis options ([redis] in the file):\n";
      redis_header = true;
    }
    const std::string left = "--" + c.name + (o.flag ? "[=" : " ") + o.metavar + (o.flag ? "]" : "");
    std::string help = o.help;
    if (*o.def) help += std::string(" [") + o.def + "]";
    line(left, help);
  }
  return out.str();
}

std::vector<std::string> option_names(Program program) {
  std::vector<std::string> names{"--config", "--check", "--check-redis", "--help", "--version"};
  for (const auto& c : cli_options(program)) names.push_back("--" + c.name);
  return names;
}

std::vector<std::pair<std::string, std::string>> file_options() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& o : table()) out.emplace_back(full_key(o), o.def);
  return out;
}

}  // namespace mtasts
