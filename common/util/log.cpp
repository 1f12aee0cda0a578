// Process-wide logger: syslog or stderr, one line per call, safe from any thread (libmilter
// runs a thread per SMTP connection). Untrusted values are escaped so that one line of input
// can never become two log lines or a forged field.
#include "common/util/log.hpp"

#include "common/util/fd.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace mtasts::log {
namespace {

struct State {
  std::mutex mu;
  Setup setup;
  bool syslog_open = false;
  bool syslog_down = false;  // unreachable at the last check: lines go to stderr
  std::chrono::steady_clock::time_point next_probe{};
};

constexpr std::chrono::seconds kSyslogProbeInterval{30};

State& state() {
  // Built on first use, so logging works before init(); never destroyed, so that a thread
  // still logging while the process exits (libmilter's workers) never sees a dead mutex.
  static State* s = new State;
  return *s;
}

std::atomic<int> g_min_level{static_cast<int>(Level::info)};

struct FacilityName {
  std::string_view name;
  int value;
};
constexpr std::array<FacilityName, 11> kFacilities{{
    {"mail", LOG_MAIL},
    {"daemon", LOG_DAEMON},
    {"user", LOG_USER},
    {"local0", LOG_LOCAL0},
    {"local1", LOG_LOCAL1},
    {"local2", LOG_LOCAL2},
    {"local3", LOG_LOCAL3},
    {"local4", LOG_LOCAL4},
    {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6},
    {"local7", LOG_LOCAL7},
}};

std::optional<int> facility_value(std::string_view name) {
  for (const auto& f : kFacilities) {
    if (f.name == name) return f.value;
  }
  return std::nullopt;
}

int syslog_priority(Level l) noexcept {
  switch (l) {
    case Level::debug: return LOG_DEBUG;
    case Level::info: return LOG_INFO;
    case Level::notice: return LOG_NOTICE;
    case Level::warning: return LOG_WARNING;
    case Level::error: return LOG_ERR;
  }
  return LOG_ERR;
}

const char* level_name(Level l) noexcept {
  switch (l) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::notice: return "notice";
    case Level::warning: return "warning";
    case Level::error: return "error";
  }
  return "error";
}

bool needs_quotes(std::string_view v) noexcept {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=') return true;
  }
  return false;
}

// "2026-04-24T12:00:00.123Z": UTC, so that lines from several hosts sort together.
std::string timestamp() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = time_point_cast<seconds>(now);
  auto ms = duration_cast<milliseconds>(now - secs).count();
  std::time_t t = system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out(buf, n);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms));
  out += frac;
  return out;
}

void write_all(int fd, std::string_view s) noexcept {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n <= 0) return;  // nowhere better to report a failing stderr
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

// Can a datagram (or stream) socket connect to the syslog socket? 0, or the errno.
int syslog_reachable(const std::string& path) noexcept {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) return ENAMETOOLONG;
  std::memcpy(a.sun_path, path.data(), path.size());
  int err = 0;
  for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
    const UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return errno;
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) return 0;
    err = errno;
    if (err != EPROTOTYPE) break;  // a stream socket is worth a try only on EPROTOTYPE
  }
  return err;
}

// The stderr form of a line: "TIME IDENT[PID]: LEVEL: TEXT\n".
std::string stderr_line(const Setup& setup, Level lvl, const std::string& text) {
  std::string line = timestamp();
  line += ' ';
  line += setup.ident;
  line += '[';
  line += std::to_string(::getpid());
  line += "]: ";
  line += level_name(lvl);
  line += ": ";
  line += text;
  line += '\n';
  return line;
}

// Called with the lock held, for a syslog target: checks reachability when due and says so
// on stderr when it changes. True when the line must go to stderr.
bool syslog_unreachable(State& st) {
  const auto now = std::chrono::steady_clock::now();
  if (now < st.next_probe) return st.syslog_down;
  st.next_probe = now + kSyslogProbeInterval;
  const int err = syslog_reachable(st.setup.syslog_socket);
  if (err != 0 && !st.syslog_down) {
    st.syslog_down = true;
    write_all(STDERR_FILENO, stderr_line(st.setup, Level::warning,
                                         format("cannot reach syslog; logging to stderr until it can be reached",
                                                {{"socket", st.setup.syslog_socket}, {"error", std::strerror(err)}})));
  } else if (err == 0 && st.syslog_down) {
    st.syslog_down = false;
    write_all(STDERR_FILENO, stderr_line(st.setup, Level::notice,
                                         format("syslog reachable again; logging there", {{"socket", st.setup.syslog_socket}})));
  }
  return st.syslog_down;
}

}  // namespace

bool is_facility_name(std::string_view name) noexcept {
  for (const auto& f : kFacilities) {
    if (f.name == name) return true;
  }
  return false;
}

void init(const Setup& s) {
  State& st = state();
  std::lock_guard lock(st.mu);
  if (st.syslog_open) {
    closelog();
    st.syslog_open = false;
  }
  // openlog() keeps the ident pointer: it must point into storage that outlives the call,
  // which is why the Setup is copied into the state before openlog() sees it.
  st.setup = s;
  g_min_level.store(static_cast<int>(s.min_level), std::memory_order_relaxed);
  if (st.setup.target == Target::syslog) {
    int facility = facility_value(st.setup.facility).value_or(LOG_MAIL);
    openlog(st.setup.ident.c_str(), LOG_PID | LOG_NDELAY, facility);
    st.syslog_open = true;
    st.syslog_down = false;
    st.next_probe = {};
    syslog_unreachable(st);  // says so now, before the first line is lost
  }
}

bool writing_to_stderr() {
  State& st = state();
  std::lock_guard lock(st.mu);
  return !(st.setup.target == Target::syslog && st.syslog_open) || st.syslog_down;
}

void fatal(std::string_view msg, std::initializer_list<Field> fields) {
  write(Level::error, msg, fields);
  try {
    if (writing_to_stderr()) return;  // already there
    const std::string text = format(msg, fields);
    State& st = state();
    std::lock_guard lock(st.mu);
    write_all(STDERR_FILENO, stderr_line(st.setup, Level::error, text));
  } catch (...) {
  }
}

std::optional<Level> level_from_string(std::string_view s) {
  if (s == "debug") return Level::debug;
  if (s == "info") return Level::info;
  if (s == "notice") return Level::notice;
  if (s == "warning" || s == "warn") return Level::warning;
  if (s == "error" || s == "err") return Level::error;
  return std::nullopt;
}

std::string escape(std::string_view untrusted) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(untrusted.size());
  for (char ch : untrusted) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

std::string format(std::string_view msg, std::initializer_list<Field> fields) {
  std::string out = escape(msg);
  for (const auto& [key, value] : fields) {
    out += ' ';
    out += escape(key);
    out += '=';
    if (needs_quotes(value)) {
      out += '"';
      out += escape(value);
      out += '"';
    } else {
      out += escape(value);
    }
  }
  return out;
}

void write(Level lvl, std::string_view msg, std::initializer_list<Field> fields) {
  if (static_cast<int>(lvl) < g_min_level.load(std::memory_order_relaxed)) return;
  try {
    std::string text = format(msg, fields);
    State& st = state();
    std::lock_guard lock(st.mu);
    if (st.setup.target == Target::syslog && st.syslog_open && !syslog_unreachable(st)) {
      syslog(syslog_priority(lvl), "%s", text.c_str());
      return;
    }
    // One write(2) per line keeps lines whole across processes.
    write_all(STDERR_FILENO, stderr_line(st.setup, lvl, text));
  } catch (...) {
    // Logging must never take the caller down (it runs inside milter callbacks); an
    // allocation failure here loses one line.
  }
}

}  // namespace mtasts::log
