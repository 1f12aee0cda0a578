// What both daemons do the same way: detach, pid file, privilege drop, readiness
// notification (sd_notify protocol, written by hand: a datagram to $NOTIFY_SOCKET), and
// logging set-up from DaemonConfig.
#pragma once

#include <string>

#include "common/config.hpp"

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

// Drops root to cfg.user/cfg.group (initgroups, setgid, setuid, verifies it cannot regain
// root). No-op when cfg.user is empty or we are not root. Throws std::runtime_error.
void drop_privileges(const DaemonConfig& cfg);

// sd_notify("READY=1"), ("STOPPING=1"), ("STATUS=...") when $NOTIFY_SOCKET is set.
void notify(const std::string& state);

}  // namespace mtasts::daemon
