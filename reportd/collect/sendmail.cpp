#include "reportd/collect/sendmail.hpp"

#include <utility>

#include "common/util/log.hpp"

#include "reportd/collect/postfix.hpp"  // verification_result()

namespace mtasts::reportd {
namespace {

using tlsrpt::Result;

constexpr std::size_t kMaxProcs = 4096;
constexpr std::size_t kMaxAttempts = 32;
constexpr std::size_t kMaxTlsHosts = 64;
constexpr std::size_t kMaxHeld = 1000;
constexpr std::string_view kInClear = "delivered without TLS";

// The value of "key=" in a ", "-separated list (up to the next ", "); "" when absent.
std::string_view field(std::string_view s, std::string_view key) noexcept {
  std::size_t at = 0;
  while (true) {
    at = s.find(key, at);
    if (at == std::string_view::npos) return {};
    if (at == 0 || (at >= 2 && s[at - 2] == ',' && s[at - 1] == ' ')) break;
    at += key.size();
  }
  std::string_view v = s.substr(at + key.size());
  const auto end = v.find(", ");
  return end == std::string_view::npos ? v : v.substr(0, end);
}

TlsSeen verify_word(std::string_view v) noexcept {
  if (v == "OK" || v == "TRUSTED") return TlsSeen::verified;
  if (v == "FAIL" || v == "DANE_FAIL") return TlsSeen::untrusted;
  if (v == "NO" || v == "NOT") return TlsSeen::anonymous;
  if (v == "NONE") return TlsSeen::none;
  return TlsSeen::untrusted;  // TEMP, PROTOCOL, SOFTWARE: TLS did not verify
}

}  // namespace

SendmailParser::SendmailParser(ParserOptions options) : options_(std::move(options)), sender_(lower_ascii(options_.sender_address)) {}

void SendmailParser::feed(std::string_view line, std::vector<Outcome>& out) {
  // Mail submitted on the command line (the report mail: sendmail-command) is logged
  // "QID: from=a@b, size=..." without brackets: read as "from=<a@b>, ..." so that
  // sender-address is recognised and its deliveries are not counted.
  std::string bracketed;
  if (const auto at = line.find(": from="); at != std::string_view::npos && at + 7 < line.size() &&
                                            line[at + 7] != '<') {
    const auto comma = line.find(',', at + 7);
    if (comma != std::string_view::npos) {
      bracketed.reserve(line.size() + 2);
      bracketed.append(line.substr(0, at + 7)).append("<").append(line.substr(at + 7, comma - at - 7)).append(">");
      bracketed.append(line.substr(comma));
      line = bracketed;
    }
  }
  ++stats_.lines;
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!contains(line, "STARTTLS=client") && !contains(line, "to=") && !contains(line, "from=<") &&
      !contains(line, "ruleset=tls_"))
    return;
  const auto l = split_log_line(line, options_.clock, options_.utc_offset);
  if (!l) {
    ++stats_.malformed;
    return;
  }
  --stats_.lines;
  feed_record(l->time, l->program, l->pid, l->message, out);
}

SendmailParser::Proc& SendmailParser::proc(std::uint32_t pid) {
  if (procs_.size() >= kMaxProcs && procs_.find(pid) == procs_.end()) {
    for (const auto& [p, state] : procs_) stats_.pending_dropped += state.attempts.size();
    procs_.clear();
  }
  return procs_[pid];
}

void SendmailParser::feed_record(std::int64_t time, std::string_view program, std::uint32_t pid,
                                 std::string_view msg, std::vector<Outcome>& out) {
  ++stats_.lines;
  // sm-msp-queue only hands mail to the local MTA: not an MX delivery.
  if (contains(program, "sm-msp")) return;
  if (!contains(program, "sendmail") && !contains(program, "sm-mta")) return;
  std::string_view qid;
  if (const auto colon = msg.find(": "); colon != std::string_view::npos && is_queue_id(msg.substr(0, colon))) {
    qid = msg.substr(0, colon);
    msg.remove_prefix(colon + 2);
  }
  if (starts_with(msg, "STARTTLS=client, ")) {
    saw_tls(out);
    msg.remove_prefix(17);
    Proc& p = proc(pid);
    if (starts_with(msg, "cert-subject=")) {
      if (!p.attempts.empty()) {
        const std::string_view reason = field(msg, "verifymsg=");
        p.attempts.back().verify_msg = clean_text(reason, tlsrpt::kMaxAdditionalInformation);
      }
      return;
    }
    const std::string_view relay = field(msg, "relay=");
    const std::string host = normal_host(relay);
    if (host.empty()) {
      ++stats_.malformed;
      return;
    }
    if (p.attempts.size() >= kMaxAttempts) {
      ++stats_.pending_dropped;
      p.attempts.erase(p.attempts.begin());
    }
    Attempt a;
    a.host = host;
    a.time = time;
    if (starts_with(msg, "error: ")) {
      a.tls = TlsSeen::unknown;
      a.failure = Result::validation_failure;
      a.info = clean_text(field(msg, "reason="), tlsrpt::kMaxAdditionalInformation);
      if (a.info.empty()) a.info = "TLS handshake failed";
    } else {
      a.tls = verify_word(field(msg, "verify="));
      if (a.tls != TlsSeen::none && p.tls_hosts.size() < kMaxTlsHosts) p.tls_hosts.insert(host);
    }
    p.attempts.push_back(std::move(a));
    return;
  }
  if (starts_with(msg, "ruleset=tls_server, ")) {
    saw_tls(out);
    // Our own policy refused the server: that attempt failed.
    Proc& p = proc(pid);
    const std::string_view arg = field(msg, "arg1=");
    const std::string host = normal_host(field(msg, "relay="));
    Attempt* a = !p.attempts.empty() && p.attempts.back().host == host && !p.attempts.back().failure
                     ? &p.attempts.back()
                     : nullptr;
    if (a == nullptr) {  // no STARTTLS line: the server did not offer it
      Attempt fresh;
      fresh.host = host;
      fresh.time = time;
      fresh.tls = TlsSeen::none;
      p.attempts.push_back(std::move(fresh));
      a = &p.attempts.back();
    }
    if (arg == "NONE" || a->tls == TlsSeen::none) {
      a->failure = Result::starttls_not_supported;
    } else if (!a->verify_msg.empty()) {
      a->failure = verification_result(a->verify_msg);
    } else if (a->tls == TlsSeen::anonymous) {
      a->failure = Result::validation_failure;
    } else if (a->tls == TlsSeen::verified) {
      a->failure = Result::certificate_host_mismatch;  // chain fine, refused: the name did not match
    } else {
      a->failure = Result::certificate_not_trusted;
    }
    const std::string_view reject = field(msg, "reject=");
    a->info = a->verify_msg.empty() ? clean_text(reject, tlsrpt::kMaxAdditionalInformation) : a->verify_msg;
    return;
  }
  if (starts_with(msg, "ruleset=tls_rcpt, ")) {
    // FEATURE(`sts'): the certificate names or the MX did not match the policy.
    Proc& p = proc(pid);
    const std::string host = normal_host(field(msg, "relay="));
    if (!p.attempts.empty() && p.attempts.back().host == host && !p.attempts.back().failure) {
      Attempt& a = p.attempts.back();
      a.failure = Result::certificate_host_mismatch;
      std::string_view reject = field(msg, "reject=");
      if (const auto dots = reject.find("... "); dots != std::string_view::npos) reject.remove_prefix(dots + 4);
      a.info = clean_text(reject, tlsrpt::kMaxAdditionalInformation);
    }
    return;
  }
  if (qid.empty()) return;
  if (starts_with(msg, "from=<")) {
    if (sender_.empty()) return;
    std::string_view addr = msg.substr(6);
    const auto gt = addr.find('>');
    if (gt == std::string_view::npos || lower_ascii(addr.substr(0, gt)) != sender_) return;
    report_.add(qid, time);
    return;
  }
  if (starts_with(msg, "to=")) delivery(time, proc(pid), qid, msg, out);
}

void SendmailParser::emit(Outcome o, std::vector<Outcome>& out) {
  // As for Postfix: "in clear" only once the log has shown STARTTLS=client lines at all
  // (LogLevel 9, the default; below it Sendmail logs none).
  if (!tls_seen_ && o.tls == TlsSeen::none && o.session.additional_information == kInClear) {
    if (held_.size() < kMaxHeld) {
      held_.push_back(std::move(o));
    } else {
      if (stats_.unconfirmed_clear == 0)
        log::warning("Sendmail logs no STARTTLS lines: set LogLevel to 9 or more; deliveries in clear are not counted");
      ++stats_.unconfirmed_clear;
    }
    return;
  }
  ++stats_.sessions;
  out.push_back(std::move(o));
}

void SendmailParser::saw_tls(std::vector<Outcome>& out) {
  if (tls_seen_) return;
  tls_seen_ = true;
  std::vector<Outcome> held = std::move(held_);
  held_.clear();
  for (auto& o : held) emit(std::move(o), out);
}

void SendmailParser::delivery(std::int64_t time, Proc& p, std::string_view qid, std::string_view msg,
                              std::vector<Outcome>& out) {
  const std::string_view mailer = field(msg, "mailer=");
  const std::string_view relay = field(msg, "relay=");
  const std::string_view stat = field(msg, "stat=");
  const std::string_view dsn = field(msg, "dsn=");
  std::vector<Attempt> attempts = std::move(p.attempts);
  p.attempts.clear();
  if (mailer == "local" || mailer == "prog" || mailer == "*file*" || mailer == "*include*") return;
  if (mailer == "relay") {  // SMART_HOST or the MSP's hand-over, not an MX of the domain
    ++stats_.not_mx;
    return;
  }
  // to=<a@x>,<b@x>, ...: the first recipient's domain (one delivery goes to one host).
  std::string_view rcpt = msg.substr(3);
  const auto end = rcpt.find_first_of(",>");
  if (end != std::string_view::npos) rcpt = rcpt.substr(0, end + (rcpt[end] == '>' ? 1 : 0));
  const std::string* domain = domains_.normalize(address_domain(rcpt));
  if (domain == nullptr || stat.empty()) {
    ++stats_.malformed;
    return;
  }
  // relay=HOST. [IP] (may be forged) | relay=[IP] [IP]
  std::string host, ip;
  {
    std::string_view r = relay;
    const auto sp = r.find(' ');
    std::string_view h = r.substr(0, sp);
    if (!h.empty() && h.front() != '[') host = normal_host(h);
    const auto lb = r.find('[');
    const auto rb = r.find(']', lb == std::string_view::npos ? 0 : lb);
    if (lb != std::string_view::npos && rb != std::string_view::npos && rb > lb + 1 && rb - lb <= 46)
      ip = clean_text(r.substr(lb + 1, rb - lb - 1), 45);
  }
  if (report_.contains(qid)) {
    stats_.report_mail += attempts.empty() ? 1 : attempts.size();
    p.last_qid = std::string(qid);
    p.last_relay = std::string(relay);
    return;
  }
  const bool sent = starts_with(stat, "Sent");
  const auto make = [&](const Attempt& a, bool last) {
    Outcome o;
    o.session.time = a.time ? a.time : time;
    o.session.domain = *domain;
    o.session.receiving_mx_hostname = a.host;
    o.session.receiving_ip = last ? ip : std::string();
    o.session.sending_mta_ip = options_.sending_ip;
    o.tls = a.tls;
    if (a.failure) {
      o.session.result = *a.failure;
      o.session.additional_information = a.info;
      if (last) o.session.failure_reason_code = clean_text(dsn, tlsrpt::kMaxFailureReasonCode);
    } else {
      o.session.result = Result::success;
    }
    emit(std::move(o), out);
  };
  if (attempts.empty()) {
    if (p.last_qid == qid && p.last_relay == relay) return;  // another recipient line of the same delivery
    p.last_qid = std::string(qid);
    p.last_relay = std::string(relay);
    if (host.empty() && ip.empty()) return;
    if (p.tls_hosts.count(host) != 0) {
      ++stats_.reused;  // a cached connection to a host we spoke TLS with
      return;
    }
    if (!options_.tls_logged || !sent) return;  // in clear, or failed before any TLS
    Attempt clear;
    clear.host = host;
    clear.time = time;
    clear.tls = TlsSeen::none;
    clear.failure = Result::starttls_not_supported;
    clear.info = std::string(kInClear);
    make(clear, true);
    return;
  }
  p.last_qid = std::string(qid);
  p.last_relay = std::string(relay);
  for (std::size_t i = 0; i < attempts.size(); ++i) {
    const bool last = i + 1 == attempts.size() && attempts[i].host == host;
    make(attempts[i], last);
  }
}

std::string SendmailParser::save_state() const {
  // The report queue ids, then what each process is in the middle of (STARTTLS lines before
  // their to= line), so that a restart between them keeps the sessions' TLS.
  std::string out = report_.save("sendmail-state");
  if (tls_seen_) out += "tls-seen\n";
  for (const auto& o : held_) out += "held\t" + state_outcome(o) + "\n";
  for (const auto& [pid, p] : procs_) {
    const std::string id = std::to_string(pid);
    out += "proc\t" + id + "\t" + state_field(p.last_qid) + "\t" + state_field(p.last_relay) + "\n";
    for (const auto& h : p.tls_hosts) out += "tlshost\t" + id + "\t" + state_field(h) + "\n";
    for (const auto& a : p.attempts) {
      out += "attempt\t" + id + "\t" + state_field(a.host) + "\t" + std::to_string(static_cast<int>(a.tls)) + "\t" +
             (a.failure ? std::to_string(static_cast<int>(*a.failure)) : std::string("-")) + "\t" +
             state_field(a.info) + "\t" + state_field(a.verify_msg) + "\t" + std::to_string(a.time) + "\n";
    }
  }
  return out;
}

void SendmailParser::restore_state(std::string_view text) {
  // Replaces whatever this parser held (a collector rewinds a source to a saved position).
  procs_.clear();
  held_.clear();
  tls_seen_ = false;
  report_ = ReportMail{};
  report_.restore("sendmail-state", text);
  if (!starts_with(text, "sendmail-state 1\n")) return;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line == "tls-seen") {
      tls_seen_ = true;
      continue;
    }
    if (starts_with(line, "held\t")) {
      Outcome o;
      if (held_.size() < kMaxHeld && state_outcome_from(state_fields(line), 1, o)) held_.push_back(std::move(o));
      continue;
    }
    if (!starts_with(line, "proc\t") && !starts_with(line, "tlshost\t") && !starts_with(line, "attempt\t")) continue;
    const std::vector<std::string> f = state_fields(line);
    long pid = 0;
    if (f.size() < 3 || !state_int(f[1], 0xffffffffL, pid)) continue;
    const auto key = static_cast<std::uint32_t>(pid);
    if (procs_.size() >= kMaxProcs && procs_.find(key) == procs_.end()) continue;
    Proc& p = procs_[key];
    if (f[0] == "proc" && f.size() == 4) {
      p.last_qid = is_queue_id(f[2]) ? f[2] : std::string();
      p.last_relay = clean_text(f[3], 300);
    } else if (f[0] == "tlshost" && f.size() == 3 && p.tls_hosts.size() < kMaxTlsHosts) {
      const std::string h = normal_host(f[2]);
      if (!h.empty()) p.tls_hosts.insert(h);
    } else if (f[0] == "attempt" && f.size() == 8 && p.attempts.size() < kMaxAttempts) {
      long tls = 0, res = 0, t = 0;
      if (!state_int(f[3], 5, tls) || !state_int(f[7], 0x7fffffffffffL, t)) continue;
      Attempt a;
      a.host = normal_host(f[2]);
      a.tls = static_cast<TlsSeen>(tls);
      if (f[4] != "-") {
        if (!state_int(f[4], static_cast<long>(tlsrpt::kResultCount) - 1, res)) continue;
        a.failure = static_cast<Result>(res);
      }
      a.info = clean_text(f[5], tlsrpt::kMaxAdditionalInformation);
      a.verify_msg = clean_text(f[6], tlsrpt::kMaxAdditionalInformation);
      a.time = t;
      if (!a.host.empty()) p.attempts.push_back(std::move(a));
    }
  }
}

}  // namespace mtasts::reportd
