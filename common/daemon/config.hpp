// Configuration shared by all programs: one INI file (default /etc/mta-sts/mta-sts.conf) with
// a section per program ([milter], [cached], [ctl], [tlsmap], [reportd]) and a shared [redis] section. Every option
// has its default, bounds and documentation in one table (config.cpp); every option also
// works on the command line: `--KEY` for the program's own section, `--redis-KEY` for [redis].
// Unknown sections, unknown keys and bad values are errors naming the file and line. All
// sections of the file are validated by every program, so a typo is caught by whichever
// program reads the file first. Later command-line values override the file.
// File syntax: "[section]", "key = value", and comments on lines of their own starting with
// '#' or ';'. A value is taken verbatim after trimming blanks (no quoting, no inline comments).
// A repeatable key (resolver, listen) adds one value per line; given on the command line, its values
// replace the file's.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/fleet/redis.hpp"
#include "common/fleet/store.hpp"

namespace mtasts {

inline constexpr const char* kDefaultConfigPath = "/etc/mta-sts/mta-sts.conf";

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;  // what(): "FILE:LINE: message" where known
};

enum class Program { milter, cached, ctl, tlsmap, reportd };
// Every program, for what is done per program (its own Redis user, its --check-redis needs).
inline constexpr Program kAllPrograms[] = {Program::milter, Program::cached, Program::ctl, Program::tlsmap,
                                           Program::reportd};
const char* to_string(Program p) noexcept;  // its section name: "milter", "cached", "ctl", "tlsmap"
const char* program_name(Program p) noexcept;  // "mta-sts-milter", ...

// Exit status of every program (mta-sts-ctl adds 1 for "no" answers of its subcommands).
namespace exit_status {
inline constexpr int ok = 0;
inline constexpr int failure = 1;  // could not start, or failed while running
inline constexpr int config = 2;   // bad configuration or command line (also with --check)
inline constexpr int redis = 3;    // --check-redis: Redis unreachable, WRONGPASS or NOPERM
}  // namespace exit_status

// What every daemon shares.
struct DaemonConfig {
  bool daemonize = false;       // false: stay in the foreground (systemd Type=notify)
  std::string pid_file;         // written when set (always when daemonize)
  std::string user;             // drop privileges to this user after opening sockets
  std::string group;            // default: the user's primary group
  std::string log = "syslog";   // syslog | stderr
  std::string log_level = "info";  // debug | info | notice | warning | error
  std::string log_facility = "mail";
  std::string metrics_listen;   // HOST:PORT of the Prometheus endpoint; empty: none
};

struct RedisConfig {
  RedisOptions redis;            // address, user, password, db, timeouts, pool size
  std::string password_file;     // read at start-up; overrides `password`
  StoreOptions store;            // prefix, max-misses, max-domains, retention
  // read-from = replica: the milter and mta-sts-tlsmap read entries (and subscribe to changes)
  // on a replica; misses and every write go to the primary. The fetcher and ctl ignore it.
  bool read_from_replica = false;
  // Every daemon takes its time from Redis (TIME) and warns when its own clock is off by more.
  Seconds clock_skew_warning{10};
  // ... and refuses the Redis clock when it is off by more than this (issue 19).
  Seconds clock_skew_limit{3600};
};

// A program's own Redis ACL user (`redis-acl-user`, `redis-acl-password-file` in its
// section), so that every program on one host connects as its own user. Each one, when set,
// replaces the [redis] value for that program only; load_config(program) folds the program's
// values into Config::redis.redis, so the rest of the code never looks here.
struct RedisCredentials {
  std::string user;
  std::string password_file;
};

enum class OnFailure { accept, tempfail };

struct MilterConfig {
  DaemonConfig daemon;
  std::string socket = "inet:8462@127.0.0.1";  // libmilter syntax: unix:PATH | inet:PORT@HOST | inet6:...
  unsigned socket_mode = 0660;
  std::string header_name = "X-MTA-STS";
  std::chrono::milliseconds redis_budget{50};        // max wait on Redis per lookup
  std::chrono::seconds local_cache_ttl{60};          // in-process cache life (never past expiry)
  std::size_t local_cache_size = 100000;             // entries
  std::chrono::milliseconds miss_wait{0};            // wait for a signalled miss to be filled
  OnFailure on_unknown = OnFailure::accept;          // policy not yet known
  OnFailure on_redis_error = OnFailure::accept;      // Redis unreachable or too slow
  bool honor_tls_required = true;                    // RFC 8689 "TLS-Required: No"
  unsigned milter_timeout = 7210;                    // smfi_settimeout, seconds
};

struct CachedConfig {
  DaemonConfig daemon;
  std::vector<std::string> resolvers;                // "ADDR" or "ADDR:PORT" / "[V6]:PORT"; empty: /etc/resolv.conf
  std::chrono::milliseconds dns_timeout{2000};       // per query attempt
  unsigned dns_retries = 2;
  std::string ca_file;                               // replaces the system trust store
  bool global_addresses_only = true;                 // refuse non-global policy host addresses
  std::string proxy;                                 // HTTPS proxy URL; empty: none (environment ignored)
  std::chrono::seconds fetch_timeout{60};            // total per HTTPS fetch
  std::chrono::seconds connect_timeout{10};          // TCP+TLS connect part of it
  unsigned concurrency = 32;                         // discoveries in flight
  unsigned refresh_share = 25;                       // percent of concurrency kept for due refreshes
  std::chrono::seconds forget_after{30 * 86400};     // stop refreshing a domain nobody looked up this long
  std::string warm_list;                             // file of domains, one per line
  std::chrono::seconds warm_interval{3600};          // re-read the warm list this often
  std::chrono::seconds refresh_interval{86400};
  std::chrono::seconds negative_ttl{3600};
  std::chrono::seconds min_backoff{300};             // >= 300 (RFC 8461 section 3.3)
  std::chrono::seconds max_backoff{3600};
  std::chrono::seconds expiry_margin{3600};
  unsigned refresh_jitter = 10;                      // percent of the refresh delay
  std::chrono::seconds lock_ttl{180};                // > fetch_timeout + dns time
  std::chrono::milliseconds poll_interval{200};      // how often to look for misses
  std::chrono::seconds stats_interval{300};
  std::chrono::seconds shutdown_timeout{15};         // SIGTERM: finish in-flight work within
  unsigned failure_alert = 3;                        // warn after this many failed refreshes
  std::string fetcher_id;                            // default: the host name
};

// mta-sts-tlsmap: what a delivery gets when the cache cannot give a usable answer.
enum class TlsmapAction { accept, defer };  // accept: NOTFOUND (deliver as before); defer: TEMP

inline constexpr const char* kDefaultTlsmapListen = "inet:127.0.0.1:8461";

struct TlsmapConfig {
  DaemonConfig daemon;
  std::vector<std::string> listen;                   // unix:/PATH | inet:HOST:PORT; empty: kDefaultTlsmapListen
  unsigned socket_mode = 0666;                       // of unix sockets
  std::chrono::milliseconds redis_budget{100};       // max wait on Redis per lookup
  std::chrono::seconds local_cache_ttl{60};          // in-process cache life (never past expiry)
  std::size_t local_cache_size = 100000;             // entries
  std::chrono::milliseconds miss_wait{0};            // wait for a signalled miss to be filled
  TlsmapAction on_unknown = TlsmapAction::accept;    // policy not yet known
  TlsmapAction on_redis_error = TlsmapAction::accept;  // Redis unreachable, nothing usable held locally
  bool strict_testing = false;                       // treat mode testing like enforce
  std::chrono::seconds idle_timeout{300};            // close a client connection idle this long
  std::chrono::seconds request_timeout{10};          // a request's arrival, a reply's reading
  unsigned workers = 8;                              // threads for lookups that may wait on Redis
  unsigned dns_workers = 8;                          // threads for the DNS part of lookups
  std::size_t queue_size = 4096;                     // lookups waiting for a worker, at most
  std::size_t max_connections = 4096;                // client connections at once
  std::vector<std::string> resolvers;                // for MX and TLSA; empty: /etc/resolv.conf
  std::chrono::milliseconds dns_timeout{2000};       // per query attempt
  unsigned dns_retries = 1;
  std::chrono::seconds mx_cache_ttl{300};            // upper bound on the life of a cached MX set
  std::size_t mx_cache_size = 100000;                // domains
  bool dane = true;                                  // look for DNSSEC-validated TLSA records
  std::vector<std::string> dane_trusted_resolvers;   // resolvers off loopback whose AD bit is trusted
  std::string dane_probe_name = ".";                 // must validate (AD) at start for DANE

  std::vector<std::string> listen_or_default() const {
    return listen.empty() ? std::vector<std::string>{kDefaultTlsmapListen} : listen;
  }
};

// mta-sts-reportd (issue 20): TLS-RPT (RFC 8460) for the fleet.
struct ReportdConfig {
  DaemonConfig daemon;
  std::vector<std::string> sources;                  // "postfix-log:PATH", "sendmail-log:PATH", "journal",
                                                     // "tlsrpt-socket:PATH"
  std::string state_directory = "/var/lib/mta-sts-reportd";  // positions and unsent batches
  std::string host_id;                               // this host's name in Redis (default: the host name)
  std::string sending_mta_ip;                        // reported as sending-mta-ip when the log has none
  std::chrono::seconds flush_interval{30};           // batches to Redis this often
  // Sending: which hosts take part (each report is sent once for the whole fleet).
  bool send = false;
  std::string organization_name;
  std::string contact_info;
  std::string submitter;                             // default: the domain of contact-info
  std::string sender_address;                        // envelope and From: of report mail
  std::string sendmail_command = "/usr/sbin/sendmail -i";
  bool only_failures = false;
  std::vector<std::string> exclude;                  // domains never reported to
  std::chrono::seconds send_delay_max{3600};         // spread after 00:00 UTC
  std::string ca_file;                               // for https: report URIs; replaces the system store
  std::chrono::seconds https_timeout{60};
  std::vector<std::string> resolvers;                // for _smtp._tls; empty: /etc/resolv.conf
  std::chrono::milliseconds dns_timeout{2000};
  std::chrono::seconds keep{8 * 86400};              // days' aggregates kept in Redis
  std::size_t max_failure_details = 1000;            // per (day, domain, policy)
};

struct CtlConfig {
  std::vector<std::string> resolvers;
  std::string ca_file;
  std::chrono::seconds fetch_timeout{30};
  std::chrono::milliseconds dns_timeout{2000};
};

struct Config {
  std::string path;  // the file read ("" if none)
  RedisConfig redis;  // after load_config(program): with that program's own user and password
  std::map<Program, RedisCredentials> redis_acl;  // per program, as written
  MilterConfig milter;
  CachedConfig cached;
  CtlConfig ctl;
  TlsmapConfig tlsmap;
  ReportdConfig reportd;
};

struct CommandLine {
  bool help = false;
  bool version = false;
  bool check = false;          // -n / --check: validate and exit
  bool check_redis = false;    // --check-redis: connect as this program's user, try its commands
  bool config_explicit = false;
  std::vector<std::string> positional;  // non-option arguments (ctl subcommands)
};

// Parses argv for `program` (its own section's options and [redis] options, plus --config,
// --check, --help, --version), reads the file (the default path only if it exists, unless
// given explicitly), applies command-line overrides, validates bounds. Throws ConfigError.
Config load_config(Program program, int argc, const char* const* argv, CommandLine* cl);

// Loads only a file (for tests and `--check`).
Config load_config_file(const std::string& path);

// Usage text listing every option of `program` with its default and description.
std::string usage(Program program);

// Every option name of `program` as written on the command line ("--socket",
// "--redis-address", ...): the man-page test checks each appears in the manual.
std::vector<std::string> option_names(Program program);
// Every file key "section.key" with its default as text (for etc/mta-sts.conf checks).
std::vector<std::pair<std::string, std::string>> file_options();

}  // namespace mtasts
