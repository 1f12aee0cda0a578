// libmilter callbacks for mta-sts-milter; see milter.hpp.
//
// Protocol use: the filter asks only for the actions it uses (add and change header fields,
// and a macro list for the queue id) and switches off every step it does not use (connect,
// HELO, DATA, body, end of header, unknown commands). MAIL and header steps are "no reply"
// steps where the MTA supports them, and so is RCPT when the configuration can never defer a
// recipient, so that they cost no round trip.
#include "milter/milter.hpp"

#include <libmilter/mfapi.h>

#include <mutex>
#include <string>
#include <vector>

#include "common/util/log.hpp"
#include "milter/metrics.hpp"
#include "milter/recipient.hpp"

namespace mtasts::milter {

namespace {

std::mutex g_runtime_mu;
std::shared_ptr<const Runtime> g_runtime;
std::atomic<int> g_sessions{0};

struct Step {
  const char* name;
  unsigned long no_reply_flag;  // SMFIP_NR_* of this step, 0 when it always replies
};
constexpr Step kNegotiate{"negotiate", 0};
constexpr Step kMail{"mail", SMFIP_NR_MAIL};
constexpr Step kRcpt{"rcpt", SMFIP_NR_RCPT};
constexpr Step kHeader{"header", SMFIP_NR_HDR};
constexpr Step kEom{"eom", 0};
constexpr Step kAbort{"abort", 0};

std::string macro(SMFICTX* ctx, const char* name) {
  const char* v = smfi_getsymval(ctx, const_cast<char*>(name));
  return v ? std::string(v) : std::string();
}

// The per-connection context (smfi_setpriv). One libmilter thread uses it at a time.
class Session {
 public:
  explicit Session(std::shared_ptr<const Runtime> rt) : rt_(std::move(rt)) { g_sessions.fetch_add(1); }
  ~Session() { g_sessions.fetch_sub(1); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  sfsistat negotiate(SMFICTX* ctx, unsigned long f0, unsigned long f1, unsigned long* pf0, unsigned long* pf1,
                     unsigned long* pf2, unsigned long* pf3);
  sfsistat mail(SMFICTX* ctx, const char* sender);
  sfsistat rcpt(SMFICTX* ctx, const char* rcpt);
  sfsistat header(SMFICTX* ctx, const char* name, const char* value);
  sfsistat eom(SMFICTX* ctx);
  sfsistat abort(SMFICTX* ctx);

  // The answer for a step whose handler threw.
  sfsistat failed(SMFICTX* ctx, const Step& step, const char* what);

 private:
  Message& message() {
    if (!msg_) msg_ = std::make_unique<Message>(rt_->message);
    return *msg_;
  }
  bool no_reply(const Step& s) const { return s.no_reply_flag != 0 && (steps_ & s.no_reply_flag) != 0; }
  sfsistat ok(const Step& s) const { return no_reply(s) ? SMFIS_NOREPLY : SMFIS_CONTINUE; }
  bool tempfail_on_error() const { return rt_->cfg.on_redis_error == OnFailure::tempfail; }
  void report_lookup(SMFICTX* ctx, const LookupResult& r, std::string_view rcpt, const Domain& d);

  std::shared_ptr<const Runtime> rt_;
  // For log lines written before the MTA has a queue id (Postfix assigns it after the first
  // accepted recipient): they carry the client and the envelope instead. Untrusted text; the
  // logger escapes it.
  std::string client_;
  std::string sender_;
  unsigned long steps_ = 0;  // protocol flags agreed in negotiate
  std::unique_ptr<Message> msg_;
};

Session* session(SMFICTX* ctx) {
  auto* s = static_cast<Session*>(smfi_getpriv(ctx));
  if (!s) {
    auto fresh = std::make_unique<Session>(current_runtime());
    if (smfi_setpriv(ctx, fresh.get()) != MI_SUCCESS) throw std::runtime_error("smfi_setpriv failed");
    s = fresh.release();
  }
  return s;
}

// The one place where exceptions stop: every callback goes through here.
template <class F>
sfsistat dispatch(SMFICTX* ctx, const Step& step, F&& f) noexcept {
  Session* s = nullptr;
  try {
    s = session(ctx);
    return f(*s);
  } catch (const std::exception& e) {
    return s ? s->failed(ctx, step, e.what()) : SMFIS_TEMPFAIL;
  } catch (...) {
    return s ? s->failed(ctx, step, "unknown exception") : SMFIS_TEMPFAIL;
  }
}

sfsistat Session::failed(SMFICTX* ctx, const Step& step, const char* what) {
  try {
    log::error("milter step failed", {{"step", step.name}, {"qid", macro(ctx, "i")}, {"client", client_},
                                      {"from", sender_}, {"error", what}});
    if (no_reply(step)) {
      // The MTA expects no answer here; the end of message applies the failure action.
      message().fail(what);
      return SMFIS_NOREPLY;
    }
    if (tempfail_on_error()) return SMFIS_TEMPFAIL;
    // Before the end of message "accept" means: carry on untagged, so that the end of message
    // still removes forged fields. At the end of message there is nothing left to do.
    return &step == &kEom ? SMFIS_ACCEPT : SMFIS_CONTINUE;
  } catch (...) {
    return SMFIS_TEMPFAIL;
  }
}

sfsistat Session::negotiate(SMFICTX* ctx, unsigned long f0, unsigned long f1, unsigned long* pf0, unsigned long* pf1,
                            unsigned long* pf2, unsigned long* pf3) {
  constexpr unsigned long kActions = SMFIF_ADDHDRS | SMFIF_CHGHDRS;
  if ((f0 & kActions) != kActions) {
    // Without header deletion a forged field would pass as ours: refuse the connection and
    // let the MTA apply its milter default action.
    log::error("MTA does not offer adding and changing header fields; refusing the connection");
    return SMFIS_REJECT;
  }
  *pf0 = kActions | (f0 & SMFIF_SETSYMLIST);
  // MAIL is kept (as a no-reply step): it starts each transaction's context cleanly.
  constexpr unsigned long kSkip =
      SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOBODY | SMFIP_NOEOH | SMFIP_NOUNKNOWN | SMFIP_NODATA;
  unsigned long no_reply = SMFIP_NR_MAIL | SMFIP_NR_HDR;
  // When no outcome can defer a recipient, the MTA need not wait for our answer at RCPT: the
  // lookup still happens there, but off the SMTP session's critical path.
  const bool may_defer = rt_->decision.on_unknown == OnFailure::tempfail ||
                         rt_->decision.on_redis_error == OnFailure::tempfail;
  if (!may_defer) no_reply |= SMFIP_NR_RCPT;
  *pf1 = f1 & (kSkip | no_reply);
  *pf2 = 0;
  *pf3 = 0;
  steps_ = *pf1;
  if (f0 & SMFIF_SETSYMLIST) {
    // The queue id for the log line: Postfix and Sendmail both know `i` by the end of message.
    // Only `i`, and at no other stage, so that the MTA sends no macros we do not read.
    // {client_addr} at MAIL: the connect step is skipped, and a log line written before the
    // queue id exists needs something to match it with the MTA's own log.
    char mail_macros[] = "i {client_addr}";
    char i[] = "i";
    smfi_setsymlist(ctx, SMFIM_ENVFROM, mail_macros);
    smfi_setsymlist(ctx, SMFIM_ENVRCPT, i);
    smfi_setsymlist(ctx, SMFIM_EOM, i);
  }
  return SMFIS_CONTINUE;
}

sfsistat Session::mail(SMFICTX* ctx, const char* sender) {
  msg_ = std::make_unique<Message>(rt_->message);
  sender_ = sender ? sender : "";
  if (std::string addr = macro(ctx, "{client_addr}"); !addr.empty()) client_ = std::move(addr);
  return ok(kMail);
}

// A failed lookup is logged once when failures start, then summed up once a minute, and once
// more when lookups work again (a Redis outage would otherwise log a line per recipient).
// Only an answer from Redis proves it is back: a local-cache hit says nothing about it.
void Session::report_lookup(SMFICTX* ctx, const LookupResult& r, std::string_view rcpt, const Domain& d) {
  const SysTime now = rt_->clock->now();
  if (r.error.empty()) {
    if (r.source != LookupSource::redis) return;
    const FailureLog::Report rep = rt_->redis_health->success(now);
    if (rep.event == FailureLog::Event::up)
      log::notice("policy lookups work again", {{"failures", std::to_string(rep.failures)},
                                                {"since", iso_time(rep.since)},
                                                {"down_for", std::to_string(rep.down_for.count()) + "s"}});
    return;
  }
  const FailureLog::Report rep = rt_->redis_health->failure(now);
  const char* problem = to_string(classify_text(r.error));
  if (rep.event == FailureLog::Event::down) {
    log::warning(r.failed ? "policy lookup failed; more failures are summed up once a minute"
                          : "policy lookup incomplete; more failures are summed up once a minute",
                 {{"qid", macro(ctx, "i")}, {"client", client_}, {"from", sender_}, {"rcpt", rcpt},
                  {"domain", d.str()}, {"problem", problem}, {"error", r.error}});
  } else if (rep.event == FailureLog::Event::still_down) {
    log::warning("policy lookups still failing", {{"failures", std::to_string(rep.failures)},
                                                  {"since", iso_time(rep.since)},
                                                  {"problem", problem},
                                                  {"error", r.error}});
  }
}

sfsistat Session::rcpt(SMFICTX* ctx, const char* rcpt) {
  Message& m = message();
  RecipientDomain rd = recipient_domain(rcpt ? rcpt : "");
  if (!rd.domain) {
    m.skipped(rd.reason);
    return ok(kRcpt);
  }
  if (m.find(*rd.domain)) return ok(kRcpt);
  // One deadline for all of the lookup's Redis work (waiting for a pooled connection,
  // connect and AUTH, the GET, its retry, the miss signal), not one per step: redis-budget,
  // plus miss-wait when a signalled miss may be waited for.
  const LookupResult r = [&] {
    const RedisDeadline budget(rt_->cfg.redis_budget + rt_->cfg.miss_wait);
    return rt_->lookup->lookup(*rd.domain);
  }();
  report_lookup(ctx, r, rcpt ? rcpt : "", *rd.domain);
  Decision d = decide(*rd.domain, r, rt_->clock->now(), rt_->decision);
  milter_metrics().lookup.record(r);
  milter_metrics().decided(d);
  if (d.action == Action::tempfail && !no_reply(kRcpt)) {
    log::notice("recipient deferred", {{"qid", macro(ctx, "i")}, {"client", client_}, {"from", sender_},
                                       {"rcpt", rcpt ? rcpt : ""}, {"domain", d.domain},
                                       {"status", to_string(d.status)}, {"reason", d.reason}});
    std::string text = d.status == Status::error
                           ? "MTA-STS policy cache unavailable, try again later"
                           : "MTA-STS policy of " + d.domain + " not known yet, try again later";
    char code[] = "451";
    char xcode[] = "4.4.3";
    smfi_setreply(ctx, code, xcode, text.data());
    m.deferred(d);
    return SMFIS_TEMPFAIL;
  }
  m.accept(std::move(d));
  return ok(kRcpt);
}

sfsistat Session::header(SMFICTX*, const char* name, const char* value) {
  message().header(name ? name : "", value ? value : "");
  return ok(kHeader);
}

sfsistat Session::eom(SMFICTX* ctx) {
  std::unique_ptr<Message> done = std::move(msg_);
  if (!done) done = std::make_unique<Message>(rt_->message);
  const std::string qid = macro(ctx, "i");
  if (!done->failure().empty() && tempfail_on_error()) {
    log::error("message deferred after an earlier failure",
               {{"qid", qid}, {"client", client_}, {"from", sender_}, {"error", done->failure()}});
    milter_metrics().message(MessageResult::deferred);
    return SMFIS_TEMPFAIL;
  }
  const HeaderPlan plan = done->plan();
  std::string name = rt_->message.header_name;
  for (int index : plan.delete_indices) {
    if (smfi_chgheader(ctx, name.data(), index, nullptr) != MI_SUCCESS)
      throw std::runtime_error("smfi_chgheader failed: cannot remove an incoming " + name + " field");
  }
  for (const HeaderField& f : plan.add) {
    std::string fname = f.name;
    std::string fvalue = f.value;
    if (smfi_addheader(ctx, fname.data(), fvalue.data()) != MI_SUCCESS)
      throw std::runtime_error("smfi_addheader failed");
  }
  milter_metrics().message(!plan.add.empty()                        ? MessageResult::tagged
                           : plan.suppressed == "tls-required-no" ? MessageResult::opted_out
                           : plan.suppressed == "tlsrpt-report"   ? MessageResult::tlsrpt
                                                                  : MessageResult::untagged);
  const Message::LogFields lf = done->log_fields(plan);
  log::info("message", {{"qid", qid},
                        {"tagged", lf.tagged},
                        {"decisions", lf.decisions},
                        {"deferred", lf.deferred},
                        {"skipped", lf.skipped},
                        {"removed", lf.removed},
                        {"suppressed", lf.suppressed}});
  return SMFIS_CONTINUE;
}

sfsistat Session::abort(SMFICTX*) {
  msg_.reset();
  return SMFIS_CONTINUE;
}

// ---- C callbacks: trampolines only ----------------------------------------------------
// noexcept: libmilter's C frames must never be unwound; dispatch() is where exceptions stop.

extern "C" {

sfsistat cb_negotiate(SMFICTX* ctx, unsigned long f0, unsigned long f1, unsigned long, unsigned long,
                      unsigned long* pf0, unsigned long* pf1, unsigned long* pf2, unsigned long* pf3) noexcept {
  return dispatch(ctx, kNegotiate, [&](Session& s) { return s.negotiate(ctx, f0, f1, pf0, pf1, pf2, pf3); });
}

sfsistat cb_envfrom(SMFICTX* ctx, char** argv) noexcept {
  return dispatch(ctx, kMail, [&](Session& s) { return s.mail(ctx, argv ? argv[0] : nullptr); });
}

sfsistat cb_envrcpt(SMFICTX* ctx, char** argv) noexcept {
  return dispatch(ctx, kRcpt, [&](Session& s) { return s.rcpt(ctx, argv ? argv[0] : nullptr); });
}

sfsistat cb_header(SMFICTX* ctx, char* name, char* value) noexcept {
  return dispatch(ctx, kHeader, [&](Session& s) { return s.header(ctx, name, value); });
}

sfsistat cb_eom(SMFICTX* ctx) noexcept {
  return dispatch(ctx, kEom, [&](Session& s) { return s.eom(ctx); });
}

sfsistat cb_abort(SMFICTX* ctx) noexcept {
  return dispatch(ctx, kAbort, [&](Session& s) { return s.abort(ctx); });
}

sfsistat cb_close(SMFICTX* ctx) noexcept {
  // Not through dispatch: it must never create a session, only end one.
  delete static_cast<Session*>(smfi_getpriv(ctx));
  smfi_setpriv(ctx, nullptr);
  return SMFIS_CONTINUE;
}

}  // extern "C"

}  // namespace

void set_runtime(std::shared_ptr<const Runtime> rt) {
  std::lock_guard lk(g_runtime_mu);
  g_runtime = std::move(rt);
}

std::shared_ptr<const Runtime> current_runtime() {
  std::lock_guard lk(g_runtime_mu);
  if (!g_runtime) throw std::logic_error("no runtime published");
  return g_runtime;
}

int open_sessions() noexcept { return g_sessions.load(); }

int register_filter() {
  static char name[] = "mta-sts-milter";
  smfiDesc desc{};
  desc.xxfi_name = name;
  desc.xxfi_version = SMFI_VERSION;
  desc.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_SETSYMLIST;
  desc.xxfi_connect = nullptr;
  desc.xxfi_helo = nullptr;
  desc.xxfi_envfrom = cb_envfrom;
  desc.xxfi_envrcpt = cb_envrcpt;
  desc.xxfi_header = cb_header;
  desc.xxfi_eoh = nullptr;
  desc.xxfi_body = nullptr;
  desc.xxfi_eom = cb_eom;
  desc.xxfi_abort = cb_abort;
  desc.xxfi_close = cb_close;
  desc.xxfi_unknown = nullptr;
  desc.xxfi_data = nullptr;
  desc.xxfi_negotiate = cb_negotiate;
  return smfi_register(desc);
}

}  // namespace mtasts::milter
