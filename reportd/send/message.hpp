// The report as it travels (RFC 8460 section 5): the JSON gzipped, its file name, and the
// RFC 5322 message that carries it to a mailto: rua (`multipart/report; report-type="tlsrpt"`,
// a human-readable text/plain part and the `application/tlsrpt+gzip` part, base64). Pure:
// no I/O. Every header value comes from validated input (A-label domains, a report-id and
// addresses checked here): a message is either well-formed or not built at all.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/util/clock.hpp"

namespace mtasts::reportd {

// gzip (RFC 1952) of `data`. Throws std::runtime_error when zlib fails.
std::string gzip(std::string_view data);

// Base64 (RFC 4648) in lines of at most 76 characters, each ended by "\n" (RFC 2045 6.8).
std::string base64_lines(std::string_view data);

// RFC 8460 section 5.3:
//   submitter "!" policy-domain "!" begin-timestamp "!" end-timestamp [ "!" unique-id ] ".json.gz"
// with the timestamps in seconds since the epoch, the day as the report's date-range has it
// (00:00:00Z and 23:59:59Z, tlsrpt::report_range), and unique-id 1*(ALPHA / DIGIT) (left out
// when empty). Throws std::invalid_argument for a bad day.
std::string report_filename(std::string_view submitter, std::string_view policy_domain, std::string_view day,
                            std::string_view unique_id);

// A unique-id for the file name, derived from the report-id (stable across retries).
std::string unique_id_of(std::string_view report_id);

// True when `id` can stand between "<" and ">" in the Subject (RFC 8460 section 5.3.1): a
// dot-atom, or dot-atom "@" dot-atom (tlsrpt::report_id gives "<YYYYMMDD>.<domain>.<hex>").
bool is_report_id(std::string_view id) noexcept;
// True for an address a header and an argv can hold as is: dot-atom "@" host name.
bool is_plain_address(std::string_view address) noexcept;

struct ReportMail {
  std::string from;            // sender-address (the envelope sender too)
  std::string to;              // the rua's addr-spec (ReportUri::target)
  std::string submitter;       // A-label domain
  std::string policy_domain;   // A-label domain
  std::string report_id;       // is_report_id()
  std::string day;             // "YYYY-MM-DD"
  std::string organization;    // shown in the text part when plain printable ASCII
  std::string gz;              // the gzipped JSON report
  SysTime date{};
  std::string message_id;      // without angle brackets; "" -> random@submitter
  std::string boundary;        // "" -> random
};

// The complete message, lines ended by "\n" (what `sendmail -i` reads). Throws
// std::invalid_argument when a field fails its check.
std::string build_report_mail(const ReportMail& m);

// "Tue, 08 Dec 2026 00:20:33 +0000" (RFC 5322 section 3.3).
std::string rfc5322_date(SysTime t);

}  // namespace mtasts::reportd
