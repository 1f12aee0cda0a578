// Logging to syslog (facility mail by default) or stderr. Structured: a constant message
// plus key=value pairs; values from untrusted input (domains, addresses, errors from remote
// servers) are escaped so that a hostile name cannot forge a log line. Every line about a
// message carries its queue id, every line about a domain carries the domain.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace mtasts::log {

enum class Level { debug = 0, info, notice, warning, error };
enum class Target { syslog, stderr_ };

struct Setup {
  std::string ident = "mta-sts";
  Target target = Target::stderr_;
  Level min_level = Level::info;
  std::string facility = "mail";
  // Where syslog listens (glibc's _PATH_LOG). init() checks that it can be reached: when it
  // cannot (no syslog daemon), it says so once on stderr and lines go to stderr until it can
  // (checked again every 30 s), instead of being lost without a trace.
  std::string syslog_socket = "/dev/log";
};

void init(const Setup& s);
std::optional<Level> level_from_string(std::string_view s);
// True for the syslog facility names init() understands: mail, daemon, user, local0..local7.
// (Configuration checks use it; init() falls back to mail for an unknown name.)
bool is_facility_name(std::string_view name) noexcept;

using Field = std::pair<std::string_view, std::string_view>;
// Writes: "<msg> k1=v1 k2=\"v 2\"". Values are quoted when they contain spaces, '"' or '=',
// and control/non-ASCII bytes are written as \xNN.
void write(Level lvl, std::string_view msg, std::initializer_list<Field> fields = {});
std::string escape(std::string_view untrusted);
std::string format(std::string_view msg, std::initializer_list<Field> fields);

// An error that ends the program: logged as usual and, when the log does not already go to
// stderr, written to stderr too, so that whoever started the program sees why it stopped.
void fatal(std::string_view msg, std::initializer_list<Field> fields = {});

// True when lines go to stderr now (target stderr, or syslog unreachable).
bool writing_to_stderr();

inline void debug(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::debug, m, f); }
inline void info(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::info, m, f); }
inline void notice(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::notice, m, f); }
inline void warning(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::warning, m, f); }
inline void error(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::error, m, f); }

}  // namespace mtasts::log
