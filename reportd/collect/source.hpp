// Where sessions come from (`source =` specs):
//   postfix-log:PATH     a file of Postfix lines (maillog_file or the syslog daemon's mail log)
//   sendmail-log:PATH    a file of Sendmail lines
//   journal              the systemd journal, read through `journalctl -o json` (no libsystemd)
//   tlsrpt-socket:PATH   a unix datagram socket receiving libtlsrpt's datagrams
// Every source is polled without blocking, a bounded amount at a time, and has a position
// (opaque text) that the spool keeps with the sessions read up to it (spool.hpp).
//
// File followers survive rotation: rename and create (the old file is read to its end, then
// the new one from 0), copytruncate (the size shrinks: from 0), and restarts (the position is
// device, inode, offset and a hash of the first line, so that a file replaced under the same
// name is read from 0, and a file renamed while the daemon was down is found beside it by its
// inode and finished first).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/util/clock.hpp"
#include "reportd/collect/outcome.hpp"

namespace mtasts::reportd {

struct SourceStats {
  std::uint64_t items = 0;         // lines or datagrams read
  std::uint64_t invalid = 0;       // datagrams refused (invalid JSON, bad fields, too large)
  std::uint64_t rotations = 0;     // rename+create, copytruncate, replaced files
  std::uint64_t long_lines = 0;    // lines over the limit, skipped
  std::uint64_t restarts = 0;      // journalctl restarted
};

class Source {
 public:
  virtual ~Source() = default;
  // The spec it was made from ("postfix-log:/var/log/mail.log"): its key in the spool.
  virtual const std::string& name() const = 0;
  // Reads at most `max_items` lines or datagrams available now; never blocks.
  virtual std::size_t poll(std::vector<Outcome>& out, std::size_t max_items) = 0;
  // Where the next poll continues, with the parser's state; "" for sources that cannot
  // replay (a datagram socket).
  virtual std::string position() const = 0;
  // Continue from a saved position (before the first poll). False when unreadable: the
  // source then starts as if new.
  virtual bool restore(std::string_view position) = 0;
  virtual const SourceStats& stats() const = 0;
  virtual const ParserStats* parser_stats() const { return nullptr; }
};

struct SourceOptions {
  ParserOptions parser;
  const Clock* clock = nullptr;           // receive time of datagrams (SystemClock when null)
  std::string journalctl = "journalctl";  // tests: a fake script
  std::size_t max_line = 65536;
};

// Makes a source from a spec; nullptr with `error` set when the spec is invalid or the
// socket cannot be bound.
std::unique_ptr<Source> make_source(std::string_view spec, const SourceOptions& options, std::string* error);

// ---- the implementations (exposed for tests) ------------------------------------------

class FileSource final : public Source {
 public:
  FileSource(std::string name, std::string path, std::unique_ptr<LineParser> parser, std::size_t max_line);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  const std::string& name() const override { return name_; }
  std::size_t poll(std::vector<Outcome>& out, std::size_t max_items) override;
  std::string position() const override;
  bool restore(std::string_view position) override;
  const SourceStats& stats() const override { return stats_; }
  const ParserStats* parser_stats() const override { return &parser_->stats(); }

 private:
  bool open_current(bool use_saved);
  bool open_path(const std::string& path);
  std::uint64_t first_line_hash(int fd) const;
  std::size_t read_lines(std::vector<Outcome>& out, std::size_t max_items, bool& at_eof);

  std::string name_, path_;
  std::unique_ptr<LineParser> parser_;
  std::size_t max_line_;
  SourceStats stats_;
  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t hash_ = 0;  // of the first line; 0 until the file has one
  bool skipping_ = false;   // inside a line longer than max_line
  bool switch_pending_ = false;  // the path names a new file; the old one is being finished
  // A restored position not applied yet (the file is opened at the first poll).
  bool have_saved_ = false;
  dev_t saved_dev_ = 0;
  ino_t saved_ino_ = 0;
  std::uint64_t saved_offset_ = 0, saved_hash_ = 0;
};

class DatagramSource final : public Source {
 public:
  DatagramSource(std::string name, std::string path, SourceOptions options);  // throws on bind failure
  ~DatagramSource() override;
  DatagramSource(const DatagramSource&) = delete;
  DatagramSource& operator=(const DatagramSource&) = delete;

  const std::string& name() const override { return name_; }
  std::size_t poll(std::vector<Outcome>& out, std::size_t max_items) override;
  std::string position() const override { return {}; }
  bool restore(std::string_view) override { return true; }
  const SourceStats& stats() const override { return stats_; }
  const std::string& last_error() const { return last_error_; }

 private:
  std::string name_, path_;
  SourceOptions options_;
  SourceStats stats_;
  int fd_ = -1;
  std::string last_error_;
};

class JournalSource final : public Source {
 public:
  JournalSource(std::string name, SourceOptions options);
  ~JournalSource() override;
  JournalSource(const JournalSource&) = delete;
  JournalSource& operator=(const JournalSource&) = delete;

  const std::string& name() const override { return name_; }
  std::size_t poll(std::vector<Outcome>& out, std::size_t max_items) override;
  std::string position() const override;
  bool restore(std::string_view position) override;
  const SourceStats& stats() const override { return stats_; }

 private:
  void start();
  void stop();
  void record(std::string_view json, std::vector<Outcome>& out);

  std::string name_;
  SourceOptions options_;
  SourceStats stats_;
  std::unique_ptr<LineParser> postfix_, sendmail_;
  std::string cursor_;
  pid_t child_ = -1;
  int fd_ = -1;
  std::string buffer_;
  std::uint64_t records_since_start_ = 0;
  int empty_runs_ = 0;
};

}  // namespace mtasts::reportd
