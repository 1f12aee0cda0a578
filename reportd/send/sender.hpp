// mta-sts-reportd's sender (issue 20, RFC 8460 section 5): one report per (UTC day, policy
// domain, rua) for the whole fleet, exactly once.
//
// For each domain the fleet counted sessions for on a day (ReportSource), unless excluded
// (`exclude`) or, with `only-failures`, without a failure: the `_smtp._tls.<domain>` TXT
// RRset must hold exactly one valid TLSRPT record (else no report, logged); the report's JSON
// is gzipped and delivered to each rua: mailto: as a multipart/report message handed to
// `sendmail-command`, https: as a POST. A claim in Redis (SendStore) makes one sender of the
// fleet do (day, domain) at a time, and its fenced record of every rua's outcome makes a
// restart or another host neither resend nor drop: a rua that failed is retried with backoff
// (5 minutes, doubling, at most 2 hours) until 24 hours after the first attempt, then given
// up (logged). A DNS failure of the record lookup is retried the same way.
//
// The schedule (tick): a day's reports are due after the next day's 00:00 UTC plus a random
// delay between `settle` (15 minutes: the hosts' last batches of the day reach the
// aggregates; less when send_delay_max is shorter) and `send_delay_max`, drawn per host and
// day, so that the fleet's hosts and the world's reporters do not all send at midnight. Yesterday and the day before are looked at, so that
// retries run their 24 hours. `send = no`: tick() never sends (send_day() still does: it is
// the operator's explicit order).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/dns/dns.hpp"
#include "common/util/clock.hpp"
#include "common/util/metrics.hpp"
#include "reportd/send/send_store.hpp"
#include "reportd/send/transport.hpp"

namespace mtasts::reportd {

struct SendOptions {
  std::string organization_name;
  std::string contact_info;
  std::string submitter;       // "" -> default_submitter(contact_info)
  std::string sender_address;  // From: and the envelope sender (-f)
  std::string sendmail_command = "/usr/sbin/sendmail -i";
  bool send = true;            // this host takes part in the scheduled sending
  bool only_failures = false;  // no report for a domain without a failed session
  std::vector<std::string> exclude;  // domains never reported to
  std::string ca_file;         // for https: ruas; "" -> the system store
  std::chrono::milliseconds https_timeout{60000};
  std::chrono::milliseconds sendmail_timeout{120000};
  std::chrono::seconds send_delay_max{3600};   // the latest after 00:00 UTC
  std::chrono::seconds settle{900};            // the earliest (capped at send_delay_max)
  std::chrono::seconds first_retry{300};       // backoff: 5 min, doubling...
  std::chrono::seconds max_retry{7200};        // ...to at most 2 h
  std::chrono::seconds give_up_after{86400};   // from the first attempt
};

// tlsrpt::submitter_of(contact_info) as an A-label domain; "" when it is not one.
std::string default_submitter(std::string_view contact_info);

// One (day, domain)'s report as it is to be sent.
struct ReportText {
  std::string json;          // RFC 8460 JSON (report_json)
  std::string report_id;     // is_report_id(): header-safe (tlsrpt::report_id)
  std::uint64_t failures = 0;  // failed sessions counted (only-failures)
};

// What the sender reads from the fleet's aggregates (the daemon backs it with ReportStore and
// report_json; tests with a fake).
class ReportSource {
 public:
  virtual ~ReportSource() = default;
  // The policy domains with sessions on `day`.
  virtual std::vector<std::string> domains(std::string_view day) = 0;
  // nullopt: nothing counted for (day, domain).
  virtual std::optional<ReportText> report(std::string_view day, std::string_view domain) = 0;
};

enum class SendOutcome {
  sent,              // delivered now
  already_sent,      // delivered before (by this or another host)
  retry,             // failed now; tried again later
  not_due,           // failed before; its next attempt is later
  gave_up,           // failed for 24 hours
  nowhere,           // no usable TLSRPT record: nowhere to send (not an error)
  excluded,          // `exclude`
  no_failures,       // only-failures and none
  busy,              // another sender holds the claim now
  error,             // anything else (Redis, a bad report): tried again later
};
const char* to_string(SendOutcome o) noexcept;

struct SendResult {
  std::string day;
  std::string domain;
  std::string rua;  // "" for outcomes of the domain as a whole
  SendOutcome outcome = SendOutcome::error;
  std::string detail;
};

struct SendSummary {
  std::vector<SendResult> results;
  // True when each report was sent (now or before) or had nowhere to go (no record,
  // excluded, no failures): the exit status 0 of `--send DAY`.
  bool ok() const noexcept;
};

class Sender {
 public:
  Sender(SendOptions opts, ReportSource& source, dns::Resolver& resolver, MailSubmitter& mail, HttpsPoster& https,
         SendStore& store, const Clock& clock);

  // One-shot: every domain of `day` now (no spread, backoff ignored; claims and records
  // kept as usual). Throws std::invalid_argument for a bad day.
  SendSummary send_day(std::string_view day);
  // One (day, domain); `force` ignores the backoff of failed ruas.
  std::vector<SendResult> send_domain(std::string_view day, std::string_view domain, bool force);
  // The scheduler's round: what is due now. Returns what was done (not-due outcomes left out).
  SendSummary tick();
  // When this host's sending of `day` starts (next day 00:00 + its random delay).
  SysTime due_at(std::string_view day);

  const SendOptions& options() const noexcept { return opts_; }

  // Counters (never a domain label), created now in `registry`, which must outlive the
  // sender; call before the first round:
  //   mta_sts_reportd_report_deliveries_total{scheme="mailto|https",outcome="sent|retry|gave_up"}
  //   mta_sts_reportd_reports_not_sent_total{reason="nowhere|no_failures|excluded|dns_retry|
  //                                                  dns_gave_up|busy|error"}
  //   mta_sts_reportd_tlsrpt_records_total{result="valid|none|invalid"}
  //   mta_sts_reportd_report_uris_skipped_total
  void set_metrics(metrics::Registry& registry);

 private:
  void count(const SendResult& r, bool https);
  std::chrono::seconds backoff(unsigned attempts) const;
  bool excluded(std::string_view domain) const;

  SendOptions opts_;
  ReportSource& source_;
  dns::Resolver& resolver_;
  MailSubmitter& mail_;
  HttpsPoster& https_;
  SendStore& store_;
  const Clock& clock_;
  std::mutex mu_;
  std::map<std::string, std::chrono::seconds> delay_;        // per day: this host's random delay
  std::map<std::string, std::set<std::string>> finished_;    // per day: domains with nothing left
  struct Counters {
    std::map<std::pair<bool, SendOutcome>, metrics::Counter*> deliveries;  // (https, outcome)
    std::map<std::string, metrics::Counter*> not_sent;
    std::map<std::string, metrics::Counter*> records;
    metrics::Counter* skipped = nullptr;
  };
  std::unique_ptr<Counters> counters_;
};

// Runs Sender::tick() every `period` on a thread of its own until destroyed.
class SendLoop {
 public:
  SendLoop(Sender& sender, std::chrono::seconds period = std::chrono::seconds(60));
  ~SendLoop();
  SendLoop(const SendLoop&) = delete;
  SendLoop& operator=(const SendLoop&) = delete;

 private:
  void run();
  Sender& sender_;
  std::chrono::seconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mtasts::reportd
