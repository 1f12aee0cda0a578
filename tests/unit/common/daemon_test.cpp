// Daemon helpers that can be tested without root or systemd: the pid file and sd_notify.
#include "common/daemon/daemon.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <random>

#include "common/util/log.hpp"
#include "tests/support/process.hpp"

namespace mtasts {
namespace {

using test::TempDir;

TEST(PidFile, WritesOurPidAndRemovesOnlyOurs) {
  TempDir dir("pidfile");
  const std::string path = (dir / "d.pid").string();
  std::string err;
  ASSERT_TRUE(daemon::write_pid_file(path, &err)) << err;
  EXPECT_EQ(test::read_file(path), std::to_string(getpid()) + "\n");
  // Rewriting our own pid file is fine (e.g. after a reload).
  ASSERT_TRUE(daemon::write_pid_file(path, &err)) << err;
  daemon::remove_pid_file(path);
  EXPECT_FALSE(std::filesystem::exists(path));

  test::write_file(path, std::to_string(getppid()) + "\n");
  daemon::remove_pid_file(path);
  EXPECT_TRUE(std::filesystem::exists(path)) << "another process's pid file was removed";
}

TEST(PidFile, RefusesALiveProcess) {
  TempDir dir("pidfile");
  const std::string path = (dir / "d.pid").string();
  test::Process other({"sleep", "30"});
  test::write_file(path, std::to_string(other.pid()) + "\n");
  std::string err;
  EXPECT_FALSE(daemon::write_pid_file(path, &err));
  EXPECT_NE(err.find("running process " + std::to_string(other.pid())), std::string::npos) << err;
  EXPECT_EQ(test::read_file(path), std::to_string(other.pid()) + "\n") << "must not be overwritten";
}

TEST(PidFile, GuardHoldsTheFileForItsLifetime) {
  TempDir dir("pidfile");
  const std::string path = (dir / "d.pid").string();
  std::string err;
  {
    auto guard = daemon::PidFile::create(path, &err);
    ASSERT_TRUE(guard) << err;
    EXPECT_EQ(test::read_file(path), std::to_string(getpid()) + "\n");
    auto moved = std::move(*guard);  // the moved-from guard must not remove it
    guard.reset();
    EXPECT_TRUE(std::filesystem::exists(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(daemon::PidFile::create("", &err)) << "no path: nothing to hold, no error";

  test::Process other({"sleep", "30"});
  test::write_file(path, std::to_string(other.pid()) + "\n");
  EXPECT_FALSE(daemon::PidFile::create(path, &err));
  EXPECT_NE(err.find("running process"), std::string::npos) << err;
}

TEST(PidFile, ReplacesAStaleOrGarbledFile) {
  TempDir dir("pidfile");
  const std::string path = (dir / "d.pid").string();
  pid_t dead = fork();
  ASSERT_GE(dead, 0);
  if (dead == 0) _exit(0);
  ASSERT_EQ(waitpid(dead, nullptr, 0), dead);  // reaped: the pid is no longer in use
  std::string err;
  for (const std::string& content : {std::to_string(dead) + "\n", std::string("garbage\n"), std::string("")}) {
    test::write_file(path, content);
    EXPECT_TRUE(daemon::write_pid_file(path, &err)) << content << ": " << err;
    EXPECT_EQ(test::read_file(path), std::to_string(getpid()) + "\n");
  }
  EXPECT_FALSE(daemon::write_pid_file((dir / "missing-dir" / "d.pid").string(), &err));
  EXPECT_FALSE(err.empty());
}

// A datagram socket standing in for systemd's notification socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& name, bool abstract) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, name.data(), name.size());
    if (abstract) a.sun_path[0] = '\0';
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (abstract ? 0 : 1));
    ok_ = fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&a), len) == 0;
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return ok_; }
  std::string receive() {
    char buf[512];
    const ssize_t n = recv(fd_, buf, sizeof buf, 0);
    return n < 0 ? std::string("<nothing: ") + std::strerror(errno) + ">" : std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

TEST(Notify, SendsReadyToAPathSocket) {
  TempDir dir("notify");
  const std::string path = (dir / "notify.sock").string();
  NotifySocket sock(path, false);
  ASSERT_TRUE(sock.ok());
  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  daemon::notify("READY=1");
  EXPECT_EQ(sock.receive(), "READY=1");
  daemon::notify("STATUS=serving 3 domains");
  EXPECT_EQ(sock.receive(), "STATUS=serving 3 domains");
  unsetenv("NOTIFY_SOCKET");
}

TEST(Notify, SendsToAnAbstractSocket) {
  std::random_device rd;
  const std::string name = "@mtasts-notify-test-" + std::to_string(getpid()) + "-" + std::to_string(rd());
  NotifySocket sock(name, true);
  ASSERT_TRUE(sock.ok());
  setenv("NOTIFY_SOCKET", name.c_str(), 1);
  daemon::notify("READY=1");
  EXPECT_EQ(sock.receive(), "READY=1");
  unsetenv("NOTIFY_SOCKET");
}

TEST(Notify, WithoutASocketIsANoOp) {
  unsetenv("NOTIFY_SOCKET");
  EXPECT_NO_THROW(daemon::notify("READY=1"));
  setenv("NOTIFY_SOCKET", "/nonexistent/dir/sock", 1);
  EXPECT_NO_THROW(daemon::notify("READY=1"));
  setenv("NOTIFY_SOCKET", "relative", 1);
  EXPECT_NO_THROW(daemon::notify("READY=1"));
  unsetenv("NOTIFY_SOCKET");
}

TEST(DropPrivileges, NoUserIsANoOp) {
  DaemonConfig cfg;
  EXPECT_NO_THROW(daemon::drop_privileges(cfg));
  EXPECT_EQ(geteuid(), geteuid());
}

TEST(DropPrivileges, RootWithoutUserIsWarnedAbout) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  TempDir dir("rootwarn");
  const std::string path = (dir / "stderr").string();
  log::init({"mta-sts-test", log::Target::stderr_, log::Level::info, "mail"});
  const int saved = dup(2);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  dup2(fd, 2);
  ::close(fd);
  daemon::drop_privileges(DaemonConfig{});
  dup2(saved, 2);
  ::close(saved);
  const std::string text = test::read_file(path);
  EXPECT_NE(text.find("warning: running as root: set `user`"), std::string::npos) << text;
}

TEST(DropPrivileges, UnknownUserIsAnError) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  DaemonConfig cfg;
  cfg.user = "no-such-user-mtasts";
  EXPECT_THROW(daemon::drop_privileges(cfg), std::runtime_error);
  EXPECT_EQ(geteuid(), 0u);
}

TEST(DropPrivileges, DropsToNobodyInAChild) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  // In a child: the test process itself must keep its privileges.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    DaemonConfig cfg;
    cfg.user = "nobody";
    try {
      daemon::drop_privileges(cfg);
    } catch (...) {
      _exit(2);
    }
    _exit(geteuid() != 0 && getuid() != 0 && setuid(0) != 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Detach, NotDaemonizingIsANoOp) {
  DaemonConfig cfg;
  const pid_t before = getpid();
  daemon::detach(cfg);
  EXPECT_EQ(getpid(), before);
}

}  // namespace
}  // namespace mtasts
