// Configuration: defaults, every option from the file and from the command line, overrides,
// and every kind of error with the file and line where it is.
#include "common/daemon/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include <set>
#include <sstream>

#include "tests/support/process.hpp"

namespace mtasts {
namespace {

using test::TempDir;
using test::write_file;

// Every field of a Config as text, so that two configurations compare field by field and a
// difference shows up readably.
std::string dump(const Config& c) {
  std::ostringstream o;
  auto d = [&o](const char* name, const DaemonConfig& x) {
    o << name << ".daemonize=" << x.daemonize << "\n" << name << ".pid_file=" << x.pid_file << "\n"
      << name << ".user=" << x.user << "\n" << name << ".group=" << x.group << "\n"
      << name << ".log=" << x.log << "\n" << name << ".log_level=" << x.log_level << "\n"
      << name << ".log_facility=" << x.log_facility << "\n";
  };
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += x + ",";
    return s;
  };
  const auto& r = c.redis;
  o << "redis.address=" << r.redis.address << "\nredis.user=" << r.redis.user << "\nredis.password=" << r.redis.password
    << "\nredis.password_file=" << r.password_file << "\nredis.db=" << r.redis.db
    << "\nredis.connect_timeout=" << r.redis.connect_timeout.count() << "\nredis.command_timeout="
    << r.redis.command_timeout.count() << "\nredis.pool_size=" << r.redis.pool_size << "\nredis.prefix=" << r.store.prefix
    << "\nredis.max_misses=" << r.store.max_misses << "\nredis.max_domains=" << r.store.max_domains
    << "\nredis.retention=" << r.store.retention.count() << "\nredis.sentinels=" << list(r.redis.sentinels)
    << "\nredis.master_name=" << r.redis.master_name << "\nredis.read_from_replica=" << r.read_from_replica
    << "\nredis.replica=" << r.redis.replica_address << "\n";
  const auto& m = c.milter;
  d("milter", m.daemon);
  o << "milter.socket=" << m.socket << "\nmilter.socket_mode=" << std::oct << m.socket_mode << std::dec
    << "\nmilter.header_name=" << m.header_name << "\nmilter.redis_budget=" << m.redis_budget.count()
    << "\nmilter.local_cache_ttl=" << m.local_cache_ttl.count() << "\nmilter.local_cache_size=" << m.local_cache_size
    << "\nmilter.miss_wait=" << m.miss_wait.count() << "\nmilter.on_unknown=" << static_cast<int>(m.on_unknown)
    << "\nmilter.on_redis_error=" << static_cast<int>(m.on_redis_error)
    << "\nmilter.honor_tls_required=" << m.honor_tls_required << "\nmilter.milter_timeout=" << m.milter_timeout << "\n";
  const auto& k = c.cached;
  d("cached", k.daemon);
  o << "cached.resolvers=" << list(k.resolvers) << "\ncached.dns_timeout=" << k.dns_timeout.count()
    << "\ncached.dns_retries=" << k.dns_retries << "\ncached.ca_file=" << k.ca_file << "\ncached.proxy=" << k.proxy
    << "\ncached.fetch_timeout=" << k.fetch_timeout.count() << "\ncached.connect_timeout=" << k.connect_timeout.count()
    << "\ncached.concurrency=" << k.concurrency << "\ncached.warm_list=" << k.warm_list
    << "\ncached.warm_interval=" << k.warm_interval.count() << "\ncached.refresh_interval=" << k.refresh_interval.count()
    << "\ncached.negative_ttl=" << k.negative_ttl.count() << "\ncached.min_backoff=" << k.min_backoff.count()
    << "\ncached.max_backoff=" << k.max_backoff.count() << "\ncached.expiry_margin=" << k.expiry_margin.count()
    << "\ncached.refresh_jitter=" << k.refresh_jitter << "\ncached.lock_ttl=" << k.lock_ttl.count()
    << "\ncached.poll_interval=" << k.poll_interval.count() << "\ncached.stats_interval=" << k.stats_interval.count()
    << "\ncached.shutdown_timeout=" << k.shutdown_timeout.count() << "\ncached.failure_alert=" << k.failure_alert
    << "\ncached.fetcher_id=" << k.fetcher_id << "\n";
  const auto& t = c.ctl;
  o << "ctl.resolvers=" << list(t.resolvers) << "\nctl.ca_file=" << t.ca_file
    << "\nctl.fetch_timeout=" << t.fetch_timeout.count() << "\nctl.dns_timeout=" << t.dns_timeout.count() << "\n";
  return o.str();
}

// Runs load_config with a program name and the given arguments.
Config load(Program p, std::vector<std::string> args, CommandLine* cl = nullptr) {
  std::vector<const char*> argv{"prog"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return load_config(p, static_cast<int>(argv.size()), argv.data(), cl);
}

// The error message of a load that must fail.
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

class ConfigFile : public ::testing::Test {
 protected:
  std::string file(const std::string& content) {
    const std::string p = (dir_ / ("c" + std::to_string(n_++) + ".conf")).string();
    write_file(p, content);
    return p;
  }
  TempDir dir_{"config-test"};
  int n_ = 0;
};

TEST_F(ConfigFile, EmptyFileGivesTheDocumentedDefaults) {
  const Config c = load_config_file(file(""));
  EXPECT_EQ(dump(c), dump(Config{})) << "the option table's defaults differ from config.hpp's";
  EXPECT_EQ(c.redis.redis.address, "127.0.0.1:6379");
  EXPECT_EQ(c.milter.header_name, "X-MTA-STS");
  EXPECT_EQ(c.cached.min_backoff, std::chrono::seconds(300));
  EXPECT_TRUE(c.cached.resolvers.empty());
}

TEST_F(ConfigFile, DefaultsFromTheTableMatchFileOptions) {
  // A file that writes out every default explicitly loads to the defaults.
  std::map<std::string, std::string> sections;
  for (const auto& [key, def] : file_options()) {
    if (def.empty()) continue;
    const auto dot = key.find('.');
    sections[key.substr(0, dot)] += key.substr(dot + 1) + " = " + def + "\n";
  }
  std::string content;
  for (const auto& [s, body] : sections) content += "[" + s + "]\n" + body;
  EXPECT_EQ(dump(load_config_file(file(content))), dump(Config{})) << content;
}

const char* const kEveryOption = R"(# every option, none at its default
; both comment styles
[redis]
address = unix:/run/redis/r.sock
user = milter
password = s3cret
db = 3
connect-timeout = 150
command-timeout = 1s
pool-size = 4
prefix = test:
max-misses = 5000
max-domains = 70000
retention = 2h
sentinel = 10.0.0.11:26379
sentinel = [2001:db8::12]:26379
master-name = mta-sts
read-from = replica
replica = 10.0.0.21:6380

[milter]
daemonize = yes
pid-file = /run/m.pid
user = mtasts
group = mail
log = stderr
log-level = debug
log-facility = local3
socket = inet:8891@127.0.0.1
socket-mode = 0600
header-name = X-Policy
redis-budget = 20
local-cache-ttl = 30
local-cache-size = 500
miss-wait = 100ms
on-unknown = tempfail
on-redis-error = tempfail
honor-tls-required = no
milter-timeout = 2h

[cached]
daemonize = true
pid-file = /run/c.pid
user = fetch
group = fetchg
log = stderr
log-level = warning
log-facility = daemon
resolver = 127.0.0.1:5353
resolver = [::1]:53
resolver = 192.0.2.1
dns-timeout = 500
dns-retries = 5
ca-file = /etc/ca.pem
proxy = http://proxy.example:3128
fetch-timeout = 30
connect-timeout = 5s
concurrency = 64
warm-list = /etc/warm.txt
warm-interval = 10m
refresh-interval = 12h
negative-ttl = 30m
min-backoff = 600
max-backoff = 2h
expiry-margin = 2h
refresh-jitter = 20
lock-ttl = 120
poll-interval = 1s
stats-interval = 1m
shutdown-timeout = 20
failure-alert = 5
fetcher-id = f1

[ctl]
resolver = 127.0.0.2
ca-file = /etc/ctl-ca.pem
fetch-timeout = 10
dns-timeout = 1s
)";

void expect_every_option(const Config& c) {
  using namespace std::chrono;
  EXPECT_EQ(c.redis.redis.address, "unix:/run/redis/r.sock");
  EXPECT_EQ(c.redis.redis.user, "milter");
  EXPECT_EQ(c.redis.redis.password, "s3cret");
  EXPECT_EQ(c.redis.redis.db, 3);
  EXPECT_EQ(c.redis.redis.connect_timeout, milliseconds(150));
  EXPECT_EQ(c.redis.redis.command_timeout, milliseconds(1000));
  EXPECT_EQ(c.redis.redis.pool_size, 4u);
  EXPECT_EQ(c.redis.store.prefix, "test:");
  EXPECT_EQ(c.redis.store.max_misses, 5000u);
  EXPECT_EQ(c.redis.store.max_domains, 70000u);
  EXPECT_EQ(c.redis.store.retention, seconds(7200));
  EXPECT_EQ(c.redis.redis.sentinels, (std::vector<std::string>{"10.0.0.11:26379", "[2001:db8::12]:26379"}));
  EXPECT_EQ(c.redis.redis.master_name, "mta-sts");
  EXPECT_TRUE(c.redis.read_from_replica);
  EXPECT_EQ(c.redis.redis.replica_address, "10.0.0.21:6380");
  const auto& m = c.milter;
  EXPECT_TRUE(m.daemon.daemonize);
  EXPECT_EQ(m.daemon.pid_file, "/run/m.pid");
  EXPECT_EQ(m.daemon.user, "mtasts");
  EXPECT_EQ(m.daemon.group, "mail");
  EXPECT_EQ(m.daemon.log, "stderr");
  EXPECT_EQ(m.daemon.log_level, "debug");
  EXPECT_EQ(m.daemon.log_facility, "local3");
  EXPECT_EQ(m.socket, "inet:8891@127.0.0.1");
  EXPECT_EQ(m.socket_mode, 0600u);
  EXPECT_EQ(m.header_name, "X-Policy");
  EXPECT_EQ(m.redis_budget, milliseconds(20));
  EXPECT_EQ(m.local_cache_ttl, seconds(30));
  EXPECT_EQ(m.local_cache_size, 500u);
  EXPECT_EQ(m.miss_wait, milliseconds(100));
  EXPECT_EQ(m.on_unknown, OnFailure::tempfail);
  EXPECT_EQ(m.on_redis_error, OnFailure::tempfail);
  EXPECT_FALSE(m.honor_tls_required);
  EXPECT_EQ(m.milter_timeout, 7200u);
  const auto& k = c.cached;
  EXPECT_TRUE(k.daemon.daemonize);
  EXPECT_EQ(k.daemon.pid_file, "/run/c.pid");
  EXPECT_EQ(k.daemon.user, "fetch");
  EXPECT_EQ(k.daemon.group, "fetchg");
  EXPECT_EQ(k.daemon.log, "stderr");
  EXPECT_EQ(k.daemon.log_level, "warning");
  EXPECT_EQ(k.daemon.log_facility, "daemon");
  EXPECT_EQ(k.resolvers, (std::vector<std::string>{"127.0.0.1:5353", "[::1]:53", "192.0.2.1"}));
  EXPECT_EQ(k.dns_timeout, milliseconds(500));
  EXPECT_EQ(k.dns_retries, 5u);
  EXPECT_EQ(k.ca_file, "/etc/ca.pem");
  EXPECT_EQ(k.proxy, "http://proxy.example:3128");
  EXPECT_EQ(k.fetch_timeout, seconds(30));
  EXPECT_EQ(k.connect_timeout, seconds(5));
  EXPECT_EQ(k.concurrency, 64u);
  EXPECT_EQ(k.warm_list, "/etc/warm.txt");
  EXPECT_EQ(k.warm_interval, seconds(600));
  EXPECT_EQ(k.refresh_interval, seconds(43200));
  EXPECT_EQ(k.negative_ttl, seconds(1800));
  EXPECT_EQ(k.min_backoff, seconds(600));
  EXPECT_EQ(k.max_backoff, seconds(7200));
  EXPECT_EQ(k.expiry_margin, seconds(7200));
  EXPECT_EQ(k.refresh_jitter, 20u);
  EXPECT_EQ(k.lock_ttl, seconds(120));
  EXPECT_EQ(k.poll_interval, milliseconds(1000));
  EXPECT_EQ(k.stats_interval, seconds(60));
  EXPECT_EQ(k.shutdown_timeout, seconds(20));
  EXPECT_EQ(k.failure_alert, 5u);
  EXPECT_EQ(k.fetcher_id, "f1");
  EXPECT_EQ(c.ctl.resolvers, std::vector<std::string>{"127.0.0.2"});
  EXPECT_EQ(c.ctl.ca_file, "/etc/ctl-ca.pem");
  EXPECT_EQ(c.ctl.fetch_timeout, seconds(10));
  EXPECT_EQ(c.ctl.dns_timeout, milliseconds(1000));
}

TEST_F(ConfigFile, EveryOptionFromTheFile) {
  const std::string p = file(kEveryOption);
  const Config c = load_config_file(p);
  EXPECT_EQ(c.path, p);
  expect_every_option(c);
  // The same file through load_config, for each program.
  for (auto prog : {Program::milter, Program::cached, Program::ctl}) expect_every_option(load(prog, {"-c", p}));
}

// Turns kEveryOption into command-line arguments for `program`.
std::vector<std::string> every_option_args(Program program) {
  std::vector<std::string> args;
  std::istringstream in(kEveryOption);
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      section = line.substr(1, line.size() - 2);
      continue;
    }
    const auto eq = line.find(" = ");
    const std::string key = line.substr(0, eq), value = line.substr(eq + 3);
    if (section == "redis") args.push_back("--redis-" + key + "=" + value);
    else if (section == to_string(program)) args.push_back("--" + key + "=" + value);
  }
  return args;
}

TEST_F(ConfigFile, EveryOptionFromTheCommandLine) {
  const std::string empty = file("");
  Config all;
  for (auto prog : {Program::milter, Program::cached, Program::ctl}) {
    auto args = every_option_args(prog);
    args.insert(args.begin(), {"--config", empty});
    const Config c = load(prog, args);
    if (prog == Program::milter) all.milter = c.milter;
    if (prog == Program::cached) all.cached = c.cached;
    if (prog == Program::ctl) all.ctl = c.ctl;
    all.redis = c.redis;
    // Options of other programs are not touched.
    if (prog != Program::milter) {
      EXPECT_EQ(c.milter.socket, Config{}.milter.socket);
    }
  }
  expect_every_option(all);
}

TEST_F(ConfigFile, SpaceSeparatedValuesAndShortOptions) {
  CommandLine cl;
  const Config c = load(Program::milter, {"-c", file(""), "--socket", "unix:/tmp/x.sock", "--redis-db", "2", "-n"}, &cl);
  EXPECT_EQ(c.milter.socket, "unix:/tmp/x.sock");
  EXPECT_EQ(c.redis.redis.db, 2);
  EXPECT_TRUE(cl.check);
  EXPECT_TRUE(cl.config_explicit);
  EXPECT_FALSE(cl.help);
}

TEST_F(ConfigFile, CommandLineOverridesTheFile) {
  const std::string p = file("[milter]\nsocket = unix:/a.sock\nhonor-tls-required = yes\n[cached]\n"
                             "resolver = 127.0.0.1\nresolver = 127.0.0.2\n[redis]\ndb = 1\n");
  Config c = load(Program::milter, {"-c", p, "--socket=inet:10025@127.0.0.1", "--redis-db=4", "--honor-tls-required=off"});
  EXPECT_EQ(c.milter.socket, "inet:10025@127.0.0.1");
  EXPECT_EQ(c.redis.redis.db, 4);
  EXPECT_FALSE(c.milter.honor_tls_required);
  // A list given on the command line replaces the file's list.
  c = load(Program::cached, {"-c", p, "--resolver", "10.0.0.1:53", "--resolver=10.0.0.2"});
  EXPECT_EQ(c.cached.resolvers, (std::vector<std::string>{"10.0.0.1:53", "10.0.0.2"}));
  c = load(Program::cached, {"-c", p});
  EXPECT_EQ(c.cached.resolvers, (std::vector<std::string>{"127.0.0.1", "127.0.0.2"}));
}

TEST_F(ConfigFile, FlagWithoutValueMeansYes) {
  const Config c = load(Program::cached, {"-c", file("[cached]\ndaemonize = no\n"), "--daemonize"});
  EXPECT_TRUE(c.cached.daemon.daemonize);
}

TEST_F(ConfigFile, CommentsBlankLinesAndWhitespace) {
  const Config c = load_config_file(file("# comment\n; other comment\n\n   \n  [ milter ]  \n\t# indented comment\n"
                                         "  header-name\t=   X-Sts  \r\n;socket = bad\n#socket = bad\n"));
  EXPECT_EQ(c.milter.header_name, "X-Sts");
  EXPECT_EQ(c.milter.socket, Config{}.milter.socket);
}

TEST_F(ConfigFile, ByteOrderMarkAndCrLf) {
  const Config c = load_config_file(file("\xEF\xBB\xBF[redis]\r\ndb = 7\r\n"));
  EXPECT_EQ(c.redis.redis.db, 7);
}

TEST_F(ConfigFile, ValuesAreVerbatim) {
  // No inline comments: a '#' after a value is part of it (and here makes it invalid).
  const std::string p = file("[redis]\ndb = 1 # one\n");
  EXPECT_NE(error_of([&] { load_config_file(p); }).find(":2: [redis] db: bad value '1 # one'"), std::string::npos);
  EXPECT_EQ(load_config_file(file("[redis]\npassword = a#b;c = d\n")).redis.redis.password, "a#b;c = d");
}

TEST_F(ConfigFile, EmptyStringValuesAreAllowedWhereTheDefaultIsEmpty) {
  const Config c = load_config_file(file("[cached]\nproxy =\nca-file =\n"));
  EXPECT_EQ(c.cached.proxy, "");
}

struct ErrorCase {
  const char* name;
  std::string content;
  std::string expected;  // substring after "FILE:"
};

TEST_F(ConfigFile, ErrorsNameTheFileAndLine) {
  const std::vector<ErrorCase> cases = {
      {"unknown key", "[milter]\n# x\nsockett = unix:/a\n", ":3: unknown option 'sockett' in [milter]"},
      {"key of another section", "[milter]\nresolver = 127.0.0.1\n", ":2: unknown option 'resolver' in [milter]"},
      {"unknown section", "[redis]\ndb = 1\n[mailer]\n", ":3: unknown section [mailer]"},
      {"key before any section", "db = 1\n", ":1: 'db' is outside any [section]"},
      {"no equals sign", "[redis]\ndb 1\n", ":2: expected 'key = value'"},
      {"empty key", "[redis]\n= 1\n", ":2: missing option name"},
      {"broken section line", "[redis\n", ":1: expected '[section]'"},
      {"repeated key", "[redis]\ndb = 1\n\ndb = 2\n", ":4: 'db' repeated in [redis] (first set on line 2)"},
      {"repeated across section blocks", "[redis]\ndb = 1\n[milter]\n[redis]\ndb = 2\n", ":5: 'db' repeated"},
      {"bad number", "[redis]\ndb = one\n", ":2: [redis] db: bad value 'one': expected a whole number"},
      {"bad bool", "[milter]\ndaemonize = maybe\n", ":2: [milter] daemonize: bad value 'maybe'"},
      {"bad duration unit", "[cached]\nfetch-timeout = 5w\n", ":2: [cached] fetch-timeout: bad value '5w': unknown unit"},
      {"fraction of a second", "[cached]\nfetch-timeout = 1500ms\n", "whole number of seconds"},
      {"negative", "[redis]\npool-size = -1\n", ":2: [redis] pool-size: bad value '-1'"},
      {"empty number", "[redis]\npool-size =\n", ":2: [redis] pool-size: bad value ''"},
      {"db out of range", "[redis]\ndb = 16\n", "must be between 0 and 15"},
      {"min-backoff under 5 minutes", "[cached]\nmin-backoff = 299\n", ":2: [cached] min-backoff: bad value '299': must be between 5m and 1d"},
      {"concurrency 0", "[cached]\nconcurrency = 0\n", "must be between 1 and 4096"},
      // A cache of 0 entries would hold no policy for an outage (issue 18, defect 7).
      {"milter local cache of 0", "[milter]\nlocal-cache-size = 0\n", "must be between 1 and 10000000"},
      {"tlsmap local cache of 0", "[tlsmap]\nlocal-cache-size = 0\n", "must be between 1 and 10000000"},
      {"concurrency 4097", "[cached]\nconcurrency = 4097\n", "must be between 1 and 4096"},
      {"jitter 51", "[cached]\nrefresh-jitter = 51\n", "must be between 0 and 50"},
      {"refresh over a day", "[cached]\nrefresh-interval = 2d\n", "must be between 1m and 1d"},
      {"header name with space", "[milter]\nheader-name = X MTA\n", "not a valid header field name"},
      {"header name with colon", "[milter]\nheader-name = X-MTA:\n", "not a valid header field name"},
      {"on-unknown", "[milter]\non-unknown = reject\n", "expected one of: accept, tempfail"},
      {"on-redis-error", "[milter]\non-redis-error = 1\n", "expected one of: accept, tempfail"},
      {"log target", "[cached]\nlog = file\n", "expected one of: syslog, stderr"},
      {"log level", "[cached]\nlog-level = verbose\n", "expected one of: debug"},
      {"log facility", "[milter]\nlog-facility = mailx\n", "not a syslog facility"},
      {"socket mode not octal", "[milter]\nsocket-mode = 0680\n", "expected an octal mode"},
      {"socket mode too big", "[milter]\nsocket-mode = 1777\n", "must be at most 0777"},
      {"socket syntax", "[milter]\nsocket = tcp:25\n", "expected unix:PATH"},
      {"socket port", "[milter]\nsocket = inet:99999@127.0.0.1\n", "bad port"},
      {"relative unix socket", "[milter]\nsocket = unix:milter.sock\n", "absolute path"},
      {"empty prefix", "[redis]\nprefix =\n", "must not be empty"},
      {"prefix with space", "[redis]\nprefix = a b\n", "spaces"},
      {"bad redis address", "[redis]\naddress = ::1\n", ":2: [redis] address: bad value '::1': an IPv6 address needs brackets"},
      {"bad resolver", "[cached]\nresolver = dns.example\n", "a resolver is an IP address"},
      {"bad resolver port", "[ctl]\nresolver = 127.0.0.1:0\n", "bad port"},
      {"bad proxy", "[cached]\nproxy = proxy.example\n", "expected a URL"},
      {"redis timeout 0", "[redis]\ncommand-timeout = 0\n", "must be between 1ms and 1m"},
      {"lock-ttl under 2s", "[cached]\nlock-ttl = 1\n", "must be between 2s and 1h"},
      {"max-backoff under min-backoff", "[cached]\nmin-backoff = 1h\nmax-backoff = 30m\n", ":3: [cached] max-backoff (30m) must not be less than min-backoff (1h)"},
      {"connect over fetch", "[cached]\nconnect-timeout = 2m\n", "connect-timeout (2m) must not exceed fetch-timeout (1m)"},
  };
  for (const auto& c : cases) {
    const std::string p = file(c.content);
    const std::string err = error_of([&] { load_config_file(p); });
    EXPECT_EQ(err.rfind(p, 0), 0u) << c.name << ": " << err;
    EXPECT_NE(err.find(c.expected), std::string::npos) << c.name << ": got '" << err << "'";
    // Every program rejects every section's errors.
    const std::string via_milter = error_of([&] { load(Program::milter, {"-c", p}); });
    EXPECT_EQ(via_milter, err) << c.name;
  }
}

TEST_F(ConfigFile, MissingFile) {
  const std::string p = (dir_ / "nope.conf").string();
  const std::string err = error_of([&] { load_config_file(p); });
  EXPECT_EQ(err, p + ": cannot read: No such file or directory");
  EXPECT_EQ(error_of([&] { load(Program::cached, {"--config", p}); }), err) << "explicit --config must exist";
  EXPECT_NE(error_of([&] { load_config_file(dir_.path().string()); }).find("is a directory"), std::string::npos);
}

TEST_F(ConfigFile, PasswordFile) {
  const std::string pw = (dir_ / "pw").string();
  write_file(pw, "from-file\n");
  Config c = load_config_file(file("[redis]\npassword = inline\npassword-file = " + pw + "\n"));
  EXPECT_EQ(c.redis.redis.password, "from-file") << "password-file overrides password";
  EXPECT_EQ(c.redis.password_file, pw);

  c = load(Program::milter, {"-c", file(""), "--redis-password-file", pw});
  EXPECT_EQ(c.redis.redis.password, "from-file");

  const std::string conf = file("[redis]\n\npassword-file = " + pw + ".missing\n");
  std::string err = error_of([&] { load_config_file(conf); });
  EXPECT_EQ(err.rfind(conf + ":3: password-file " + pw + ".missing: cannot read", 0), 0u) << err;

  write_file(pw, "\n");
  err = error_of([&] { load_config_file(file("[redis]\npassword-file = " + pw + "\n")); });
  EXPECT_NE(err.find("is empty"), std::string::npos) << err;
  write_file(pw, "a\nb\n");
  err = error_of([&] { load_config_file(file("[redis]\npassword-file = " + pw + "\n")); });
  EXPECT_NE(err.find("more than one line"), std::string::npos) << err;
}

TEST_F(ConfigFile, PasswordIsNeverEchoed) {
  const std::string err = error_of([&] { load_config_file(file("[redis]\npassword = top\x01secret\n")); });
  EXPECT_EQ(err.find("secret"), std::string::npos) << err;
  EXPECT_NE(err.find(":2: [redis] password"), std::string::npos) << err;
}

struct DurationCase {
  const char* value;
  long long ms;  // -1: error
};

TEST_F(ConfigFile, DurationsInNaturalUnitsAndSuffixes) {
  // redis-budget: plain numbers are milliseconds.
  for (const DurationCase& c : std::vector<DurationCase>{{"50", 50}, {"50ms", 50}, {"2s", 2000}, {"10s", 10000},
                                                          {"11s", -1}, {"0", -1}, {"1m", -1}, {"5MS", 5},
                                                          {"1.5s", -1}, {" ", -1}, {"s", -1}, {"-5", -1}}) {
    const std::string p = file(std::string("[milter]\nredis-budget = ") + c.value + "\n");
    if (c.ms < 0) {
      EXPECT_NE(error_of([&] { load_config_file(p); }).find(":2: [milter] redis-budget"), std::string::npos) << c.value;
    } else {
      EXPECT_EQ(load_config_file(p).milter.redis_budget.count(), c.ms) << c.value;
    }
  }
  // negative-ttl: plain numbers are seconds.
  for (const DurationCase& c : std::vector<DurationCase>{{"60", 60000}, {"90s", 90000}, {"2m", 120000},
                                                          {"3h", 10800000}, {"1d", 86400000}, {"59", -1},
                                                          {"2d", -1}, {"60000ms", 60000}, {"60500ms", -1}}) {
    const std::string p = file(std::string("[cached]\nnegative-ttl = ") + c.value + "\n");
    if (c.ms < 0) {
      EXPECT_NE(error_of([&] { load_config_file(p); }).find(":2: [cached] negative-ttl"), std::string::npos) << c.value;
    } else {
      EXPECT_EQ(load_config_file(p).cached.negative_ttl.count() * 1000, c.ms) << c.value;
    }
  }
}

TEST_F(ConfigFile, Booleans) {
  for (const char* yes : {"yes", "true", "on", "1", "YES", "True"})
    EXPECT_TRUE(load_config_file(file(std::string("[milter]\ndaemonize = ") + yes + "\n")).milter.daemon.daemonize) << yes;
  for (const char* no : {"no", "false", "off", "0", "No"})
    EXPECT_FALSE(load_config_file(file(std::string("[milter]\nhonor-tls-required = ") + no + "\n")).milter.honor_tls_required)
        << no;
}

TEST_F(ConfigFile, CommandLineErrors) {
  const std::string empty = file("");
  EXPECT_NE(error_of([&] { load(Program::milter, {"-c", empty, "--no-such-option=1"}); }).find("no-such-option"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load(Program::milter, {"-c", empty, "--sock=unix:/x"}); }).find("sock"), std::string::npos)
      << "abbreviations are not accepted";
  EXPECT_NE(error_of([&] { load(Program::milter, {"-c", empty, "--resolver=127.0.0.1"}); }).find("resolver"),
            std::string::npos)
      << "[cached] options are not milter options";
  EXPECT_EQ(error_of([&] { load(Program::milter, {"-c", empty, "--redis-db=99"}); }),
            "--redis-db: bad value '99': must be between 0 and 15");
  EXPECT_EQ(error_of([&] { load(Program::cached, {"-c", empty, "--concurrency", "0"}); }),
            "--concurrency: bad value '0': must be between 1 and 4096");
  EXPECT_NE(error_of([&] { load(Program::milter, {"-c", empty, "--socket"}); }).find("socket"), std::string::npos)
      << "missing value";
  EXPECT_EQ(error_of([&] { load(Program::milter, {"-c", empty, "--redis-db=1", "--redis-db=2"}); }),
            "--redis-db given more than once");
  EXPECT_NE(error_of([&] { load(Program::milter, {"-c", empty, "extra"}); }).find("unexpected argument 'extra'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load(Program::cached, {"-c", empty, "--connect-timeout=30", "--fetch-timeout=20"}); })
                .find("--connect-timeout: [cached] connect-timeout (30s) must not exceed fetch-timeout (20s)"),
            std::string::npos);
  // Claims are renewed while a fetcher works: a lock-ttl shorter than fetch-timeout is fine.
  EXPECT_EQ(load(Program::cached, {"-c", empty, "--lock-ttl=5", "--fetch-timeout=30"}).cached.lock_ttl,
            std::chrono::seconds(5));
}

TEST_F(ConfigFile, CtlKeepsPositionalArguments) {
  CommandLine cl;
  const Config c = load(Program::ctl, {"-c", file(""), "query", "--resolver", "127.0.0.1:5353", "example.com"}, &cl);
  EXPECT_EQ(cl.positional, (std::vector<std::string>{"query", "example.com"}));
  EXPECT_EQ(c.ctl.resolvers, std::vector<std::string>{"127.0.0.1:5353"});
}

TEST_F(ConfigFile, HelpAndVersionReadNoFile) {
  const std::string broken = file("[nonsense]\n");
  CommandLine cl;
  EXPECT_NO_THROW(load(Program::milter, {"-c", broken, "-h"}, &cl));
  EXPECT_TRUE(cl.help);
  EXPECT_NO_THROW(load(Program::cached, {"--config", broken, "--version"}, &cl));
  EXPECT_TRUE(cl.version);
  EXPECT_NO_THROW(load(Program::cached, {"-V"}, &cl));
  EXPECT_TRUE(cl.version);
  EXPECT_THROW(load(Program::milter, {"-c", broken, "-n"}, &cl), ConfigError) << "--check reads the file";
}

TEST(ConfigNames, OptionNamesPerProgram) {
  const auto milter = option_names(Program::milter);
  const std::set<std::string> m(milter.begin(), milter.end());
  EXPECT_EQ(m.size(), milter.size()) << "duplicate option names";
  for (const char* n : {"--config", "--check", "--help", "--version", "--socket", "--header-name", "--on-unknown",
                        "--redis-address", "--redis-password-file", "--redis-max-misses", "--daemonize"})
    EXPECT_TRUE(m.count(n)) << n;
  EXPECT_FALSE(m.count("--resolver"));
  EXPECT_FALSE(m.count("--concurrency"));

  const auto cached = option_names(Program::cached);
  const std::set<std::string> c(cached.begin(), cached.end());
  for (const char* n : {"--resolver", "--concurrency", "--fetcher-id", "--min-backoff", "--redis-prefix"})
    EXPECT_TRUE(c.count(n)) << n;
  EXPECT_FALSE(c.count("--socket"));

  const auto ctl = option_names(Program::ctl);
  EXPECT_EQ(ctl.size(), 5u + 4u + 18u + 2u);  // general, [ctl], [redis], redis-acl-*
  for (const char* n : {"--check-redis", "--redis-acl-user", "--redis-acl-password-file"})
    EXPECT_TRUE(std::find(ctl.begin(), ctl.end(), n) != ctl.end()) << n;
}

TEST(ConfigNames, FileOptionsListEveryKeyOnce) {
  const auto opts = file_options();
  std::set<std::string> keys;
  for (const auto& [k, def] : opts) EXPECT_TRUE(keys.insert(k).second) << k;
  EXPECT_EQ(opts.size(), 18u + 21u + 35u + 6u + 33u + 30u);  // [redis], [milter], [cached], [ctl], [tlsmap], [reportd]
  for (const char* k : {"redis.address", "redis.retention", "milter.milter-timeout", "cached.fetcher-id", "ctl.dns-timeout"})
    EXPECT_TRUE(keys.count(k)) << k;
  for (const auto& [k, def] : opts)
    if (k == "milter.socket-mode") {
      EXPECT_EQ(def, "0660");
    }
}

// ---- each program's own Redis user (redis-acl-user, redis-acl-password-file) ----------------

TEST_F(ConfigFile, EachProgramGetsItsOwnRedisUserFromOneFile) {
  const std::string mpw = file("milter-secret\n"), cpw = file("cached-secret\n");
  const std::string p = file("[redis]\nuser = shared\npassword = shared-secret\n"
                             "[milter]\nredis-acl-user = mta-sts-milter\nredis-acl-password-file = " + mpw + "\n"
                             "[cached]\nredis-acl-user = mta-sts-cached\nredis-acl-password-file = " + cpw + "\n");
  Config m = load(Program::milter, {"-c", p});
  EXPECT_EQ(m.redis.redis.user, "mta-sts-milter");
  EXPECT_EQ(m.redis.redis.password, "milter-secret");
  Config c = load(Program::cached, {"-c", p});
  EXPECT_EQ(c.redis.redis.user, "mta-sts-cached");
  EXPECT_EQ(c.redis.redis.password, "cached-secret");
  // [ctl] sets nothing of its own: the shared [redis] values.
  Config t = load(Program::ctl, {"-c", p});
  EXPECT_EQ(t.redis.redis.user, "shared");
  EXPECT_EQ(t.redis.redis.password, "shared-secret");
}

TEST_F(ConfigFile, AProgramReadsOnlyItsOwnPasswordFile) {
  // The fetcher's password file is not readable here (it does not exist): the milter, which
  // has its own, must start anyway; the fetcher must say which file it cannot read.
  const std::string mpw = file("milter-secret\n");
  const std::string p = file("[redis]\npassword-file = /nonexistent/shared.password\n"
                             "[milter]\nredis-acl-user = m\nredis-acl-password-file = " + mpw + "\n"
                             "[cached]\nredis-acl-user = c\nredis-acl-password-file = /nonexistent/cached.password\n");
  EXPECT_EQ(load(Program::milter, {"-c", p}).redis.redis.password, "milter-secret");
  const std::string e = error_of([&] { load(Program::cached, {"-c", p}); });
  EXPECT_NE(e.find("/nonexistent/cached.password"), std::string::npos) << e;
  EXPECT_NE(e.find(":8:"), std::string::npos) << e;  // the line that named it
}

TEST_F(ConfigFile, ProgramUserWithoutItsOwnPasswordUsesTheSharedOne) {
  const std::string p = file("[redis]\npassword = shared-secret\n[ctl]\nredis-acl-user = mta-sts-ctl\n");
  const Config c = load(Program::ctl, {"-c", p});
  EXPECT_EQ(c.redis.redis.user, "mta-sts-ctl");
  EXPECT_EQ(c.redis.redis.password, "shared-secret");
}

TEST_F(ConfigFile, CommandLineWinsOverTheFileForRedisUsers) {
  const std::string mpw = file("milter-secret\n"), other = file("other-secret\n");
  const std::string p =
      file("[milter]\nredis-acl-user = mta-sts-milter\nredis-acl-password-file = " + mpw + "\n");
  // --redis-user on the command line beats the file's program user...
  Config c = load(Program::milter, {"-c", p, "--redis-user", "admin", "--redis-password-file", other});
  EXPECT_EQ(c.redis.redis.user, "admin");
  EXPECT_EQ(c.redis.redis.password, "other-secret");
  // ...and --redis-acl-user beats --redis-user.
  c = load(Program::milter, {"-c", p, "--redis-user", "admin", "--redis-acl-user", "mine"});
  EXPECT_EQ(c.redis.redis.user, "mine");
  EXPECT_EQ(c.redis.redis.password, "milter-secret");
}

TEST_F(ConfigFile, CheckRedisIsParsed) {
  CommandLine cl;
  load(Program::cached, {"-c", file(""), "--check-redis"}, &cl);
  EXPECT_TRUE(cl.check_redis);
  EXPECT_FALSE(cl.check);
}

TEST_F(ConfigFile, SentinelOptionsMustComeTogether) {
  EXPECT_NE(error_of([&] { load_config_file(file("[redis]\nsentinel = 127.0.0.1:26379\n")); }).find("needs master-name"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_config_file(file("[redis]\nmaster-name = m\n")); }).find("needs at least one sentinel"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_config_file(file("[redis]\nread-from = replica\n")); }).find("needs sentinel or replica"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_config_file(file("[redis]\nsentinel = unix:/run/s.sock\nmaster-name = m\n")); })
                .find("a sentinel is HOST:PORT"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_config_file(file("[redis]\nread-from = nearest\n")); }), "<no error>");
  // A sentinel alone is enough for replica reads; the command line replaces the file's list.
  const std::string p = file("[redis]\nsentinel = 127.0.0.1:26379\nmaster-name = m\nread-from = replica\n");
  const Config c = load(Program::milter, {"-c", p, "--redis-sentinel=127.0.0.2:26379", "--redis-sentinel=127.0.0.3:26379"});
  EXPECT_EQ(c.redis.redis.sentinels, (std::vector<std::string>{"127.0.0.2:26379", "127.0.0.3:26379"}));
  EXPECT_TRUE(c.redis.read_from_replica);
}

TEST(ConfigNames, NoCommandLineNameIsAmbiguous) {
  // A program key "redis-X" next to [redis] X would make --redis-X mean two options.
  for (auto p : {Program::milter, Program::cached, Program::ctl}) {
    std::vector<std::string> names;
    ASSERT_NO_THROW(names = option_names(p)) << to_string(p);
    const std::set<std::string> unique(names.begin(), names.end());
    EXPECT_EQ(unique.size(), names.size()) << to_string(p);
  }
}

TEST(ConfigNames, UsageListsEveryOption) {
  for (auto p : {Program::milter, Program::cached, Program::ctl}) {
    const std::string u = usage(p);
    for (const auto& n : option_names(p)) EXPECT_NE(u.find(n), std::string::npos) << to_string(p) << " " << n;
  }
  EXPECT_NE(usage(Program::milter).find("Usage: mta-sts-milter"), std::string::npos);
}

}  // namespace
}  // namespace mtasts
