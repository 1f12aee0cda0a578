#include "reportd/collect/source.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <utility>

#include "common/util/json_parse.hpp"
#include "common/util/log.hpp"
#include "reportd/collect/datagram.hpp"
#include "reportd/collect/log_line.hpp"
#include "reportd/collect/postfix.hpp"
#include "reportd/collect/sendmail.hpp"

namespace mtasts::reportd {
namespace {

std::uint64_t fnv(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h | 1;  // never 0: 0 means "no first line yet"
}

bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const std::uint64_t next = v * 10 + static_cast<std::uint64_t>(c - '0');
    if (next < v) return false;
    v = next;
  }
  out = v;
  return true;
}

// Splits off the first line of `s` (without '\n').
std::string_view take_line(std::string_view& s) {
  const auto nl = s.find('\n');
  std::string_view line = s.substr(0, nl);
  s.remove_prefix(nl == std::string_view::npos ? s.size() : nl + 1);
  return line;
}

std::int64_t now_of(const Clock* c) {
  return (c ? c->now() : SystemClock().now()).time_since_epoch().count();
}

}  // namespace

// ---- FileSource -------------------------------------------------------------------------

FileSource::FileSource(std::string name, std::string path, std::unique_ptr<LineParser> parser, std::size_t max_line)
    : name_(std::move(name)), path_(std::move(path)), parser_(std::move(parser)),
      max_line_(max_line < 1024 ? 1024 : max_line) {}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

std::uint64_t FileSource::first_line_hash(int fd) const {
  char buf[256];
  const ssize_t r = ::pread(fd, buf, sizeof buf, 0);
  if (r <= 0) return 0;
  const std::string_view s(buf, static_cast<std::size_t>(r));
  const auto nl = s.find('\n');
  if (nl == std::string_view::npos) return r == static_cast<ssize_t>(sizeof buf) ? fnv(s) : 0;
  return fnv(s.substr(0, nl));
}

bool FileSource::open_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return false;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  offset_ = 0;
  hash_ = first_line_hash(fd);
  skipping_ = false;
  switch_pending_ = false;
  return true;
}

bool FileSource::open_current(bool use_saved) {
  if (use_saved) {
    have_saved_ = false;
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0 && st.st_dev == saved_dev_ && st.st_ino == saved_ino_) {
      if (!open_path(path_)) return false;
      struct stat now {};
      ::fstat(fd_, &now);
      if ((saved_hash_ == 0 || hash_ == saved_hash_) && static_cast<std::uint64_t>(now.st_size) >= saved_offset_) {
        offset_ = saved_offset_;
        return true;
      }
      ++stats_.rotations;  // replaced or truncated while we were away: from the start
      return true;
    }
    // Renamed while we were away: finish the old file (found beside by its inode) first.
    const std::filesystem::path dir = std::filesystem::path(path_).parent_path();
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir.empty() ? "." : dir, ec)) {
      struct stat es {};
      if (::stat(e.path().c_str(), &es) != 0 || es.st_dev != saved_dev_ || es.st_ino != saved_ino_) continue;
      if (open_path(e.path().string()) && (saved_hash_ == 0 || hash_ == saved_hash_)) {
        offset_ = saved_offset_;
        ++stats_.rotations;
        return true;
      }
      break;
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    ++stats_.rotations;
  }
  return open_path(path_);
}

std::size_t FileSource::read_lines(std::vector<Outcome>& out, std::size_t max_items, bool& at_eof) {
  std::string buf(max_line_, '\0');
  std::size_t n = 0;
  at_eof = false;
  while (n < max_items) {
    const ssize_t r = ::pread(fd_, buf.data(), buf.size(), static_cast<off_t>(offset_));
    if (r <= 0) {
      at_eof = true;
      break;
    }
    const std::string_view data(buf.data(), static_cast<std::size_t>(r));
    std::size_t start = 0;
    while (n < max_items) {
      const auto nl = data.find('\n', start);
      if (nl == std::string_view::npos) break;
      const std::string_view line = data.substr(start, nl - start);
      if (skipping_) {
        skipping_ = false;
      } else {
        if (offset_ + start == 0 && hash_ == 0) hash_ = fnv(line.substr(0, 256));
        parser_->feed(line, out);
      }
      ++stats_.items;
      ++n;
      start = nl + 1;
    }
    offset_ += start;
    if (start == 0) {
      if (data.size() < buf.size()) {  // a partial last line: wait for the rest
        at_eof = true;
        break;
      }
      // A line longer than the buffer: skip it up to its end.
      if (!skipping_) ++stats_.long_lines;
      skipping_ = true;
      offset_ += data.size();
    } else if (start < data.size() && n < max_items && static_cast<std::size_t>(r) < buf.size()) {
      at_eof = true;  // only a partial line left
      break;
    }
  }
  return n;
}

std::size_t FileSource::poll(std::vector<Outcome>& out, std::size_t max_items) {
  if (fd_ < 0 && !open_current(have_saved_)) return 0;
  bool eof = false;
  std::size_t n = read_lines(out, max_items, eof);
  if (!eof || n >= max_items) return n;
  // At the end of what we have: has the file been rotated, truncated or replaced?
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && (st.st_dev != dev_ || st.st_ino != ino_)) {
    // Renamed and created anew. The writer may still append to the old file until it reopens
    // (rsyslog's HUP, `postfix logrotate`): switch only after a poll that found the old file
    // at its end with nothing new; then the new one is read from 0.
    if (n > 0 || !switch_pending_) {
      switch_pending_ = true;
      return n;
    }
    if (open_path(path_)) {
      ++stats_.rotations;
      n += read_lines(out, max_items - n, eof);
    }
    return n;
  }
  switch_pending_ = false;
  struct stat fst {};
  if (::fstat(fd_, &fst) == 0) {
    const std::uint64_t h = first_line_hash(fd_);
    if (static_cast<std::uint64_t>(fst.st_size) < offset_ || (hash_ != 0 && h != 0 && h != hash_)) {
      // copytruncate (or rewritten in place): from the start.
      ++stats_.rotations;
      offset_ = 0;
      hash_ = h;
      skipping_ = false;
      n += read_lines(out, max_items - n, eof);
    }
  }
  return n;
}

std::string FileSource::position() const {
  const dev_t dev = fd_ >= 0 ? dev_ : saved_dev_;
  const ino_t ino = fd_ >= 0 ? ino_ : saved_ino_;
  const std::uint64_t off = fd_ >= 0 ? offset_ : saved_offset_;
  const std::uint64_t hash = fd_ >= 0 ? hash_ : saved_hash_;
  if (fd_ < 0 && !have_saved_) return "file 1 none\n" + parser_->save_state();
  return "file 1 " + std::to_string(static_cast<std::uint64_t>(dev)) + " " +
         std::to_string(static_cast<std::uint64_t>(ino)) + " " + std::to_string(off) + " " + std::to_string(hash) +
         "\n" + parser_->save_state();
}

bool FileSource::restore(std::string_view position) {
  std::string_view rest = position;
  const std::string_view head = take_line(rest);
  if (head == "file 1 none") {  // nothing read yet: from the start of the file
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    have_saved_ = false;
    parser_->restore_state(rest);
    return true;
  }
  if (!starts_with(head, "file 1 ")) return false;
  std::uint64_t v[4];
  std::string_view fields = head.substr(7);
  for (auto& x : v) {
    const auto sp = fields.find(' ');
    if (!parse_u64(fields.substr(0, sp), x)) return false;
    fields.remove_prefix(sp == std::string_view::npos ? fields.size() : sp + 1);
  }
  saved_dev_ = static_cast<dev_t>(v[0]);
  saved_ino_ = static_cast<ino_t>(v[1]);
  saved_offset_ = v[2];
  saved_hash_ = v[3];
  have_saved_ = true;
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  parser_->restore_state(rest);
  return true;
}

// ---- DatagramSource -----------------------------------------------------------------------

DatagramSource::DatagramSource(std::string name, std::string path, SourceOptions options)
    : name_(std::move(name)), path_(std::move(path)), options_(std::move(options)) {
  sockaddr_un addr{};
  if (path_.empty() || path_.size() >= sizeof addr.sun_path) throw std::runtime_error("socket path too long: " + path_);
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path_.c_str());  // a stale socket of ours
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("cannot bind " + path_ + ": " + why);
  }
  // The MTA's delivery agents (another user) send here; the directory restricts who may.
  ::chmod(path_.c_str(), 0666);
  int size = 1 << 20;
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

DatagramSource::~DatagramSource() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
}

std::size_t DatagramSource::poll(std::vector<Outcome>& out, std::size_t max_items) {
  std::string buf(kMaxDatagramBytes + 1, '\0');
  std::size_t n = 0;
  while (n < max_items) {
    const ssize_t r = ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;  // EAGAIN: nothing more now
    }
    ++n;
    ++stats_.items;
    std::string error;
    if (static_cast<std::size_t>(r) > kMaxDatagramBytes) {
      error = "datagram larger than 65536 bytes";
    } else {
      parse_datagram(std::string_view(buf.data(), static_cast<std::size_t>(r)), now_of(options_.clock),
                     options_.parser.sending_ip, out, &error);
    }
    if (!error.empty()) {
      ++stats_.invalid;
      last_error_ = error;
      log::warning("tlsrpt datagram refused", {{"source", name_}, {"error", error}});
    }
  }
  return n;
}

// ---- JournalSource ------------------------------------------------------------------------

JournalSource::JournalSource(std::string name, SourceOptions options)
    : name_(std::move(name)), options_(std::move(options)),
      postfix_(std::make_unique<PostfixParser>(options_.parser)),
      sendmail_(std::make_unique<SendmailParser>(options_.parser)) {}

JournalSource::~JournalSource() { stop(); }

void JournalSource::stop() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (child_ > 0) {
    ::kill(child_, SIGTERM);
    int status = 0;
    ::waitpid(child_, &status, 0);
    child_ = -1;
  }
  buffer_.clear();
}

void JournalSource::start() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return;
  std::vector<std::string> args = {options_.journalctl, "-o", "json", "-f", "--no-pager", "SYSLOG_FACILITY=2"};
  if (cursor_.empty()) {
    args.insert(args.begin() + 5, {"-n", "0"});
  } else {
    args.insert(args.begin() + 5, "--after-cursor=" + cursor_);
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(p[0]);
    ::close(p[1]);
    return;
  }
  if (pid == 0) {
    ::dup2(p[1], 1);
    const int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) ::dup2(null, 0);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(p[1]);
  ::fcntl(p[0], F_SETFL, ::fcntl(p[0], F_GETFL) | O_NONBLOCK);
  fd_ = p[0];
  child_ = pid;
  records_since_start_ = 0;
}

void JournalSource::record(std::string_view text, std::vector<Outcome>& out) {
  std::string error;
  json::ParseLimits limits;
  limits.max_depth = 4;
  const auto v = json::parse(text, &error, limits);
  if (!v || !v->is_object()) {
    ++stats_.invalid;
    return;
  }
  const json::Value* cursor = v->find("__CURSOR");
  const json::Value* msg = v->find("MESSAGE");
  const json::Value* ident = v->find("SYSLOG_IDENTIFIER");
  const json::Value* pid = v->find("_PID");
  if (!pid || !pid->is_string()) pid = v->find("SYSLOG_PID");
  const json::Value* ts = v->find("__REALTIME_TIMESTAMP");
  std::string message;
  if (msg && msg->is_string()) {
    message = msg->text;
  } else if (msg && msg->is_array()) {  // journald gives non-UTF-8 messages as byte arrays
    for (const auto& b : msg->array) {
      if (b.integer && *b.integer >= 0 && *b.integer < 256) message.push_back(static_cast<char>(*b.integer));
    }
  }
  std::uint64_t p = 0, micros = 0;
  if (ident && ident->is_string() && pid && pid->is_string() && parse_u64(pid->text, p) && p <= 0xffffffffULL &&
      ts && ts->is_string() && parse_u64(ts->text, micros) && !message.empty()) {
    const auto t = static_cast<std::int64_t>(micros / 1000000);
    postfix_->feed_record(t, ident->text, static_cast<std::uint32_t>(p), message, out);
    sendmail_->feed_record(t, ident->text, static_cast<std::uint32_t>(p), message, out);
  }
  if (cursor && cursor->is_string() && cursor->text.size() < 512) cursor_ = cursor->text;
}

std::size_t JournalSource::poll(std::vector<Outcome>& out, std::size_t max_items) {
  if (fd_ < 0) {
    start();
    if (fd_ < 0) return 0;
  }
  std::size_t n = 0;
  bool ended = false;
  char chunk[65536];
  while (n < max_items) {
    // Lines already buffered first.
    const auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      record(std::string_view(buffer_).substr(0, nl), out);
      buffer_.erase(0, nl + 1);
      ++records_since_start_;
      empty_runs_ = 0;
      ++n;
      ++stats_.items;
      continue;
    }
    if (buffer_.size() > (1u << 20)) buffer_.clear();  // a record over 1 MiB: dropped
    const ssize_t r = ::read(fd_, chunk, sizeof chunk);
    if (r > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(r));
      continue;
    }
    if (r == 0) ended = true;
    break;
  }
  if (ended) {  // journalctl exited: start it again after the last cursor at the next poll
    stop();
    ++stats_.restarts;
    // A cursor journald no longer knows (the journal was rotated away or is volatile and the
    // host rebooted) makes journalctl exit at once, every time: after three such runs, go on
    // from now, and say so.
    if (records_since_start_ == 0 && !cursor_.empty() && ++empty_runs_ >= 3) {
      log::warning("journal cursor not usable any more; reading from now on", {{"source", name_}});
      cursor_.clear();
      empty_runs_ = 0;
    }
  }
  return n;
}

std::string JournalSource::position() const {
  const std::string a = postfix_->save_state(), b = sendmail_->save_state();
  return "journal 1\n" + cursor_ + "\n" + std::to_string(a.size()) + "\n" + a + std::to_string(b.size()) + "\n" + b;
}

bool JournalSource::restore(std::string_view position) {
  std::string_view rest = position;
  if (take_line(rest) != "journal 1") return false;
  const std::string_view cursor = take_line(rest);
  std::uint64_t la = 0, lb = 0;
  if (!parse_u64(take_line(rest), la) || la > rest.size()) return false;
  const std::string_view a = rest.substr(0, la);
  rest.remove_prefix(la);
  if (!parse_u64(take_line(rest), lb) || lb > rest.size()) return false;
  cursor_ = std::string(cursor);
  postfix_->restore_state(a);
  sendmail_->restore_state(rest.substr(0, lb));
  stop();
  return true;
}

// ---- specs --------------------------------------------------------------------------------

std::unique_ptr<Source> make_source(std::string_view spec, const SourceOptions& options, std::string* error) {
  const auto fail = [&](std::string why) -> std::unique_ptr<Source> {
    if (error) *error = std::move(why);
    return nullptr;
  };
  const auto path_of = [&](std::string_view prefix) { return std::string(spec.substr(prefix.size())); };
  try {
    if (starts_with(spec, "postfix-log:")) {
      const std::string path = path_of("postfix-log:");
      if (path.empty() || path[0] != '/') return fail("postfix-log: needs an absolute path");
      return std::make_unique<FileSource>(std::string(spec), path, std::make_unique<PostfixParser>(options.parser),
                                          options.max_line);
    }
    if (starts_with(spec, "sendmail-log:")) {
      const std::string path = path_of("sendmail-log:");
      if (path.empty() || path[0] != '/') return fail("sendmail-log: needs an absolute path");
      return std::make_unique<FileSource>(std::string(spec), path, std::make_unique<SendmailParser>(options.parser),
                                          options.max_line);
    }
    if (starts_with(spec, "tlsrpt-socket:")) {
      const std::string path = path_of("tlsrpt-socket:");
      if (path.empty() || path[0] != '/') return fail("tlsrpt-socket: needs an absolute path");
      return std::make_unique<DatagramSource>(std::string(spec), path, options);
    }
    if (spec == "journal") return std::make_unique<JournalSource>(std::string(spec), options);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return fail("unknown source \"" + std::string(spec) +
              "\" (postfix-log:PATH, sendmail-log:PATH, journal, tlsrpt-socket:PATH)");
}

}  // namespace mtasts::reportd
