// What both daemons do the same way: logging set-up, detaching, the pid file, dropping root
// and telling systemd that start-up is complete. sd_notify is written by hand (one datagram
// to $NOTIFY_SOCKET) so that there is no libsystemd dependency on machines without systemd.
#include "common/daemon/daemon.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "common/util/log.hpp"

namespace mtasts::daemon {

namespace {

std::runtime_error sys_error(const std::string& what, int e = errno) {
  return std::runtime_error(what + ": " + std::strerror(e));
}

// The pid recorded in a pid file, or 0 when there is none or it is not a number.
pid_t read_pid(const std::string& path) {
  std::ifstream in(path);
  if (!in) return 0;
  long long pid = 0;
  if (!(in >> pid) || pid <= 0 || pid > 0x7fffffff) return 0;
  return static_cast<pid_t>(pid);
}

bool process_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

}  // namespace

void init_logging(const DaemonConfig& cfg, const std::string& ident) {
  log::Setup s;
  s.ident = ident;
  s.target = cfg.log == "stderr" ? log::Target::stderr_ : log::Target::syslog;
  s.min_level = log::level_from_string(cfg.log_level).value_or(log::Level::info);
  s.facility = cfg.log_facility;
  log::init(s);
}

void detach(const DaemonConfig& cfg) {
  if (!cfg.daemonize) return;
  // Double fork: the daemon is not a session leader, so it can never acquire a terminal.
  pid_t pid = ::fork();
  if (pid < 0) throw sys_error("fork");
  if (pid > 0) ::_exit(0);
  if (::setsid() < 0) throw sys_error("setsid");
  pid = ::fork();
  if (pid < 0) throw sys_error("fork");
  if (pid > 0) ::_exit(0);
  if (::chdir("/") != 0) throw sys_error("chdir /");
  const int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd < 0) throw sys_error("open /dev/null");
  for (int target = 0; target <= 2; ++target) {
    if (::dup2(fd, target) < 0) throw sys_error("dup2");
  }
  if (fd > 2) ::close(fd);
}

bool write_pid_file(const std::string& path, std::string* error) {
  auto fail = [error](std::string msg) {
    if (error) *error = std::move(msg);
    return false;
  };
  if (path.empty()) return fail("no pid file path");
  const pid_t old = read_pid(path);
  if (old > 0 && old != ::getpid() && process_alive(old))
    return fail("pid file " + path + " belongs to running process " + std::to_string(old));
  // Write a temporary file and rename it, so that a reader never sees a half-written pid.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return fail("cannot create " + tmp + ": " + std::strerror(errno));
  const std::string text = std::to_string(::getpid()) + "\n";
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int write_errno = errno;
  if (::close(fd) != 0 || n != static_cast<ssize_t>(text.size())) {
    ::unlink(tmp.c_str());
    return fail("cannot write " + tmp + ": " + std::strerror(n < 0 ? write_errno : EIO));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return fail("cannot rename " + tmp + " to " + path + ": " + std::strerror(e));
  }
  return true;
}

std::optional<PidFile> PidFile::create(const std::string& path, std::string* error) {
  if (!path.empty() && !write_pid_file(path, error)) return std::nullopt;
  return PidFile(path);
}

void remove_pid_file(const std::string& path) {
  // Only our own: a second instance that failed to start must not remove the first one's.
  if (!path.empty() && read_pid(path) == ::getpid()) ::unlink(path.c_str());
}

void drop_privileges(const DaemonConfig& cfg) {
  if (cfg.user.empty()) {
    // Allowed (a test, a container that is root-less in fact), but never by accident.
    if (::geteuid() == 0)
      log::warning("running as root: set `user` (e.g. user = mta-sts) so that the daemon drops root after start-up");
    return;
  }
  if (::geteuid() != 0) return;

  long bufsize = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(bufsize > 0 ? static_cast<std::size_t>(bufsize) : 16384);
  passwd pw{};
  passwd* pw_result = nullptr;
  int rc;
  while ((rc = ::getpwnam_r(cfg.user.c_str(), &pw, buf.data(), buf.size(), &pw_result)) == ERANGE)
    buf.resize(buf.size() * 2);
  if (rc != 0) throw sys_error("user " + cfg.user, rc);
  if (!pw_result) throw std::runtime_error("user " + cfg.user + ": no such user");
  const uid_t uid = pw.pw_uid;
  gid_t gid = pw.pw_gid;

  if (!cfg.group.empty()) {
    bufsize = ::sysconf(_SC_GETGR_R_SIZE_MAX);
    std::vector<char> gbuf(bufsize > 0 ? static_cast<std::size_t>(bufsize) : 16384);
    group gr{};
    group* gr_result = nullptr;
    while ((rc = ::getgrnam_r(cfg.group.c_str(), &gr, gbuf.data(), gbuf.size(), &gr_result)) == ERANGE)
      gbuf.resize(gbuf.size() * 2);
    if (rc != 0) throw sys_error("group " + cfg.group, rc);
    if (!gr_result) throw std::runtime_error("group " + cfg.group + ": no such group");
    gid = gr.gr_gid;
  }

  // Order matters: supplementary groups and the gid can only be changed while still root.
  if (::initgroups(cfg.user.c_str(), gid) != 0) throw sys_error("initgroups " + cfg.user);
  if (::setgid(gid) != 0) throw sys_error("setgid " + std::to_string(gid));
  if (::setuid(uid) != 0) throw sys_error("setuid " + std::to_string(uid));
  if (uid != 0 && (::setuid(0) == 0 || ::geteuid() == 0))
    throw std::runtime_error("privileges could be regained after dropping them to " + cfg.user);
}

namespace {
// Is something listening on this unix socket? (connect() succeeds only then)
bool unix_socket_alive(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  const int r = ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
  ::close(fd);
  return r == 0;
}
}  // namespace

void clear_stale_socket(const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path + " exists and is not a socket");
  if (unix_socket_alive(path)) throw std::runtime_error("another process is listening on " + path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw std::runtime_error("cannot remove stale socket " + path + ": " + std::strerror(errno));
  log::notice("removed stale socket", {{"path", path}});
}

void chown_socket(const std::string& path, const DaemonConfig& cfg) {
  if (cfg.user.empty() || ::geteuid() != 0) return;
  const passwd* pw = ::getpwnam(cfg.user.c_str());
  if (!pw) throw std::runtime_error("unknown user " + cfg.user);
  gid_t gid = pw->pw_gid;
  if (!cfg.group.empty()) {
    const group* gr = ::getgrnam(cfg.group.c_str());
    if (!gr) throw std::runtime_error("unknown group " + cfg.group);
    gid = gr->gr_gid;
  }
  if (::chown(path.c_str(), pw->pw_uid, gid) != 0)
    throw std::runtime_error("chown " + path + ": " + std::strerror(errno));
}

void notify(const std::string& state) {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (!env || !*env) return;
  const std::string path = env;
  if (path[0] != '/' && path[0] != '@') return;  // not a socket we know how to reach

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return;
  std::memcpy(addr.sun_path, path.data(), path.size());
  // "@name" is Linux's abstract namespace: a leading NUL, and the length counts exactly.
  if (path[0] == '@') addr.sun_path[0] = '\0';
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  if (::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), len) < 0)
    log::debug("sd_notify failed", {{"socket", path}, {"error", std::strerror(errno)}});
  ::close(fd);
}

void log_restart_needed(const char* option) {
  log::warning("option changed but needs a restart; not applied", {{"option", option}});
}

void keep_startup_settings(const DaemonConfig& a, DaemonConfig& b) {
  keep_setting("daemonize", b.daemonize, a.daemonize);
  keep_setting("pid-file", b.pid_file, a.pid_file);
  keep_setting("user", b.user, a.user);
  keep_setting("group", b.group, a.group);
  keep_setting("log", b.log, a.log);
  keep_setting("log-level", b.log_level, a.log_level);
  keep_setting("log-facility", b.log_facility, a.log_facility);
  keep_setting("metrics-listen", b.metrics_listen, a.metrics_listen);
}

}  // namespace mtasts::daemon
