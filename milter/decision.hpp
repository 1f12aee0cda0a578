// What the milter decides, per recipient domain and per message, as pure functions of the
// lookup result, the time and the configuration; and the header contract of DESIGN.md:
//   X-MTA-STS: example.com; mode=enforce; id=20260424T120000Z; mx=mail.example.com,*.example.com
// one field per distinct recipient domain with an `enforce` or `testing` policy, after every
// incoming field of that name was removed (a sender must not forge or pre-empt the tag).
// No field at all on a message whose sender opted out with `TLS-Required: No` (RFC 8689, when
// honoured) or on TLS-RPT report mail (RFC 8460 section 3: reports must get through).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/sts/cache_entry.hpp"
#include "common/daemon/config.hpp"
#include "common/sts/domain.hpp"
#include "common/fleet/lookup.hpp"

namespace mtasts::milter {

enum class Status {
  enforce,    // usable policy, mode enforce: tag
  testing,    // usable policy, mode testing: tag
  none,       // usable policy, mode none
  no_policy,  // the fleet knows the domain has no policy
  unknown,    // nothing usable known yet (not cached, or expired and not refreshed)
  error,      // Redis unreachable or over budget
};
const char* to_string(Status s) noexcept;

enum class Action { tag, pass, tempfail };
const char* to_string(Action a) noexcept;

struct DecisionOptions {
  OnFailure on_unknown = OnFailure::accept;
  OnFailure on_redis_error = OnFailure::accept;
};

struct Decision {
  std::string domain;               // A-label form
  Status status = Status::unknown;
  Action action = Action::pass;
  std::string reason;               // short token for the log: "cached-policy", "not-cached", ...
  std::string policy_id;            // TXT id of the policy, when there is one
  std::vector<std::string> mx;      // canonical patterns, in policy order
  std::string source;               // "local", "redis", "redis+wait" (for the log)
};

Decision decide(const Domain& d, const LookupResult& r, SysTime now, const DecisionOptions& o);

// At most this many octets of mx patterns go into one field. A policy file may list 64 KiB
// of patterns, which would otherwise become a 64 KiB field on every message to the domain.
// Beyond the bound the field lists the patterns that fit, in policy order, and ends with
// "; mx-truncated=N" (N patterns left out): the complete list is in the cache.
inline constexpr std::size_t kMaxHeaderMxBytes = 2048;

// "example.com; mode=enforce; id=...; mx=a,b". Folded with LF+TAB after a comma only when
// the field would otherwise exceed the 998-octet line limit of RFC 5322.
std::string header_value(const Decision& d, std::string_view header_name);

// True when every part of the field the milter would write for `d` (domain, id, each mx
// pattern) is printable ASCII without the field's own separators: no CR, LF or other control
// character can reach a header line, whatever the cache held.
bool safe_for_header(const Decision& d);

// RFC 8689 section 5: "TLS-Required: No" (case-insensitive, surrounding white space and
// folding tolerated).
bool is_tls_required_no(std::string_view value);
// A Content-Type of multipart/report with report-type=tlsrpt (RFC 8460 section 5.3): type and
// parameter names and values case-insensitive, the value quoted or not, comments and header
// folding tolerated.
bool is_tlsrpt_report(std::string_view content_type);

struct HeaderField {
  std::string name;
  std::string value;
};

struct HeaderPlan {
  std::vector<int> delete_indices;  // 1-based occurrence numbers, highest first
  std::vector<HeaderField> add;     // in recipient order
  std::string suppressed;           // why nothing is added: "tls-required-no", "tlsrpt-report", ""
  std::vector<std::string> refused; // domains not tagged because a value was unsafe (safe_for_header)
};

struct MessageOptions {
  std::string header_name = "X-MTA-STS";
  bool honor_tls_required = true;
};

// The state of one message from MAIL FROM to end of message: the per-domain decisions made
// at RCPT, the header fields seen, and the plan for end of message. Not thread-safe (one per
// SMTP transaction, used by one libmilter thread at a time).
class Message {
 public:
  explicit Message(MessageOptions o) : opts_(std::move(o)) {}

  // The decision already taken for this domain in this message, if any (one lookup per
  // distinct domain per message).
  const Decision* find(const Domain& d) const;
  // Records a decision whose recipient was accepted.
  void accept(Decision d);
  // A recipient that got a temporary failure (logged, not tagged).
  void deferred(const Decision& d);
  // A recipient without a policy domain (address literal, malformed).
  void skipped(std::string_view reason);

  // Every header field of the incoming message, in order.
  void header(std::string_view name, std::string_view value);

  // Something went wrong in a step that could not answer (a no-reply step): the end of
  // message takes the configured failure action instead.
  void fail(std::string why) { failure_ = std::move(why); }
  const std::string& failure() const noexcept { return failure_; }

  HeaderPlan plan() const;

  // The values of the one log line per message, each a space-separated list of items.
  struct LogFields {
    std::string tagged;     // domains that get a field
    std::string decisions;  // "domain:status:reason:source" per accepted domain
    std::string deferred;   // "domain:status:reason" per temporarily failed recipient
    std::string skipped;    // reasons of recipients without a policy domain
    std::string removed;    // number of incoming fields of our name removed
    std::string suppressed; // see HeaderPlan; "unsafe-value:<domain>" per refused field
  };
  LogFields log_fields(const HeaderPlan& p) const;

  const std::vector<Decision>& decisions() const noexcept { return decisions_; }
  int own_fields() const noexcept { return own_fields_; }

 private:
  MessageOptions opts_;
  std::vector<Decision> decisions_;
  std::vector<std::string> deferred_;
  std::vector<std::string> skipped_;
  int own_fields_ = 0;
  bool tls_required_no_ = false;
  bool tlsrpt_ = false;
  bool content_type_seen_ = false;
  std::string failure_;
};

}  // namespace mtasts::milter
