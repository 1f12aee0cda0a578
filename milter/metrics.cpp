// The milter's metrics; see metrics.hpp.
#include "milter/metrics.hpp"

#include <cstddef>

namespace mtasts::milter {

namespace {

// Label values: the decision as the issue and the alert rules name it.
const char* decision_label(Status s) {
  switch (s) {
    case Status::enforce: return "enforce";
    case Status::testing: return "testing";
    case Status::none: return "none";
    case Status::no_policy: return "no-policy";
    case Status::unknown: return "unknown";
    case Status::error: return "redis-error";
  }
  return "unknown";
}

const char* result_label(MessageResult r) {
  switch (r) {
    case MessageResult::tagged: return "tagged";
    case MessageResult::untagged: return "untagged";
    case MessageResult::opted_out: return "opted-out";
    case MessageResult::tlsrpt: return "tlsrpt";
    case MessageResult::deferred: return "deferred";
  }
  return "untagged";
}

MilterMetrics make() {
  MilterMetrics m;
  auto& r = metrics::registry();
  const Status statuses[] = {Status::enforce, Status::testing, Status::none,
                             Status::no_policy, Status::unknown, Status::error};
  const Action actions[] = {Action::tag, Action::pass, Action::tempfail};
  for (Status s : statuses)
    for (Action a : actions)
      m.domains[static_cast<std::size_t>(s)][static_cast<std::size_t>(a)] =
          &r.counter("mta_sts_milter_recipient_domains_total",
                     "Recipient domains decided at RCPT (one per distinct domain per message), by the policy "
                     "found and the action taken.",
                     {{"decision", decision_label(s)}, {"action", to_string(a)}});
  const MessageResult results[] = {MessageResult::tagged, MessageResult::untagged, MessageResult::opted_out,
                                   MessageResult::tlsrpt, MessageResult::deferred};
  for (MessageResult x : results)
    m.messages[static_cast<std::size_t>(x)] =
        &r.counter("mta_sts_milter_messages_total", "Messages at end of message, by what was done.",
                   {{"result", result_label(x)}});
  return m;
}

}  // namespace

MilterMetrics& milter_metrics() {
  static MilterMetrics m = make();
  return m;
}

void MilterMetrics::decided(const Decision& d) noexcept {
  const auto s = static_cast<std::size_t>(d.status);
  const auto a = static_cast<std::size_t>(d.action);
  if (s < 6 && a < 3) domains[s][a]->inc();
}

void MilterMetrics::message(MessageResult r) noexcept {
  const auto i = static_cast<std::size_t>(r);
  if (i < 5) messages[i]->inc();
}

}  // namespace mtasts::milter
