// mta-sts-milter as an operator runs it: --check, --version, graceful stop on SIGTERM, reload
// on SIGUSR1 and SIGHUP (twenty SIGHUPs do not stop it), start-up errors on stderr with the
// system's reason while logging to syslog, the socket (stale one replaced, live one refused, mode, inet), detaching with a pid file, and
// the privilege drop after the socket is open.
#include <gtest/gtest.h>

#include <csignal>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <thread>

#include "tests/integration/milter/harness.hpp"
#include "tests/support/redis_server.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::size_t count_of(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1)) ++n;
  return n;
}

struct MilterDaemonTest : ::testing::Test {
  TempDir dir{"mtasts-milter-daemon"};
  RedisServer redis;
  MilterOptions opts() const {
    MilterOptions o;
    o.redis_address = redis.address();
    return o;
  }
  RunResult check(const std::string& config_text) {
    const fs::path p = dir / "check.conf";
    write_file(p, config_text);
    return run({milter_binary().string(), "--config=" + p.string(), "--check"}, 20s);
  }
};

TEST_F(MilterDaemonTest, CheckModeAcceptsAGoodConfiguration) {
  const RunResult r = check(milter_config(opts(), "unix:" + (dir / "m.sock").string()));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("configuration OK"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir / "m.sock"));  // nothing was started
}

TEST_F(MilterDaemonTest, CheckModeRejectsABadSocket) {
  const RunResult r = check(milter_config(opts(), "tcp:25"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("socket"), std::string::npos) << r.err;
}

TEST_F(MilterDaemonTest, CheckModeRejectsAnUnknownKeyWithFileAndLine) {
  std::string text = milter_config(opts(), "unix:" + (dir / "m.sock").string());
  text += "on-unkown = tempfail\n";
  const RunResult r = check(text);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("check.conf:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("on-unkown"), std::string::npos) << r.err;
}

TEST_F(MilterDaemonTest, CheckModeRejectsABadValue) {
  std::string text = milter_config(opts(), "unix:" + (dir / "m.sock").string());
  text += "on-unknown = maybe\n";
  EXPECT_NE(check(text).exit_code, 0);
}

TEST_F(MilterDaemonTest, VersionAndHelp) {
  RunResult r = run({milter_binary().string(), "--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("mta-sts-milter " MTASTS_VERSION), std::string::npos) << r.out;
  r = run({milter_binary().string(), "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* o : {"--socket", "--redis-budget", "--on-unknown", "--on-redis-error", "--miss-wait"})
    EXPECT_NE(r.out.find(o), std::string::npos) << o;
}

TEST_F(MilterDaemonTest, StopsGracefullyOnSigterm) {
  CacheFiller(redis.address()).fill_standard();
  MilterDaemon m(dir.path(), opts());
  ASSERT_EQ(run_miltertest("tagging.lua", m.socket()).exit_code, 0) << m.log();
  const auto t0 = std::chrono::steady_clock::now();
  const int st = m.stop(15s);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 12s);
  ASSERT_TRUE(WIFEXITED(st)) << m.log();
  EXPECT_EQ(WEXITSTATUS(st), 0) << m.log();
  EXPECT_EQ(m.sanitizer_report(), "") << m.log();
  const std::string log = m.log();
  EXPECT_NE(log.find("stopped"), std::string::npos) << log;
  EXPECT_NE(log.find("redis="), std::string::npos) << log;  // the statistics line
  EXPECT_FALSE(fs::exists(dir / "milter.sock"));
}

TEST_F(MilterDaemonTest, ReloadsOnSigusr1) {
  CacheFiller(redis.address()).fill_standard();
  MilterDaemon m(dir.path(), opts());
  ASSERT_EQ(run_miltertest("announce.lua", m.socket(), {"phase=before"}).exit_code, 0) << m.log();

  // A broken file changes nothing.
  const std::string good = read_file(m.config_path());
  write_file(m.config_path(), good + "on-unknown = sometimes\n");
  m.process().signal(SIGUSR1);
  ASSERT_TRUE(m.wait_log("reload failed", 5s)) << m.log();
  EXPECT_EQ(run_miltertest("announce.lua", m.socket(), {"phase=before"}).exit_code, 0) << m.log();

  // A good one applies to new connections; a restart-only option is reported, not applied.
  MilterOptions o = opts();
  o.milter_lines = {"header-name = X-STS-Test", "socket-mode = 0600"};
  write_file(m.config_path(), milter_config(o, m.socket()));
  m.process().signal(SIGUSR1);
  ASSERT_TRUE(m.wait_log("configuration reloaded", 5s)) << m.log();
  EXPECT_NE(m.log().find("needs a restart; not applied option=socket-mode"), std::string::npos) << m.log();
  const RunResult r = run_miltertest("header_name.lua", m.socket());
  EXPECT_EQ(r.exit_code, 0) << r.out << m.log();
  EXPECT_TRUE(m.process().running());
  const int st = m.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << m.log();
  EXPECT_EQ(m.sanitizer_report(), "") << m.log();
}

TEST_F(MilterDaemonTest, SighupReloadsAndNeverStopsTheMilter) {
  CacheFiller(redis.address()).fill_standard();
  MilterDaemon m(dir.path(), opts());
  ASSERT_EQ(run_miltertest("announce.lua", m.socket(), {"phase=before"}).exit_code, 0) << m.log();

  // A postmaster's reflex, twenty times over: the filter stays up and keeps answering.
  for (int i = 0; i < 20; ++i) {
    m.process().signal(SIGHUP);
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(m.wait_log("configuration reloaded", 5s)) << m.log();
  std::this_thread::sleep_for(500ms);  // let the last reloads finish
  ASSERT_TRUE(m.process().running()) << m.log();
  EXPECT_EQ(m.log().find("stopped"), std::string::npos) << m.log();
  EXPECT_EQ(run_miltertest("announce.lua", m.socket(), {"phase=before"}).exit_code, 0) << m.log();

  // A changed option is applied by SIGHUP.
  MilterOptions o = opts();
  o.milter_lines = {"header-name = X-STS-Test"};
  write_file(m.config_path(), milter_config(o, m.socket()));
  const std::size_t before = count_of(m.log(), "configuration reloaded");
  m.process().signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return count_of(m.log(), "configuration reloaded") > before; }, 5s)) << m.log();
  const RunResult r = run_miltertest("header_name.lua", m.socket());
  EXPECT_EQ(r.exit_code, 0) << r.out << m.log();

  // SIGTERM still stops it, with status 0.
  const int st = m.stop();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << m.log();
  EXPECT_EQ(m.sanitizer_report(), "") << m.log();
}

// With `log = syslog` (the default) and no syslog daemon on this machine, a milter that cannot
// start must still say why, on stderr, in the system's words.
RunResult start_failing(const fs::path& dir, const std::string& redis_address, const std::string& socket) {
  write_file(dir / "fail.conf",
             "[redis]\naddress = " + redis_address + "\n[milter]\nlog = syslog\nsocket = " + socket + "\n");
  return run({milter_binary().string(), "--config=" + (dir / "fail.conf").string()}, 20s);
}

TEST_F(MilterDaemonTest, MissingSocketDirectoryIsReportedOnStderr) {
  const std::string socket = "unix:" + (dir / "no-such-dir" / "milter.sock").string();
  const RunResult r = start_failing(dir.path(), redis.address(), socket);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot open milter socket " + socket + ": No such file or directory"), std::string::npos)
      << r.err;
  if (!fs::exists("/dev/log")) {
    // Said once, before anything else is lost.
    EXPECT_EQ(count_of(r.err, "cannot reach syslog"), 1u) << r.err;
  }
}

TEST_F(MilterDaemonTest, PortInUseIsReportedOnStderr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string socket = "inet:" + std::to_string(ntohs(a.sin_port)) + "@127.0.0.1";
  const RunResult r = start_failing(dir.path(), redis.address(), socket);
  ::close(fd);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot open milter socket " + socket + ": Address already in use"), std::string::npos)
      << r.err;
}

// A socket file left by a crash: bound, never unlinked, nobody listening.
void make_stale_socket(const fs::path& p) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", p.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::close(fd);
  ASSERT_TRUE(fs::is_socket(p));
}

TEST_F(MilterDaemonTest, ReplacesAStaleSocket) {
  make_stale_socket(dir / "milter.sock");
  CacheFiller(redis.address()).fill_standard();
  MilterDaemon m(dir.path(), opts());
  EXPECT_NE(m.log().find("removed stale socket"), std::string::npos) << m.log();
  EXPECT_EQ(run_miltertest("announce.lua", m.socket(), {"phase=before"}).exit_code, 0) << m.log();
}

TEST_F(MilterDaemonTest, RefusesASocketInUse) {
  MilterDaemon first(dir.path(), opts());
  TempDir other("mtasts-milter-second");
  MilterOptions o = opts();
  o.socket = first.socket();
  write_file(other / "milter.conf", milter_config(o, o.socket));
  const RunResult r = run({milter_binary().string(), "--config=" + (other / "milter.conf").string()}, 20s);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("another process is listening"), std::string::npos) << r.out << r.err;
  EXPECT_TRUE(first.process().running());
  EXPECT_TRUE(fs::is_socket(dir / "milter.sock"));
}

TEST_F(MilterDaemonTest, SocketModeIsApplied) {
  MilterOptions o = opts();
  o.milter_lines = {"socket-mode = 0600"};
  MilterDaemon m(dir.path(), o);
  struct stat st{};
  ASSERT_EQ(::stat((dir / "milter.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(MilterDaemonTest, DefaultSocketModeIs0660) {
  MilterDaemon m(dir.path(), opts());
  struct stat st{};
  ASSERT_EQ(::stat((dir / "milter.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(MilterDaemonTest, ListensOnInet) {
  CacheFiller(redis.address()).fill_standard();
  MilterOptions o = opts();
  o.socket = "inet:" + std::to_string(free_tcp_port()) + "@127.0.0.1";
  MilterDaemon m(dir.path(), o);
  const RunResult r = run_miltertest("announce.lua", m.socket(), {"phase=before"});
  EXPECT_EQ(r.exit_code, 0) << r.out << m.log();
}

bool alive(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  const auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

TEST_F(MilterDaemonTest, DetachesWithAPidFile) {
  CacheFiller(redis.address()).fill_standard();
  MilterOptions o = opts();
  const fs::path pid_file = dir / "milter.pid";
  o.milter_lines = {"daemonize = yes", "pid-file = " + pid_file.string()};
  const std::string socket = "unix:" + (dir / "milter.sock").string();
  write_file(dir / "milter.conf", milter_config(o, socket));
  const RunResult r = run({milter_binary().string(), "--config=" + (dir / "milter.conf").string()}, 20s);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;  // the foreground process returns at once
  ASSERT_TRUE(wait_until([&] { return fs::exists(pid_file) && fs::is_socket(dir / "milter.sock"); }, 10s));
  const pid_t pid = static_cast<pid_t>(std::stol(read_file(pid_file)));
  ASSERT_GT(pid, 1);
  EXPECT_TRUE(alive(pid));
  const RunResult t = run_miltertest("announce.lua", socket, {"phase=before"});
  EXPECT_EQ(t.exit_code, 0) << t.out;
  ::kill(pid, SIGTERM);
  EXPECT_TRUE(wait_until([&] { return !alive(pid); }, 15s));
  EXPECT_TRUE(wait_until([&] { return !fs::exists(pid_file); }, 5s));
}

TEST_F(MilterDaemonTest, DropsPrivilegesAfterOpeningTheSocket) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  CacheFiller(redis.address()).fill_standard();
  MilterOptions o = opts();
  o.milter_lines = {"user = nobody"};
  MilterDaemon m(dir.path(), o);
  struct stat st{};
  ASSERT_EQ(::stat((dir / "milter.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);  // owned by the user, so that socket-mode's group bits apply
  const std::string status = read_file("/proc/" + std::to_string(m.process().pid()) + "/status");
  const auto uid = status.find("Uid:");
  ASSERT_NE(uid, std::string::npos);
  EXPECT_NE(status.substr(uid, status.find('\n', uid) - uid).find("65534"), std::string::npos) << status;
  // And it still reaches Redis and tags as the unprivileged user.
  const RunResult r = run_miltertest("announce.lua", m.socket(), {"phase=before"});
  EXPECT_EQ(r.exit_code, 0) << r.out << m.log();
}

}  // namespace
}  // namespace mtasts::test
