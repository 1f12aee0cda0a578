// What both daemons do the same way: detach, pid file, privilege drop, readiness
// notification (sd_notify protocol, written by hand: a datagram to $NOTIFY_SOCKET), and
// logging set-up from DaemonConfig.
#pragma once

#include <optional>
#include <string>

#include "common/daemon/config.hpp"

namespace mtasts::daemon {

// Sets up logging per cfg (syslog facility or stderr) with `ident`.
void init_logging(const DaemonConfig& cfg, const std::string& ident);

// Forks into the background (double fork, setsid, chdir /, stdio to /dev/null) when
// cfg.daemonize. Throws std::runtime_error on failure.
void detach(const DaemonConfig& cfg);

// Writes the pid file (O_EXCL-free, but refuses when another live process holds it).
// Returns false with *error set on failure. remove_pid_file() at exit.
bool write_pid_file(const std::string& path, std::string* error);
void remove_pid_file(const std::string& path);

// A pid file held for the life of the daemon: written by create(), removed by the
// destructor, whatever path the daemon leaves by. An empty path holds nothing.
class PidFile {
 public:
  // nullopt (with *error set) when the file cannot be written or a live process holds it.
  static std::optional<PidFile> create(const std::string& path, std::string* error);
  PidFile(PidFile&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  PidFile& operator=(PidFile&&) = delete;
  PidFile(const PidFile&) = delete;
  ~PidFile() {
    if (!path_.empty()) remove_pid_file(path_);
  }

 private:
  explicit PidFile(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// Drops root to cfg.user/cfg.group (initgroups, setgid, setuid, verifies it cannot regain
// root). No-op when cfg.user is empty or we are not root. Throws std::runtime_error.
void drop_privileges(const DaemonConfig& cfg);

// A unix socket left behind by a crash is removed; a live one (another instance listening)
// or a file that is not a socket is an error. Throws std::runtime_error.
void clear_stale_socket(const std::string& path);
// Gives a unix socket to cfg.user (and cfg.group) when running as root, so that the socket
// mode's group bits let the MTA's user in. No-op without a user or when not root. Throws.
void chown_socket(const std::string& path, const DaemonConfig& cfg);

// For a reload that cannot apply a setting used once at start-up: keeps the running value
// and logs, when the new configuration asks for another, that it needs a restart.
void log_restart_needed(const char* option);
template <class T>
void keep_setting(const char* option, T& next, const T& running) {
  if (next != running) log_restart_needed(option);
  next = running;
}
// keep_setting() for every DaemonConfig field (process, logging, metrics endpoint).
void keep_startup_settings(const DaemonConfig& running, DaemonConfig& next);

// sd_notify("READY=1"), ("STOPPING=1"), ("STATUS=...") when $NOTIFY_SOCKET is set.
void notify(const std::string& state);

}  // namespace mtasts::daemon
