#include "reportd/collect/postfix.hpp"

#include <algorithm>
#include <utility>

#include "common/util/log.hpp"

namespace mtasts::reportd {
namespace {

using tlsrpt::Result;

constexpr std::size_t kMaxProcs = 4096;         // smtp processes tracked at once
constexpr std::size_t kMaxPendingPerProc = 32;  // MX hosts tried for one delivery
constexpr std::size_t kMaxHeld = 1000;           // deliveries in clear before any TLS line
constexpr std::string_view kInClear = "delivered without TLS";

// Splits "QUEUEID: rest"; false when the message does not start with a queue id.
bool split_qid(std::string_view msg, std::string_view& qid, std::string_view& rest) noexcept {
  const auto colon = msg.find(": ");
  if (colon == std::string_view::npos || !is_queue_id(msg.substr(0, colon))) return false;
  qid = msg.substr(0, colon);
  rest = msg.substr(colon + 2);
  return true;
}

// The last component of a syslog name: "postfix-out/smtp" -> "smtp".
std::string_view service(std::string_view program) noexcept {
  const auto slash = program.rfind('/');
  return slash == std::string_view::npos ? program : program.substr(slash + 1);
}

bool smtp_service(std::string_view program) noexcept {
  const std::string_view s = service(program);
  return (starts_with(s, "smtp") && !starts_with(s, "smtpd")) || s == "relay";
}

// "... host HOST[IP]" inside a reason text.
bool host_in_reason(std::string_view reason, std::string_view& host, std::string_view& ip) noexcept {
  const auto at = reason.find("host ");
  if (at == std::string_view::npos) return false;
  std::string_view t = reason.substr(at + 5);
  const auto end = t.find_first_of(" ,)");
  if (end != std::string_view::npos) t = t.substr(0, end);
  return split_host_ip(t, host, ip);
}

// A reason that says a TLS failure happened, and which one (nullopt: not a TLS failure).
std::optional<Result> tls_failure(std::string_view reason, const std::optional<Result>& verify, TlsSeen tls) {
  if (contains(reason, "TLS is required, but was not offered") || contains(reason, "refused to start TLS"))
    return Result::starttls_not_supported;
  if (contains(reason, "Server certificate not verified")) {
    if (verify) return *verify;
    return tls == TlsSeen::untrusted ? Result::certificate_not_trusted : Result::validation_failure;
  }
  if (contains(reason, "Cannot start TLS")) return Result::validation_failure;
  return std::nullopt;
}

// The SMTP dialog went past the greeting and EHLO (so STARTTLS would have been used).
bool dialog_went_on(std::string_view reason) noexcept {
  const auto at = reason.find("(in reply to ");
  if (at == std::string_view::npos) return false;
  const std::string_view what = reason.substr(at + 13);
  return !starts_with(what, "initial greeting") && !starts_with(what, "EHLO") && !starts_with(what, "HELO");
}

TlsSeen tls_word(std::string_view w) noexcept {
  if (w == "Verified") return TlsSeen::verified;
  if (w == "Trusted") return TlsSeen::trusted;
  if (w == "Untrusted") return TlsSeen::untrusted;
  if (w == "Anonymous") return TlsSeen::anonymous;
  return TlsSeen::unknown;
}

}  // namespace

const char* to_string(TlsSeen t) noexcept {
  switch (t) {
    case TlsSeen::unknown: return "unknown";
    case TlsSeen::none: return "none";
    case TlsSeen::anonymous: return "anonymous";
    case TlsSeen::untrusted: return "untrusted";
    case TlsSeen::trusted: return "trusted";
    case TlsSeen::verified: return "verified";
  }
  return "unknown";
}

Result verification_result(std::string_view r) noexcept {
  if (contains(r, "hostname mismatch") || contains(r, "name mismatch") || contains(r, "IP address mismatch"))
    return Result::certificate_host_mismatch;
  if (contains(r, "has expired") || contains(r, "num=10:")) return Result::certificate_expired;
  if (contains(r, "self-signed") || contains(r, "self signed") || contains(r, "untrusted issuer") ||
      contains(r, "not trusted") || contains(r, "unable to get local issuer") ||
      contains(r, "unable to get issuer") || contains(r, "certificate is not trusted") || contains(r, "num=18:") ||
      contains(r, "num=19:") || contains(r, "num=20:") || contains(r, "num=21:") || contains(r, "num=27:"))
    return Result::certificate_not_trusted;
  return Result::validation_failure;
}

PostfixParser::PostfixParser(ParserOptions options) : options_(std::move(options)), sender_(lower_ascii(options_.sender_address)) {}

void PostfixParser::feed(std::string_view line, std::vector<Outcome>& out) {
  ++stats_.lines;
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // Cheap filter first: only smtp, qmgr and pickup lines matter.
  if (!contains(line, "/smtp") && !contains(line, "/qmgr[") && !contains(line, "/pickup[") &&
      !contains(line, "/relay["))
    return;
  const auto l = split_log_line(line, options_.clock, options_.utc_offset);
  if (!l) {
    ++stats_.malformed;
    return;
  }
  --stats_.lines;  // counted again by feed_record
  feed_record(l->time, l->program, l->pid, l->message, out);
}

void PostfixParser::feed_record(std::int64_t time, std::string_view program, std::uint32_t pid,
                                std::string_view message, std::vector<Outcome>& out) {
  ++stats_.lines;
  const std::string_view s = service(program);
  if (s == "qmgr" || s == "pickup") {
    queue_line(time, message);
  } else if (smtp_service(program)) {
    smtp_line(time, pid, message, out);
  }
}

void PostfixParser::queue_line(std::int64_t time, std::string_view msg) {
  std::string_view qid, rest;
  if (!split_qid(msg, qid, rest)) return;
  if (rest == "removed") {
    report_.erase(qid);
    return;
  }
  if (sender_.empty()) return;
  const auto from = rest.find("from=<");
  if (from == std::string_view::npos) return;
  std::string_view addr = rest.substr(from + 6);
  const auto gt = addr.find('>');
  if (gt == std::string_view::npos) return;
  addr = addr.substr(0, gt);
  if (addr.size() != sender_.size() || lower_ascii(addr) != sender_) return;
  report_.add(qid, time);
}

PostfixParser::Proc& PostfixParser::proc(std::uint32_t pid) {
  if (procs_.size() >= kMaxProcs && procs_.find(pid) == procs_.end()) {
    for (const auto& [p, state] : procs_) stats_.pending_dropped += state.pending.size();
    procs_.clear();
  }
  return procs_[pid];
}

void PostfixParser::smtp_line(std::int64_t time, std::uint32_t pid, std::string_view msg, std::vector<Outcome>& out) {
  // "[server |CA ]certificate verification failed for HOST[IP]:PORT: REASON"
  if (const auto at = msg.find("certificate verification failed for "); at != std::string_view::npos && at <= 7) {
    std::string_view rest = msg.substr(at + 36);
    const auto colon = rest.find(": ");
    std::string_view host, ip;
    if (colon == std::string_view::npos || !split_host_ip(rest.substr(0, colon), host, ip)) {
      ++stats_.malformed;
      return;
    }
    saw_tls(out);
    Proc& p = proc(pid);
    Conn c;
    c.host = normal_host(host);
    c.ip = std::string(ip);
    c.verify = verification_result(rest.substr(colon + 2));
    c.verify_text = clean_text(rest.substr(colon + 2), tlsrpt::kMaxAdditionalInformation);
    p.conn = std::move(c);
    return;
  }
  // "Verified TLS connection established to HOST[IP]:PORT: ..." (or "reused")
  if (const auto at = msg.find(" TLS connection "); at != std::string_view::npos && at <= 10) {
    const TlsSeen tls = tls_word(msg.substr(0, at));
    std::string_view rest = msg.substr(at + 16);
    bool reused = false;
    if (starts_with(rest, "established to ")) {
      rest.remove_prefix(15);
    } else if (starts_with(rest, "reused to ")) {
      rest.remove_prefix(10);
      reused = true;
    } else {
      return;
    }
    const auto colon = rest.find(": ");
    std::string_view host, ip;
    if (tls == TlsSeen::unknown || colon == std::string_view::npos ||
        !split_host_ip(rest.substr(0, colon), host, ip)) {
      ++stats_.malformed;
      return;
    }
    saw_tls(out);
    Proc& p = proc(pid);
    if (p.conn && !p.conn->bound && p.conn->tls == TlsSeen::none && p.conn->verify && p.conn->ip == ip) {
      p.conn->tls = tls;
      p.conn->reused = reused;
      return;
    }
    Conn c;
    c.host = normal_host(host);
    c.ip = std::string(ip);
    c.tls = tls;
    c.reused = reused;
    p.conn = std::move(c);
    return;
  }
  std::string_view qid, rest;
  if (!split_qid(msg, qid, rest)) return;
  Proc& p = proc(pid);
  if (starts_with(rest, "to=<")) {
    status_line(time, p, qid, rest, out);
  } else if (!starts_with(rest, "from=<") && !starts_with(rest, "enabling ") && !starts_with(rest, "removed")) {
    attempt_line(time, p, qid, rest);
  }
}

std::optional<Outcome> PostfixParser::attempt(std::int64_t time, const Conn* conn, std::string_view host,
                                              std::string_view ip, bool sent, std::string_view reason,
                                              std::string_view dsn) {
  Outcome o;
  o.session.time = time;
  o.session.receiving_mx_hostname = conn ? conn->host : normal_host(host);
  o.session.receiving_ip = conn ? conn->ip : std::string(ip);
  o.session.sending_mta_ip = options_.sending_ip;
  const TlsSeen tls = conn ? conn->tls : TlsSeen::none;
  o.tls = tls;
  const std::optional<Result> failure = tls_failure(reason, conn ? conn->verify : std::nullopt, tls);
  if (failure) {
    o.session.result = *failure;
    o.session.additional_information =
        conn && !conn->verify_text.empty() && *failure != Result::starttls_not_supported
            ? conn->verify_text
            : clean_text(reason, tlsrpt::kMaxAdditionalInformation);
    o.session.failure_reason_code = clean_text(dsn, tlsrpt::kMaxFailureReasonCode);
    return o;
  }
  if (tls != TlsSeen::none) {
    o.session.result = Result::success;  // TLS was negotiated; what SMTP said after is not TLS-RPT's business
    return o;
  }
  // No TLS line for this connection.
  if (!options_.tls_logged) return std::nullopt;
  if (sent || dialog_went_on(reason)) {
    o.session.result = Result::starttls_not_supported;
    o.session.additional_information = std::string(kInClear);
    return o;
  }
  return std::nullopt;  // the connection failed before any TLS could be tried
}

void PostfixParser::attempt_line(std::int64_t time, Proc& p, std::string_view qid, std::string_view reason) {
  const Conn* conn = p.conn && !p.conn->bound ? &*p.conn : nullptr;
  std::string_view host, ip;
  if (!conn && !host_in_reason(reason, host, ip)) {
    p.conn.reset();
    return;
  }
  if (conn && conn->reused) {
    ++stats_.reused;
    p.conn.reset();
    return;
  }
  std::optional<Outcome> o = attempt(time, conn, host, ip, false, reason, "");
  p.conn.reset();
  if (!o) return;
  // Pending attempts of another delivery request never got their status line.
  const auto stale = std::remove_if(p.pending.begin(), p.pending.end(), [&](const Pending& x) { return x.qid != qid; });
  stats_.pending_dropped += static_cast<std::uint64_t>(p.pending.end() - stale);
  p.pending.erase(stale, p.pending.end());
  if (p.pending.size() >= kMaxPendingPerProc) {
    ++stats_.pending_dropped;
    return;
  }
  p.pending.push_back(Pending{std::string(qid), std::move(*o)});
}

void PostfixParser::emit(Outcome o, std::vector<Outcome>& out) {
  // "In clear" is only known from the absence of a TLS line. Until this log has shown one
  // TLS line, that absence may only mean smtp_tls_loglevel = 0 (Debian's default): such
  // sessions wait, and are dropped (with a warning) if a thousand come and no TLS line.
  if (!tls_seen_ && o.tls == TlsSeen::none && o.session.additional_information == kInClear) {
    if (held_.size() < kMaxHeld) {
      held_.push_back(std::move(o));
    } else {
      if (stats_.unconfirmed_clear == 0)
        log::warning("Postfix logs no TLS sessions: set smtp_tls_loglevel = 1; deliveries in clear are not counted");
      ++stats_.unconfirmed_clear;
    }
    return;
  }
  ++stats_.sessions;
  out.push_back(std::move(o));
}

void PostfixParser::saw_tls(std::vector<Outcome>& out) {
  if (tls_seen_) return;
  tls_seen_ = true;
  std::vector<Outcome> held = std::move(held_);
  held_.clear();
  for (auto& o : held) emit(std::move(o), out);
}

void PostfixParser::status_line(std::int64_t time, Proc& p, std::string_view qid, std::string_view rest,
                                std::vector<Outcome>& out) {
  // to=<rcpt>, [orig_to=<..>, ]relay=H[IP]:P, [conn_use=N, ]delay=.., delays=.., dsn=.., status=WORD (TEXT)
  rest.remove_prefix(4);
  const auto addr_end = rest.find(">, ");
  if (addr_end == std::string_view::npos) {
    ++stats_.malformed;
    return;
  }
  const std::string_view rcpt = rest.substr(0, addr_end);
  rest.remove_prefix(addr_end + 3);
  std::string_view relay, delays, dsn, status, text;
  long conn_use = 1;
  while (!rest.empty()) {
    if (starts_with(rest, "status=")) {
      rest.remove_prefix(7);
      const auto sp = rest.find(' ');
      status = rest.substr(0, sp);
      if (sp != std::string_view::npos) {
        text = rest.substr(sp + 1);
        if (starts_with(text, "(") && ends_with(text, ")")) text = text.substr(1, text.size() - 2);
      }
      break;
    }
    const auto comma = rest.find(", ");
    const std::string_view field = rest.substr(0, comma);
    if (starts_with(field, "orig_to=<")) {
      // May contain ", ": skip to its closing ">, ".
      const auto e = rest.find(">, ");
      if (e == std::string_view::npos) break;
      rest.remove_prefix(e + 3);
      continue;
    }
    if (starts_with(field, "relay=")) relay = field.substr(6);
    else if (starts_with(field, "delays=")) delays = field.substr(7);
    else if (starts_with(field, "dsn=")) dsn = field.substr(4);
    else if (starts_with(field, "conn_use=")) {
      conn_use = 0;
      for (char c : field.substr(9)) {
        if (c < '0' || c > '9' || conn_use > 1000000) {
          conn_use = 1;
          break;
        }
        conn_use = conn_use * 10 + (c - '0');
      }
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 2);
  }
  if (status.empty() || relay.empty()) {
    ++stats_.malformed;
    return;
  }
  const std::string* domain = domains_.normalize(address_domain(rcpt));
  if (domain == nullptr) {
    ++stats_.malformed;
    return;
  }
  const bool report = report_.contains(qid);
  // The attempts at earlier MX hosts for this message now have their domain.
  for (auto& pend : p.pending) {
    if (pend.qid != qid) {
      ++stats_.pending_dropped;
      continue;
    }
    if (report) {
      ++stats_.report_mail;
      continue;
    }
    pend.outcome.session.domain = *domain;
    emit(std::move(pend.outcome), out);
  }
  p.pending.clear();

  if (relay == "none") return;  // no connection was made
  std::string_view host, ip;
  if (!split_host_ip(relay, host, ip)) {
    ++stats_.malformed;
    return;
  }
  // MX delivery is on port 25; a content filter (amavis on 10024) or a submission relay is
  // not a TLS-RPT session of the recipient's domain.
  if (const auto rb = relay.rfind("]:"); rb != std::string_view::npos && relay.substr(rb + 2) != "25") {
    ++stats_.not_mx;
    return;
  }
  if (conn_use > 1) {
    ++stats_.reused;
    return;
  }
  Conn* conn = p.conn && p.conn->ip == ip ? &*p.conn : nullptr;
  if (conn && conn->bound) {
    if (conn->qid == qid && conn->delays == delays) {
      // Another recipient over the same connection: the same session unless another domain.
      if (std::find(conn->domains.begin(), conn->domains.end(), *domain) != conn->domains.end()) return;
    } else {
      conn = nullptr;  // a new connection of this process without TLS lines
    }
  }
  if (conn && conn->reused) {
    ++stats_.reused;
    return;
  }
  if (!conn) {
    Conn c;
    c.host = normal_host(host);
    c.ip = std::string(ip);
    p.conn = std::move(c);
    conn = &*p.conn;
  }
  if (!conn->bound) {
    conn->bound = true;
    conn->qid = std::string(qid);
    conn->delays = std::string(delays);
  }
  conn->domains.push_back(*domain);
  if (report) {
    ++stats_.report_mail;
    return;
  }
  std::optional<Outcome> o = attempt(time, conn, host, ip, status == "sent", text, dsn);
  if (!o) return;
  o->session.domain = *domain;
  emit(std::move(*o), out);
}

std::string PostfixParser::save_state() const {
  // The report queue ids, then what each smtp process is in the middle of: a restart between
  // a TLS line and its status line must not turn a verified session into one in clear.
  std::string out = report_.save("postfix-state");
  if (tls_seen_) out += "tls-seen\n";
  for (const auto& o : held_) out += "held\t" + state_outcome(o) + "\n";
  for (const auto& [pid, p] : procs_) {
    if (p.conn) {
      const Conn& c = *p.conn;
      std::string domains;
      for (const auto& d : c.domains) domains += (domains.empty() ? "" : ",") + d;
      out += "conn\t" + std::to_string(pid) + "\t" + state_field(c.host) + "\t" + state_field(c.ip) + "\t" +
             std::to_string(static_cast<int>(c.tls)) + "\t" +
             (c.verify ? std::to_string(static_cast<int>(*c.verify)) : std::string("-")) + "\t" +
             state_field(c.verify_text) + "\t" + (c.reused ? "1" : "0") + "\t" + (c.bound ? "1" : "0") + "\t" +
             state_field(c.qid) + "\t" + state_field(c.delays) + "\t" + state_field(domains) + "\n";
    }
    for (const auto& pend : p.pending) {
      out += "pend\t" + std::to_string(pid) + "\t" + state_field(pend.qid) + "\t" + state_outcome(pend.outcome) + "\n";
    }
  }
  return out;
}

void PostfixParser::restore_state(std::string_view text) {
  // Replaces whatever this parser held (a collector rewinds a source to a saved position).
  procs_.clear();
  held_.clear();
  tls_seen_ = false;
  report_ = ReportMail{};
  report_.restore("postfix-state", text);
  if (!starts_with(text, "postfix-state 1\n")) return;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line == "tls-seen") {
      tls_seen_ = true;
      continue;
    }
    if (starts_with(line, "held\t")) {
      const std::vector<std::string> f = state_fields(line);
      Outcome o;
      if (held_.size() < kMaxHeld && state_outcome_from(f, 1, o)) held_.push_back(std::move(o));
      continue;
    }
    const bool conn = starts_with(line, "conn\t"), pend = starts_with(line, "pend\t");
    if (!conn && !pend) continue;
    const std::vector<std::string> f = state_fields(line);
    long pid = 0, tls = 0, v = 0;
    if (!state_int(f.size() > 1 ? f[1] : "", 0xffffffffL, pid) || procs_.size() >= kMaxProcs) continue;
    if (conn && f.size() == 12 && state_int(f[4], 5, tls)) {
      Conn c;
      c.host = normal_host(f[2]);
      c.ip = clean_text(f[3], 45);
      c.tls = static_cast<TlsSeen>(tls);
      if (f[5] != "-" && state_int(f[5], static_cast<long>(tlsrpt::kResultCount) - 1, v)) c.verify = static_cast<Result>(v);
      c.verify_text = clean_text(f[6], tlsrpt::kMaxAdditionalInformation);
      c.reused = f[7] == "1";
      c.bound = f[8] == "1";
      c.qid = is_queue_id(f[9]) ? f[9] : std::string();
      c.delays = clean_text(f[10], 64);
      std::string_view ds = f[11];
      while (!ds.empty() && c.domains.size() < 16) {
        const auto comma = ds.find(',');
        if (const std::string* d = domains_.normalize(ds.substr(0, comma))) c.domains.push_back(*d);
        ds.remove_prefix(comma == std::string_view::npos ? ds.size() : comma + 1);
      }
      procs_[static_cast<std::uint32_t>(pid)].conn = std::move(c);
    } else if (pend && f.size() == 12 && is_queue_id(f[2])) {
      Proc& p = procs_[static_cast<std::uint32_t>(pid)];
      Outcome o;
      if (p.pending.size() >= kMaxPendingPerProc || !state_outcome_from(f, 3, o)) continue;
      p.pending.push_back(Pending{f[2], std::move(o)});
    }
  }
}

}  // namespace mtasts::reportd
