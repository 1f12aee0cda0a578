// What a collector's parsers produce: one RFC 8460 session as the MTA logged it, before the
// fleet's policy is attached (classify.hpp), plus what the MTA said about the TLS of that
// session so that the policy in force can judge it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/tlsrpt/model.hpp"
#include "common/util/clock.hpp"

namespace mtasts::reportd {

// What the MTA logged about the TLS of the connection.
enum class TlsSeen : std::uint8_t {
  unknown,    // the source does not say (a libtlsrpt datagram, a failure before TLS)
  none,       // delivered in clear: no TLS line for a new connection
  anonymous,  // TLS without a server certificate
  untrusted,  // TLS, certificate chain not trusted (Postfix "Untrusted", Sendmail verify=FAIL)
  trusted,    // TLS, chain trusted, name not checked (Postfix "Trusted")
  verified,   // TLS, chain trusted and name matched (Postfix "Verified", Sendmail verify=OK)
};
const char* to_string(TlsSeen t) noexcept;

struct Outcome {
  tlsrpt::Session session;  // result as the MTA saw it; domain normalised
  TlsSeen tls = TlsSeen::unknown;
  // Set when the source itself names the policy it applied (a libtlsrpt datagram for sts or
  // tlsa); otherwise classify.hpp attaches the fleet's policy.
  std::optional<tlsrpt::AppliedPolicy> policy;
};

// Counters of one parser (exported by the daemon as metrics, never per domain).
struct ParserStats {
  std::uint64_t lines = 0;           // lines fed
  std::uint64_t sessions = 0;        // outcomes produced
  std::uint64_t malformed = 0;       // lines of interest that did not parse (bad time, bad domain)
  std::uint64_t report_mail = 0;     // sessions of our own report mail, not counted (no loops)
  std::uint64_t reused = 0;          // deliveries over a reused connection, not sessions
  std::uint64_t pending_dropped = 0; // failed attempts never followed by a status line (bounded)
  std::uint64_t unconfirmed_clear = 0; // deliveries in clear dropped: the log never showed a TLS line
  std::uint64_t not_mx = 0;          // deliveries not to an MX on port 25 (content filters, MSP), not counted
};

struct ParserOptions {
  // The envelope sender of the report mail (`sender-address`): its deliveries are not
  // counted. Compared without case; "" counts everything.
  std::string sender_address;
  // The host's sending IP (`sending-ip`), for sources that do not log it; "" leaves it empty.
  std::string sending_ip;
  // The MTA logs every TLS session (Postfix smtp_tls_loglevel >= 1, Sendmail LogLevel >= 9 for
  // STARTTLS=client): a new connection that delivered without a TLS line was in clear
  // (starttls-not-supported). False: such deliveries are not counted at all.
  bool tls_logged = true;
  // Traditional syslog stamps ("Dec  8 00:20:40") carry no year nor zone: the year is taken
  // from this clock (a stamp more than a day ahead belongs to the year before) and the
  // stamp is read as UTC plus this offset (seconds east of UTC of the logging host).
  const Clock* clock = nullptr;
  std::int64_t utc_offset = 0;
};

// A line parser of one MTA's log. Feeding is cheap and never throws on bad input.
class LineParser {
 public:
  virtual ~LineParser() = default;
  // One log line as written to a file (no trailing newline needed).
  virtual void feed(std::string_view line, std::vector<Outcome>& out) = 0;
  // One already split record (the journal): time, syslog identifier ("postfix/smtp"), PID,
  // message.
  virtual void feed_record(std::int64_t time, std::string_view program, std::uint32_t pid,
                           std::string_view message, std::vector<Outcome>& out) = 0;
  // State that must survive a restart together with the source's position: the queue ids of
  // report mail seen but not yet delivered. Opaque text; restore() ignores what it cannot read.
  virtual std::string save_state() const = 0;
  virtual void restore_state(std::string_view text) = 0;
  virtual const ParserStats& stats() const noexcept = 0;
};

}  // namespace mtasts::reportd
