// The [tlsmap] section: defaults as documented, every option from the file and from the
// command line, `listen` repeatable (command-line values replace the file's), and bad values
// rejected with the file and line.
#include <gtest/gtest.h>

#include <sstream>

#include "common/daemon/config.hpp"
#include "tests/support/process.hpp"

namespace mtasts {
namespace {

using namespace std::chrono;
using test::TempDir;
using test::write_file;

class TlsmapConfig_ : public ::testing::Test {
 protected:
  std::string file(const std::string& content) {
    const std::string p = (dir_ / ("c" + std::to_string(n_++) + ".conf")).string();
    write_file(p, content);
    return p;
  }
  Config load(std::vector<std::string> args) {
    std::vector<const char*> argv{"mta-sts-tlsmap"};
    for (const auto& a : args) argv.push_back(a.c_str());
    return load_config(Program::tlsmap, static_cast<int>(argv.size()), argv.data(), nullptr);
  }
  std::string error_of(const std::vector<std::string>& args) {
    try {
      load(args);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "<no error>";
  }
  TempDir dir_{"tlsmap-config-test"};
  int n_ = 0;
};

const char* const kEvery = R"([tlsmap]
daemonize = yes
pid-file = /run/t.pid
user = tlsmap
group = mail
log = stderr
log-level = debug
log-facility = local2
listen = unix:/run/mta-sts/tlsmap.sock
listen = inet:127.0.0.1:5461
listen = inet:[::1]:8461
socket-mode = 0660
redis-budget = 30
local-cache-ttl = 2m
local-cache-size = 777
miss-wait = 250
on-unknown = defer
on-redis-error = defer
strict-testing = yes
idle-timeout = 90
request-timeout = 7
workers = 3
dns-workers = 5
queue-size = 99
max-connections = 5000
resolver = 127.0.0.53
resolver = [::1]:5353
dns-timeout = 700
dns-retries = 3
mx-cache-ttl = 1m
mx-cache-size = 12
dane = no
dane-trusted-resolver = 192.0.2.53
dane-trusted-resolver = [2001:db8::53]:5353
dane-probe-name = signed.example.
)";

void expect_every(const TlsmapConfig& t) {
  EXPECT_TRUE(t.daemon.daemonize);
  EXPECT_EQ(t.daemon.pid_file, "/run/t.pid");
  EXPECT_EQ(t.daemon.user, "tlsmap");
  EXPECT_EQ(t.daemon.group, "mail");
  EXPECT_EQ(t.daemon.log, "stderr");
  EXPECT_EQ(t.daemon.log_level, "debug");
  EXPECT_EQ(t.daemon.log_facility, "local2");
  EXPECT_EQ(t.listen, (std::vector<std::string>{"unix:/run/mta-sts/tlsmap.sock", "inet:127.0.0.1:5461", "inet:[::1]:8461"}));
  EXPECT_EQ(t.socket_mode, 0660u);
  EXPECT_EQ(t.redis_budget, milliseconds(30));
  EXPECT_EQ(t.local_cache_ttl, seconds(120));
  EXPECT_EQ(t.local_cache_size, 777u);
  EXPECT_EQ(t.miss_wait, milliseconds(250));
  EXPECT_EQ(t.on_unknown, TlsmapAction::defer);
  EXPECT_EQ(t.on_redis_error, TlsmapAction::defer);
  EXPECT_TRUE(t.strict_testing);
  EXPECT_EQ(t.idle_timeout, seconds(90));
  EXPECT_EQ(t.request_timeout, seconds(7));
  EXPECT_EQ(t.workers, 3u);
  EXPECT_EQ(t.dns_workers, 5u);
  EXPECT_EQ(t.queue_size, 99u);
  EXPECT_EQ(t.max_connections, 5000u);
  EXPECT_EQ(t.resolvers, (std::vector<std::string>{"127.0.0.53", "[::1]:5353"}));
  EXPECT_EQ(t.dns_timeout, milliseconds(700));
  EXPECT_EQ(t.dns_retries, 3u);
  EXPECT_EQ(t.mx_cache_ttl, seconds(60));
  EXPECT_EQ(t.mx_cache_size, 12u);
  EXPECT_FALSE(t.dane);
  EXPECT_EQ(t.dane_trusted_resolvers, (std::vector<std::string>{"192.0.2.53", "[2001:db8::53]:5353"}));
  EXPECT_EQ(t.dane_probe_name, "signed.example");
}

TEST_F(TlsmapConfig_, Defaults) {
  const Config c = load_config_file(file(""));
  const TlsmapConfig& t = c.tlsmap;
  EXPECT_EQ(t.listen_or_default(), std::vector<std::string>{"inet:127.0.0.1:8461"});
  EXPECT_EQ(t.socket_mode, 0666u);
  EXPECT_EQ(t.on_unknown, TlsmapAction::accept);
  EXPECT_EQ(t.on_redis_error, TlsmapAction::accept);
  EXPECT_FALSE(t.strict_testing);
  EXPECT_EQ(t.miss_wait, milliseconds(0));
  EXPECT_TRUE(t.dane);
  EXPECT_TRUE(t.dane_trusted_resolvers.empty()) << "only loopback resolvers are trusted for DANE by default";
  EXPECT_EQ(t.dane_probe_name, ".");
  EXPECT_EQ(t.daemon.log, "syslog");
  // The table's defaults are config.hpp's.
  const TlsmapConfig d;
  EXPECT_EQ(t.redis_budget, d.redis_budget);
  EXPECT_EQ(t.local_cache_ttl, d.local_cache_ttl);
  EXPECT_EQ(t.idle_timeout, d.idle_timeout);
  EXPECT_EQ(t.request_timeout, d.request_timeout);
  EXPECT_EQ(t.workers, d.workers);
  EXPECT_EQ(t.dns_workers, d.dns_workers);
  EXPECT_EQ(t.queue_size, d.queue_size);
  EXPECT_EQ(t.max_connections, d.max_connections);
  EXPECT_EQ(t.dns_timeout, d.dns_timeout);
  EXPECT_EQ(t.dns_retries, d.dns_retries);
  EXPECT_EQ(t.mx_cache_ttl, d.mx_cache_ttl);
  EXPECT_EQ(t.mx_cache_size, d.mx_cache_size);
}

TEST_F(TlsmapConfig_, EveryOptionFromTheFile) {
  expect_every(load_config_file(file(kEvery)).tlsmap);
  expect_every(load({"-c", file(kEvery)}).tlsmap);
}

TEST_F(TlsmapConfig_, EveryOptionFromTheCommandLine) {
  std::vector<std::string> args{"-c", file("")};
  std::istringstream in(kEvery);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    args.push_back("--" + line.substr(0, eq) + "=" + line.substr(eq + 3));
  }
  expect_every(load(args).tlsmap);
}

TEST_F(TlsmapConfig_, CommandLineListenReplacesTheFiles) {
  const std::string p = file("[tlsmap]\nlisten = inet:127.0.0.1:1\nlisten = inet:127.0.0.1:2\n");
  EXPECT_EQ(load({"-c", p}).tlsmap.listen.size(), 2u);
  EXPECT_EQ(load({"-c", p, "--listen", "unix:/tmp/t.sock"}).tlsmap.listen, std::vector<std::string>{"unix:/tmp/t.sock"});
}

TEST_F(TlsmapConfig_, BadValues) {
  const std::string empty = file("");
  for (const char* bad : {"inet:localhost:8461", "inet:127.0.0.1", "inet:127.0.0.1:0", "inet:127.0.0.1:70000",
                          "inet:::1:25", "unix:relative.sock", "tcp:127.0.0.1:25", "127.0.0.1:8461"}) {
    EXPECT_NE(error_of({"-c", empty, "--listen", bad}).find("--listen: bad value"), std::string::npos) << bad;
  }
  EXPECT_NE(error_of({"-c", empty, "--on-unknown", "tempfail"}).find("expected one of: accept, defer"), std::string::npos);
  EXPECT_NE(error_of({"-c", empty, "--workers", "0"}).find("between 1 and 256"), std::string::npos);
  for (const char* bad : {"a..b", "has space.example", "", ".."})
    EXPECT_NE(error_of({"-c", empty, "--dane-probe-name", bad}).find("--dane-probe-name: bad value"), std::string::npos)
        << bad;
  EXPECT_NE(error_of({"-c", empty, "--dane-trusted-resolver", "resolver.example"}).find("bad value"), std::string::npos);
  const std::string p = file("[tlsmap]\n\non-redis-error = maybe\n");
  EXPECT_NE(error_of({"-c", p}).find(p + ":3: [tlsmap] on-redis-error: bad value 'maybe'"), std::string::npos)
      << error_of({"-c", p});
  // Another program's options are not tlsmap's.
  EXPECT_NE(error_of({"-c", empty, "--header-name", "X"}).find("unrecognised option"), std::string::npos);
}

TEST_F(TlsmapConfig_, OptionNamesAndUsage) {
  const auto names = option_names(Program::tlsmap);
  const std::string u = usage(Program::tlsmap);
  EXPECT_NE(u.find("Usage: mta-sts-tlsmap"), std::string::npos);
  for (const auto& n : names) EXPECT_NE(u.find(n), std::string::npos) << n;
  EXPECT_EQ(names.size(), 5u + 33u + 18u);  // common (with --check-redis), [tlsmap], [redis]
}

}  // namespace
}  // namespace mtasts
