// The logic of mta-sts-ctl's offline subcommands (lint, check-txt, match) and of the text it
// prints for the cache subcommands, as pure functions from input to {exit code, stdout,
// stderr}. main.cpp only reads files and arguments; unit tests call these directly.
//
// The exit codes and the JSON shapes are a fixed interface (scripts and monitoring parse
// them); see mta-sts-ctl(1).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/sts/cache_entry.hpp"
#include "common/util/clock.hpp"
#include "common/sts/domain.hpp"

namespace mtasts::ctl {

// Exit codes shared by every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitNo = 1;          // invalid / no policy / no match / not found
inline constexpr int kExitUsage = 2;       // usage, I/O or configuration error
inline constexpr int kExitFailed = 3;      // discovery failed (query), Redis failure (cache)

struct Output {
  int code = kExitOk;
  std::string out;  // for stdout
  std::string err;  // for stderr
};

// `lint`: validates a policy file's text. `source` names it in messages ("-" reads as
// "<stdin>"). `truncated` says the file was larger than kMaxPolicyBytes and only its first
// kMaxPolicyBytes + 1 bytes are in `text`: such a policy is invalid (the fetcher refuses it).
Output lint(std::string_view text, std::string_view source, bool json, bool truncated = false);

// `check-txt`: one argument per TXT record of the `_mta-sts` RRset.
Output check_txt(const std::vector<std::string>& records, bool json);

// `match`: exit 0 when `pattern` matches `host`, 1 when not, 2 when the pattern is invalid.
Output match(std::string_view pattern, std::string_view host);

// A list of domains (warm lists): one per line, `#` starts a comment, blank lines skipped.
struct DomainList {
  struct Bad {
    std::size_t line = 0;
    std::string text;   // the offending text, escaped for display
    std::string error;  // why it is not a domain
  };
  std::vector<Domain> domains;  // valid, in file order, duplicates removed
  std::vector<Bad> bad;
};
DomainList parse_domain_list(std::string_view text);

// `cache show`: one entry, as the operator reads it (or as one JSON object).
std::string render_entry(const Domain& d, const CacheEntry& e, SysTime now, bool json);
// `cache list`: one line (or one JSON array element) per domain.
struct ListRow {
  std::string domain;
  std::string verdict;  // to_string(Verdict), or "undecodable"
  std::string id;       // the cached policy's TXT id, if any
  std::string mode;     // the cached policy's mode, if any
  SysTime expires_at{}; // the cached policy's expiry (epoch when none)
};
std::string render_list(const std::vector<ListRow>& rows, bool json);

// Untrusted text (from DNS, HTTPS, the cache) made safe to show. For a terminal: printable
// ASCII kept, every other byte as \xNN, at most `max` input bytes. For JSON: valid UTF-8
// kept, each byte of an invalid sequence replaced by U+FFFD (JSON must be UTF-8).
std::string terminal_safe(std::string_view untrusted, std::size_t max = 256);
std::string utf8_safe(std::string_view untrusted);

// ISO 8601 UTC ("2026-04-24T12:00:00Z").
std::string format_time(SysTime t);
// "3d4h", "15m", "-2h" (relative to now), for human output.
std::string format_duration(Seconds d);

}  // namespace mtasts::ctl
