// The sender's rules; see sender.hpp.
#include "reportd/send/sender.hpp"

#include <algorithm>
#include <stdexcept>

#include "common/sts/domain.hpp"
#include "common/tlsrpt/model.hpp"
#include "common/tlsrpt/record.hpp"
#include "common/tlsrpt/report.hpp"
#include "common/util/log.hpp"
#include "common/util/random.hpp"
#include "reportd/send/message.hpp"

namespace mtasts::reportd {
namespace {

std::int64_t unix_of(SysTime t) { return t.time_since_epoch().count(); }

bool is_terminal(SendOutcome o) noexcept {
  switch (o) {
    case SendOutcome::sent:
    case SendOutcome::already_sent:
    case SendOutcome::gave_up:
    case SendOutcome::nowhere:
    case SendOutcome::excluded:
    case SendOutcome::no_failures:
      return true;
    default:
      return false;
  }
}

// The outcome a finished (day, domain) shows again.
std::vector<SendResult> from_state(std::string_view day, std::string_view domain, const SendState& st) {
  const std::string d(day), dom(domain);
  if (st.status == "nowhere") return {{d, dom, "", SendOutcome::nowhere, st.error}};
  if (st.status == "skipped") return {{d, dom, "", SendOutcome::no_failures, "no failed session"}};
  if (st.status == "gave-up") return {{d, dom, "", SendOutcome::gave_up, st.error}};
  std::vector<SendResult> out;
  for (const auto& [uri, rs] : st.rua) {
    if (rs.kind == RuaState::Kind::sent) out.push_back({d, dom, uri, SendOutcome::already_sent, {}});
    else if (rs.kind == RuaState::Kind::gave_up) out.push_back({d, dom, uri, SendOutcome::gave_up, rs.error});
  }
  if (out.empty()) out.push_back({d, dom, "", SendOutcome::already_sent, {}});
  return out;
}

// Releases a claim whatever path the work leaves by.
class ClaimGuard {
 public:
  ClaimGuard(SendStore& s, std::string_view day, std::string_view domain, std::string token)
      : store_(s), day_(day), domain_(domain), token_(std::move(token)) {}
  ~ClaimGuard() {
    try {
      store_.release(day_, domain_, token_);
    } catch (const std::exception& e) {
      // It expires by itself.
      log::debug("send claim not released", {{"domain", domain_}, {"error", e.what()}});
    }
  }
  ClaimGuard(const ClaimGuard&) = delete;
  ClaimGuard& operator=(const ClaimGuard&) = delete;

 private:
  SendStore& store_;
  std::string day_, domain_, token_;
};

}  // namespace

const char* to_string(SendOutcome o) noexcept {
  switch (o) {
    case SendOutcome::sent: return "sent";
    case SendOutcome::already_sent: return "already-sent";
    case SendOutcome::retry: return "retry";
    case SendOutcome::not_due: return "not-due";
    case SendOutcome::gave_up: return "gave-up";
    case SendOutcome::nowhere: return "nowhere";
    case SendOutcome::excluded: return "excluded";
    case SendOutcome::no_failures: return "no-failures";
    case SendOutcome::busy: return "busy";
    case SendOutcome::error: return "error";
  }
  return "error";
}

bool SendSummary::ok() const noexcept {
  for (const auto& r : results) {
    switch (r.outcome) {
      case SendOutcome::sent:
      case SendOutcome::already_sent:
      case SendOutcome::nowhere:
      case SendOutcome::excluded:
      case SendOutcome::no_failures:
        break;
      default:
        return false;
    }
  }
  return true;
}

std::string default_submitter(std::string_view contact) {
  DomainParse d = Domain::parse(tlsrpt::submitter_of(contact));
  return d.domain ? d.domain->str() : std::string();
}

Sender::Sender(SendOptions opts, ReportSource& source, dns::Resolver& resolver, MailSubmitter& mail,
               HttpsPoster& https, SendStore& store, const Clock& clock)
    : opts_(std::move(opts)), source_(source), resolver_(resolver), mail_(mail), https_(https), store_(store),
      clock_(clock) {
  if (opts_.submitter.empty()) opts_.submitter = default_submitter(opts_.contact_info);
  // Compared with the aggregates' A-label names: "Example.COM." excludes example.com.
  for (auto& e : opts_.exclude) {
    DomainParse p = Domain::parse(e);
    if (p.domain) e = p.domain->str();
  }
}

void Sender::set_metrics(metrics::Registry& registry) {
  auto c = std::make_unique<Counters>();
  for (const bool https : {false, true}) {
    for (const SendOutcome o : {SendOutcome::sent, SendOutcome::retry, SendOutcome::gave_up}) {
      std::string outcome = to_string(o);
      std::replace(outcome.begin(), outcome.end(), '-', '_');
      c->deliveries[{https, o}] = &registry.counter(
          "mta_sts_reportd_report_deliveries_total", "Deliveries of TLS-RPT reports to report URIs, by scheme and outcome.",
          {{"scheme", https ? "https" : "mailto"}, {"outcome", outcome}});
    }
  }
  for (const char* reason : {"nowhere", "no_failures", "excluded", "dns_retry", "dns_gave_up", "busy", "error"})
    c->not_sent[reason] = &registry.counter("mta_sts_reportd_reports_not_sent_total",
                                            "Reports of a day and policy domain not sent to any URI this round, by reason.",
                                            {{"reason", reason}});
  for (const char* result : {"valid", "none", "invalid"})
    c->records[result] = &registry.counter("mta_sts_reportd_tlsrpt_records_total",
                                           "_smtp._tls TXT RRsets looked up: one valid TLSRPT record, none, "
                                           "or an invalid one (two records, no usable URI, malformed).",
                                           {{"result", result}});
  c->skipped = &registry.counter("mta_sts_reportd_report_uris_skipped_total",
                                 "rua URIs of TLSRPT records not used (unknown scheme, unsafe address, over 10).");
  counters_ = std::move(c);
}

void Sender::count(const SendResult& r, bool https) {
  if (!counters_) return;
  if (!r.rua.empty()) {
    auto it = counters_->deliveries.find({https, r.outcome});
    if (it != counters_->deliveries.end()) it->second->inc();
    return;
  }
  const char* reason = nullptr;
  switch (r.outcome) {
    case SendOutcome::nowhere: reason = "nowhere"; break;
    case SendOutcome::no_failures: reason = "no_failures"; break;
    case SendOutcome::excluded: reason = "excluded"; break;
    case SendOutcome::retry: reason = "dns_retry"; break;
    case SendOutcome::gave_up: reason = "dns_gave_up"; break;
    case SendOutcome::busy: reason = "busy"; break;
    case SendOutcome::error: reason = "error"; break;
    default: return;
  }
  counters_->not_sent[reason]->inc();
}

std::chrono::seconds Sender::backoff(unsigned attempts) const {
  std::chrono::seconds b = opts_.first_retry;
  for (unsigned i = 1; i < attempts && b < opts_.max_retry; ++i) b *= 2;
  return std::min(b, opts_.max_retry);
}

bool Sender::excluded(std::string_view domain) const {
  return std::find(opts_.exclude.begin(), opts_.exclude.end(), domain) != opts_.exclude.end();
}

std::vector<SendResult> Sender::send_domain(std::string_view day, std::string_view domain, bool force) {
  const std::string d(day), dom(domain);
  auto one = [&](SendOutcome o, std::string detail = {}) {
    std::vector<SendResult> r{{d, dom, "", o, std::move(detail)}};
    count(r.front(), false);
    return r;
  };
  if (excluded(domain)) return one(SendOutcome::excluded);
  {
    DomainParse p = Domain::parse(domain);
    if (!p.domain || p.domain->str() != domain) return one(SendOutcome::error, "not a normalised domain name");
  }
  if (!tlsrpt::day_start(day)) return one(SendOutcome::error, "not a day");
  const std::int64_t now = unix_of(clock_.now());

  try {
    SendState st = store_.read(day, domain);
    if (!st.status.empty()) return from_state(day, domain, st);
    if (!force && st.next > now) return one(SendOutcome::not_due);

    const std::string token = random_hex(16);
    const auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(
        2 * std::max(opts_.sendmail_timeout, opts_.https_timeout) + std::chrono::seconds(60));
    if (!store_.claim(day, domain, token, ttl)) return one(SendOutcome::busy, "another sender holds the claim");
    ClaimGuard guard(store_, day, domain, token);
    st = store_.read(day, domain);  // the previous holder may have finished meanwhile
    if (!st.status.empty()) return from_state(day, domain, st);
    if (!force && st.next > now) return one(SendOutcome::not_due);

    const std::int64_t first = st.first != 0 ? st.first : now;
    const std::string first_text = std::to_string(first);
    auto lost = [&] {
      log::error("send claim lost: nothing recorded", {{"day", d}, {"domain", dom}});
      return one(SendOutcome::busy, "claim lost");
    };

    std::optional<ReportText> report = source_.report(day, domain);
    if (!report) return one(SendOutcome::nowhere, "nothing counted");
    if (opts_.only_failures && report->failures == 0) {
      if (!store_.write(day, domain, token, {{"first", first_text}, {"status", "skipped"}})) return lost();
      log::info("no report: no failed session (only-failures)", {{"day", d}, {"domain", dom}});
      return one(SendOutcome::no_failures, "no failed session");
    }
    if (!is_report_id(report->report_id)) return one(SendOutcome::error, "report-id is not header-safe");

    const dns::TxtAnswer txt = resolver_.txt("_smtp._tls." + dom);
    if (dns::is_failure(txt.status)) {
      const std::string why = std::string("TLSRPT record lookup failed: ") + dns::to_string(txt.status) +
                              (txt.error.empty() ? "" : " (" + txt.error + ")");
      const unsigned attempts = st.attempts + 1;
      if (now - first >= opts_.give_up_after.count()) {
        if (!store_.write(day, domain, token, {{"status", "gave-up"}, {"error", why}})) return lost();
        log::error("report given up: the TLSRPT record could not be looked up for 24 hours",
                   {{"day", d}, {"domain", dom}, {"error", why}});
        return one(SendOutcome::gave_up, why);
      }
      const std::int64_t next = now + backoff(attempts).count();
      if (!store_.write(day, domain, token,
                        {{"first", first_text}, {"attempts", std::to_string(attempts)}, {"next", std::to_string(next)},
                         {"error", why}}))
        return lost();
      log::warning("report delayed: TLSRPT record lookup failed", {{"day", d}, {"domain", dom}, {"error", why},
                                                                   {"retry", iso_time(SysTime{Seconds{next}})}});
      return one(SendOutcome::retry, why);
    }
    std::vector<std::string> texts;
    for (const auto& strings : txt.records) {
      std::string t;
      for (const auto& s : strings) t += s;
      texts.push_back(std::move(t));
    }
    const tlsrpt::RecordParse rec = tlsrpt::select_record(texts);
    for (const auto& w : rec.warnings)
      log::warning("TLSRPT record: rua skipped", {{"domain", dom}, {"warning", w}});
    if (counters_) {
      counters_->records[rec.record ? "valid" : rec.found ? "invalid" : "none"]->inc();
      counters_->skipped->inc(rec.skipped);
    }
    if (!rec.record) {
      if (!store_.write(day, domain, token, {{"first", first_text}, {"status", "nowhere"}, {"error", rec.error}}))
        return lost();
      // No record is the common case (the domain asks for no reports); an invalid one is the
      // domain's mistake, or an attack, and worth the operator's eye.
      if (rec.found)
        log::warning("no report: invalid TLSRPT record", {{"day", d}, {"domain", dom}, {"error", rec.error}});
      else
        log::info("no report: no TLSRPT record", {{"day", d}, {"domain", dom}});
      return one(SendOutcome::nowhere, rec.error);
    }

    const std::string gz = gzip(report->json);
    std::vector<SendResult> out;
    bool all_done = true;
    std::int64_t next_due = 0;
    for (const auto& uri : rec.record->rua) {
      RuaState rs = st.rua.count(uri.uri) ? st.rua[uri.uri] : RuaState{};
      if (rs.kind == RuaState::Kind::sent) {
        out.push_back({d, dom, uri.uri, SendOutcome::already_sent, {}});
        continue;
      }
      if (rs.kind == RuaState::Kind::gave_up && !force) {
        out.push_back({d, dom, uri.uri, SendOutcome::gave_up, rs.error});
        continue;
      }
      if (rs.kind == RuaState::Kind::failed && !force && rs.next > now) {
        out.push_back({d, dom, uri.uri, SendOutcome::not_due, rs.error});
        all_done = false;
        next_due = next_due == 0 ? rs.next : std::min(next_due, rs.next);
        continue;
      }
      if (!store_.renew(day, domain, token, ttl)) {
        auto r = lost();
        out.insert(out.end(), r.begin(), r.end());
        return out;
      }
      Delivery del;
      try {
        if (uri.scheme == tlsrpt::ReportUri::Scheme::mailto) {
          ReportMail m;
          m.from = opts_.sender_address;
          m.to = uri.target;
          m.submitter = opts_.submitter;
          m.policy_domain = dom;
          m.report_id = report->report_id;
          m.day = d;
          m.organization = opts_.organization_name;
          m.gz = gz;
          m.date = clock_.now();
          del = mail_.submit(opts_.sender_address, uri.target, build_report_mail(m));
        } else {
          del = https_.post(uri.target, gz);
        }
      } catch (const std::exception& e) {
        del = {false, e.what()};
      }
      const std::int64_t at = unix_of(clock_.now());
      SendOutcome o;
      if (del.ok) {
        rs = RuaState{RuaState::Kind::sent, at, 0, 0, {}};
        o = SendOutcome::sent;
      } else {
        const unsigned attempts = (rs.kind == RuaState::Kind::failed ? rs.attempts : 0) + 1;
        if (at - first >= opts_.give_up_after.count()) {
          rs = RuaState{RuaState::Kind::gave_up, at, attempts, 0, del.error};
          o = SendOutcome::gave_up;
        } else {
          const std::int64_t next = at + backoff(attempts).count();
          rs = RuaState{RuaState::Kind::failed, 0, attempts, next, del.error};
          o = SendOutcome::retry;
          all_done = false;
          next_due = next_due == 0 ? next : std::min(next_due, next);
        }
      }
      if (!store_.write(day, domain, token, {{"first", first_text}, {"rua:" + uri.uri, rs.encode()}})) {
        log::error("report delivered but not recorded (claim lost): another sender may send it again",
                   {{"day", d}, {"domain", dom}, {"rua", uri.uri}});
        out.push_back({d, dom, uri.uri, o, "not recorded: claim lost"});
        count(out.back(), uri.scheme == tlsrpt::ReportUri::Scheme::https);
        out.push_back({d, dom, "", SendOutcome::busy, "claim lost: the other ruas are left to its holder"});
        return out;
      }
      switch (o) {
        case SendOutcome::sent:
          log::notice("report sent", {{"day", d}, {"domain", dom}, {"rua", uri.uri}});
          break;
        case SendOutcome::gave_up:
          log::error("report given up after 24 hours of failures",
                     {{"day", d}, {"domain", dom}, {"rua", uri.uri}, {"error", del.error}});
          break;
        default:
          log::warning("report not delivered; will retry",
                       {{"day", d}, {"domain", dom}, {"rua", uri.uri}, {"error", del.error},
                        {"retry", iso_time(SysTime{Seconds{rs.next}})}});
      }
      out.push_back({d, dom, uri.uri, o, del.error});
      count(out.back(), uri.scheme == tlsrpt::ReportUri::Scheme::https);
    }
    const bool wrote = all_done ? store_.write(day, domain, token, {{"status", "done"}})
                                : store_.write(day, domain, token, {{"next", std::to_string(next_due)}});
    if (!wrote) log::error("send claim lost before the report's state was recorded", {{"day", d}, {"domain", dom}});
    return out;
  } catch (const std::exception& e) {
    log::warning("report not sent", {{"day", d}, {"domain", dom}, {"error", e.what()}});
    return one(SendOutcome::error, e.what());
  }
}

SendSummary Sender::send_day(std::string_view day) {
  const auto start = tlsrpt::day_start(day);
  if (!start) throw std::invalid_argument("not a day (YYYY-MM-DD expected)");
  if (*start + 86400 > unix_of(clock_.now()))
    log::warning("sending the reports of a day that is not over: they hold what was counted so far, and the day "
                 "is not reported again",
                 {{"day", std::string(day)}});
  SendSummary s;
  std::vector<std::string> domains = source_.domains(day);
  for (const auto& dom : domains) {
    auto r = send_domain(day, dom, true);
    s.results.insert(s.results.end(), r.begin(), r.end());
  }
  return s;
}

SysTime Sender::due_at(std::string_view day) {
  const auto start = tlsrpt::day_start(day);
  if (!start) throw std::invalid_argument("not a day");
  std::chrono::seconds delay{0};
  {
    std::lock_guard lock(mu_);
    auto it = delay_.find(std::string(day));
    if (it == delay_.end()) {
      // Uniform in [min(settle, max), max]: never later than send-delay-max after midnight.
      std::uint64_t r = 0;
      kernel_random(&r, sizeof r);
      const std::int64_t hi = std::max<std::int64_t>(opts_.send_delay_max.count(), 0);
      const std::int64_t lo = std::clamp<std::int64_t>(opts_.settle.count(), 0, hi);
      delay = std::chrono::seconds(lo + static_cast<std::int64_t>(r % static_cast<std::uint64_t>(hi - lo + 1)));
      delay_.emplace(std::string(day), delay);
    } else {
      delay = it->second;
    }
  }
  return SysTime{Seconds{*start + 86400}} + delay;
}

SendSummary Sender::tick() {
  SendSummary s;
  if (!opts_.send) return s;
  const SysTime now = clock_.now();
  const std::int64_t n = unix_of(now);
  for (const std::int64_t back : {1, 2}) {
    const std::string day = tlsrpt::day_of(n - back * 86400);
    if (now < due_at(day)) continue;
    std::vector<std::string> domains;
    try {
      domains = source_.domains(day);
    } catch (const std::exception& e) {
      log::warning("cannot list the day's domains", {{"day", day}, {"error", e.what()}});
      continue;
    }
    for (const auto& dom : domains) {
      {
        std::lock_guard lock(mu_);
        if (finished_[day].count(dom)) continue;
      }
      auto r = send_domain(day, dom, false);
      bool finished = true;
      for (const auto& x : r) finished = finished && is_terminal(x.outcome);
      if (finished) {
        std::lock_guard lock(mu_);
        finished_[day].insert(dom);
      }
      for (auto& x : r)
        if (x.outcome != SendOutcome::not_due) s.results.push_back(std::move(x));
    }
  }
  // Forget days older than the window.
  std::lock_guard lock(mu_);
  const std::string oldest = tlsrpt::day_of(n - 3 * 86400);
  std::erase_if(finished_, [&](const auto& kv) { return kv.first < oldest; });
  std::erase_if(delay_, [&](const auto& kv) { return kv.first < oldest; });
  return s;
}

SendLoop::SendLoop(Sender& sender, std::chrono::seconds period)
    : sender_(sender), period_(period), thread_([this] { run(); }) {}

SendLoop::~SendLoop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void SendLoop::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    try {
      sender_.tick();
    } catch (const std::exception& e) {
      log::warning("report sending round failed", {{"error", e.what()}});
    }
    lock.lock();
    cv_.wait_for(lock, period_, [this] { return stopping_; });
  }
}

}  // namespace mtasts::reportd
