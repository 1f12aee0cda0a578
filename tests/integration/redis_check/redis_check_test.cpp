// What an operator does on one host with the shipped Redis ACLs (etc/redis-acl.conf, the
// passwords replaced): each program connects as its own user from one shared configuration
// file, `--check-redis` passes for each program with its own user and names the problem
// otherwise (NOPERM with another program's user, WRONGPASS with a wrong password,
// unreachable with a dead address), the checks leave no trace in Redis, the ACLs allow exactly
// the commands the programs need, and the fetcher logs a refused password as WRONGPASS, not as
// an outage.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/daemon/config.hpp"
#include "common/daemon/redis_check.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_acl.hpp"
#include "tests/support/redis_server.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const char* kWho[] = {"milter", "cached", "ctl", "tlsmap"};

std::string binary(const std::string& who) {
  if (who == "milter") return MTASTS_MILTER_BIN;
  if (who == "cached") return MTASTS_CACHED_BIN;
  if (who == "tlsmap") return MTASTS_TLSMAP_BIN;
  return MTASTS_CTL_BIN;
}

Program program(const std::string& who) {
  if (who == "milter") return Program::milter;
  if (who == "cached") return Program::cached;
  if (who == "tlsmap") return Program::tlsmap;
  return Program::ctl;
}

// The shipped users with test passwords. "user default off" stays out so that the harness
// (redis-cli without AUTH) can see that the server is up and inspect what the checks left.
std::string acl_conf() {
  return acl_user_lines(source_dir() / "etc/redis-acl.conf", [](const std::string& who) { return "pw-" + who; }, false);
}

class RedisCheck : public ::testing::Test {
 protected:
  TempDir dir{"mtasts-redis-check"};
  RedisServer redis{acl_conf()};

  void SetUp() override {
    for (const char* who : kWho) write_file(dir / (std::string(who) + ".password"), std::string("pw-") + who + "\n");
  }

  // One file for the whole host, as mta-sts.conf(5) EXAMPLES shows: each program its user.
  fs::path host_config(const std::string& address, const std::string& extra = "") {
    std::string c = "[redis]\naddress = " + address + "\nconnect-timeout = 2s\ncommand-timeout = 2s\n";
    for (const char* who : kWho) {
      c += std::string("[") + who + "]\nredis-acl-user = mta-sts-" + who + "\nredis-acl-password-file = " +
           (dir / (std::string(who) + ".password")).string() + "\n";
      if (std::string(who) != "ctl") c += "log = stderr\n";
    }
    c += extra;
    const fs::path p = dir / "mta-sts.conf";
    write_file(p, c);
    return p;
  }

  // `who`'s --check-redis, connecting as `as` with `password_of`'s password file.
  RunResult check(const std::string& who, const std::string& as, const std::string& password_of) {
    const fs::path p = dir / ("check-" + who + ".conf");
    write_file(p, "[redis]\naddress = " + redis.address() + "\n[" + who + "]\nredis-acl-user = mta-sts-" + as +
                      "\nredis-acl-password-file = " + (dir / (password_of + ".password")).string() + "\n");
    return run({binary(who), "-c", p.string(), "--check-redis"}, 30s);
  }
};

TEST_F(RedisCheck, EachProgramPassesWithItsOwnUser) {
  const fs::path conf = host_config(redis.address());
  for (const char* who : kWho) {
    const RunResult r = run({binary(who), "-c", conf.string(), "--check-redis"}, 30s);
    EXPECT_EQ(r.exit_code, 0) << who << ": " << r.out << r.err;
    EXPECT_NE(r.out.find("redis OK"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("user mta-sts-" + std::string(who)), std::string::npos) << r.out;
  }
  // The README's check step works with the shipped ACLs and nothing on the command line.
  const RunResult stats = run({binary("ctl"), "-c", conf.string(), "cache", "stats"}, 30s);
  EXPECT_EQ(stats.exit_code, 0) << stats.out << stats.err;
  EXPECT_NE(stats.out.find("misses"), std::string::npos) << stats.out;
}

TEST_F(RedisCheck, AnotherProgramsUserIsNopermNamingTheCommand) {
  // Every program needs something the others' users may not do.
  const std::vector<std::tuple<std::string, std::string, std::string>> cases{
      // The fetcher's first write probe is the fenced write, a script: EVAL.
      {"milter", "cached", "SUBSCRIBE"}, {"milter", "ctl", "SUBSCRIBE"}, {"cached", "milter", "EVAL"},
      {"cached", "ctl", "EVAL"},         {"ctl", "milter", "SCAN"},      {"ctl", "cached", "SCAN"},
      {"tlsmap", "cached", "SUBSCRIBE"}, {"cached", "tlsmap", "EVAL"}};
  for (const auto& [who, as, command] : cases) {
    const RunResult r = check(who, as, as);
    EXPECT_EQ(r.exit_code, 3) << who << " as " << as << ": " << r.out << r.err;
    EXPECT_NE(r.err.find("NOPERM"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("run " + command), std::string::npos) << who << " as " << as << ": " << r.err;
    EXPECT_NE(r.err.find("mta-sts-" + as), std::string::npos) << r.err;
  }
}

TEST_F(RedisCheck, WrongPasswordIsWrongpass) {
  for (const char* who : kWho) {
    const RunResult r = check(who, who, who == std::string("ctl") ? "milter" : "ctl");
    EXPECT_EQ(r.exit_code, 3) << who << ": " << r.out << r.err;
    EXPECT_NE(r.err.find("WRONGPASS"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("unreachable"), std::string::npos) << r.err;
  }
}

TEST_F(RedisCheck, DeadAddressIsUnreachable) {
  const fs::path conf = host_config("unix:" + (dir / "nobody-listens.sock").string());
  for (const char* who : kWho) {
    const RunResult r = run({binary(who), "-c", conf.string(), "--check-redis"}, 30s);
    EXPECT_EQ(r.exit_code, 3) << who << ": " << r.out << r.err;
    EXPECT_NE(r.err.find("unreachable"), std::string::npos) << r.err;
  }
}

TEST_F(RedisCheck, BadConfigurationIsExitTwoInEveryProgram) {
  const fs::path conf = host_config(redis.address(), "[redis]\nbogus = 1\n");
  for (const char* who : kWho) {
    for (const char* mode : {"--check", "--check-redis"}) {
      const RunResult r = run({binary(who), "-c", conf.string(), mode}, 30s);
      EXPECT_EQ(r.exit_code, 2) << who << " " << mode << ": " << r.out << r.err;
      EXPECT_NE(r.err.find("mta-sts.conf:"), std::string::npos) << r.err;
      // One prefix, not "mta-sts-ctl: mta-sts-ctl: ..."
      EXPECT_EQ(r.err.find(": mta-sts-"), std::string::npos) << r.err;
    }
  }
}

TEST_F(RedisCheck, ChecksLeaveNoTrace) {
  const fs::path conf = host_config(redis.address());
  for (const char* who : kWho) ASSERT_EQ(run({binary(who), "-c", conf.string(), "--check-redis"}, 30s).exit_code, 0);
  EXPECT_EQ(redis.cli({"DBSIZE"}), "0");
  EXPECT_EQ(redis.cli({"KEYS", "*"}), "");
}

TEST_F(RedisCheck, ShippedAclsAllowExactlyWhatEachProgramNeeds) {
  for (const char* who : kWho) {
    const std::string user = std::string("user mta-sts-") + who + " ";
    auto lines = lines_of(acl_conf());
    auto it = std::find_if(lines.begin(), lines.end(), [&](const std::string& l) { return l.rfind(user, 0) == 0; });
    ASSERT_NE(it, lines.end()) << user;
    std::set<std::string> allowed;
    std::istringstream words(*it);
    for (std::string w; words >> w;) {
      if (w.size() > 1 && w[0] == '+') {
        std::string c = w.substr(1);
        for (char& ch : c) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        allowed.insert(c);
      }
    }
    std::set<std::string> needed;
    for (const auto& c : redis_commands(program(who))) needed.insert(c);
    needed.insert({"PING", "AUTH", "SELECT", "ROLE"});  // reachability, authentication, `db`, the primary check
    EXPECT_EQ(allowed, needed) << who;
  }
}

TEST_F(RedisCheck, CommandLineUserWinsOverTheFilesProgramUser) {
  const fs::path conf = host_config(redis.address());
  // The file says mta-sts-milter for the milter; the command line asks for the fetcher's user
  // (with its password): the command line wins, and that user may not SUBSCRIBE.
  const RunResult r = run({binary("milter"), "-c", conf.string(), "--check-redis", "--redis-user", "mta-sts-cached",
                           "--redis-password-file", (dir / "cached.password").string()},
                          30s);
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("mta-sts-cached"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("NOPERM"), std::string::npos) << r.err;
}

TEST_F(RedisCheck, FetcherLogsARefusedPasswordAsWrongpass) {
  write_file(dir / "cached.password", "not-the-password\n");
  const fs::path conf = host_config(redis.address());
  Process p({binary("cached"), "-c", conf.string()}, dir / "cached.log");
  const bool seen = wait_until(
      [&] { return read_file(dir / "cached.log").find("problem=WRONGPASS") != std::string::npos; }, 10s);
  p.stop();
  const std::string log = read_file(dir / "cached.log");
  EXPECT_TRUE(seen) << log;
  EXPECT_EQ(log.find("redis unreachable"), std::string::npos) << log;
  EXPECT_EQ(log.find("problem=unreachable"), std::string::npos) << log;
}

TEST_F(RedisCheck, MilterLogsMissingPermissionsAtStartAsNoperm) {
  // The milter started as the ctl user: it can read entries but not subscribe.
  write_file(dir / "milter.conf", "[redis]\naddress = " + redis.address() +
                                      "\n[milter]\nlog = stderr\nsocket = unix:" + (dir / "m.sock").string() +
                                      "\nredis-acl-user = mta-sts-ctl\nredis-acl-password-file = " +
                                      (dir / "ctl.password").string() + "\n");
  Process p({binary("milter"), "-c", (dir / "milter.conf").string()}, dir / "milter.log");
  const bool seen = wait_until(
      [&] { return read_file(dir / "milter.log").find("problem=NOPERM") != std::string::npos; }, 10s);
  p.stop();
  const std::string log = read_file(dir / "milter.log");
  EXPECT_TRUE(seen) << log;
  EXPECT_NE(log.find("SUBSCRIBE"), std::string::npos) << log;
}

TEST_F(RedisCheck, FetcherStartErrorsReachStderrUnderSyslog) {
  // log = syslog (the default) and, on this machine, nothing listening on /dev/log.
  write_file(dir / "cached.conf", "[redis]\naddress = " + redis.address() + "\n[cached]\npid-file = " +
                                      (dir / "no-such-dir" / "cached.pid").string() + "\n");
  const RunResult r = run({binary("cached"), "-c", (dir / "cached.conf").string()}, 30s);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot write pid file"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("No such file or directory"), std::string::npos) << r.err;
  if (!fs::exists("/dev/log")) {
    EXPECT_NE(r.err.find("cannot reach syslog"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace mtasts::test
