// The syslog-style header of one MTA log line, split without copying:
//   "Dec  8 00:20:40 host postfix/smtp[15974]: message"        (rsyslog traditional)
//   "Dec 08 00:20:40 host postfix/smtp[15974]: message"        (Postfix 3.7 maillog_file)
//   "2026-12-08T00:20:40.123456+00:00 host postfix/smtp[1]: message"  (RFC 3339 stamps)
// and the small text helpers the MTA parsers share.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/util/clock.hpp"
#include "reportd/collect/outcome.hpp"

namespace mtasts::reportd {

struct LogLine {
  std::int64_t time = 0;       // unix seconds, UTC
  std::string_view host;
  std::string_view program;    // "postfix/smtp", "sm-mta"
  std::uint32_t pid = 0;
  std::string_view message;
};

// Splits a line; nullopt when it does not have the header (time, host, "prog[pid]: ").
// `clock` gives the year of traditional stamps (the current year, or the one before when the
// stamp would be more than a day ahead); `utc_offset` is subtracted from them.
std::optional<LogLine> split_log_line(std::string_view line, const Clock* clock, std::int64_t utc_offset);

// Unix seconds of a civil UTC date and time (no validation beyond what callers did).
std::int64_t civil_to_unix(int year, int month, int day, int hour, int minute, int second) noexcept;

// Text helpers.
bool starts_with(std::string_view s, std::string_view prefix) noexcept;
bool ends_with(std::string_view s, std::string_view suffix) noexcept;
bool contains(std::string_view s, std::string_view needle) noexcept;
// "host[ip]" or "host[ip]:port" -> host and ip (ip without brackets); false when malformed.
bool split_host_ip(std::string_view text, std::string_view& host, std::string_view& ip) noexcept;
// A host name as a report carries it: lower case, no trailing dot; "" when not a plausible name.
std::string normal_host(std::string_view host);
// The domain of an address ("<rcpt@Example.COM>" or "rcpt@example.com"), raw; "" when none.
std::string_view address_domain(std::string_view address) noexcept;
// Recipient domains normalised (Domain::parse: A-label, lower case) with a bounded memo, so
// that the common case costs one hash lookup instead of IDNA processing per line.
class DomainNormalizer {
 public:
  // The normalised name, or nullptr when `raw` is not a domain name (an address literal too).
  const std::string* normalize(std::string_view raw);

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  static constexpr std::size_t kMaxCached = 4096;
  std::unordered_map<std::string, std::string, Hash, std::equal_to<>> cache_;  // "" = invalid
};

// ASCII lower case.
std::string lower_ascii(std::string_view s);
// A Postfix or Sendmail queue id: 5..20 letters and digits.
bool is_queue_id(std::string_view s) noexcept;

// The queue ids of our own report mail (envelope sender = `sender-address`) between the line
// that names the sender and the deliveries: bounded, saved with the source's position so that
// a restart between the two still recognises the report.
class ReportMail {
 public:
  void add(std::string_view qid, std::int64_t time);
  bool contains(std::string_view qid) const { return qids_.count(std::string(qid)) != 0; }
  void erase(std::string_view qid) { qids_.erase(std::string(qid)); }
  std::string save(std::string_view tag) const;        // "TAG 1\nreport QID TIME\n..."
  void restore(std::string_view tag, std::string_view text);

 private:
  static constexpr std::size_t kMax = 10000;
  static constexpr std::int64_t kLife = 7 * 86400;
  std::unordered_map<std::string, std::int64_t> qids_;
};

// Fields of a saved parser state: tab-separated, each escaped (%XX for '%', tab, newline).
std::string state_field(std::string_view s);
std::vector<std::string> state_fields(std::string_view line);

// A non-negative integer of a saved state, at most `max`.
bool state_int(const std::string& s, long max, long& out);
// One outcome as fields of a saved state (9 fields), and back from fields[at..at+9).
std::string state_outcome(const Outcome& o);
bool state_outcome_from(const std::vector<std::string>& fields, std::size_t at, Outcome& o);

// Text from a log that goes into a report: printable ASCII only (others become '?'), cut.
std::string clean_text(std::string_view text, std::size_t max);

}  // namespace mtasts::reportd
