// The request-to-reply path; see responder.hpp.
#include "tlsmap/responder.hpp"

#include "common/util/log.hpp"
#include "common/fleet/redis.hpp"
#include "tlsmap/metrics.hpp"

namespace mtasts::tlsmap {

Responder::Responder(PolicyLookup& lookup, MxSource* mx, const Clock& clock, ReplyOptions opts,
                     std::chrono::milliseconds redis_budget)
    : lookup_(lookup), mx_(mx), clock_(clock), opts_(opts), redis_budget_(redis_budget) {}

std::optional<Reply> Responder::without_lookup(const Request& req) {
  std::optional<Reply> r = answer_without_lookup(req);
  if (r) tlsmap_metrics().reply(r->outcome, req.dialect);
  return r;
}

std::optional<Reply> Responder::answer_without_lookup(const Request& req) {
  if (req.malformed) {
    log::notice("malformed socketmap request", {{"name", req.name}});
    return perm("bad request: expected NAME KEY");
  }
  if (!req.dialect) {
    log::notice("unknown socketmap name", {{"name", req.name}});
    return perm("unknown map name (expected postfix, postfix-tlsrpt or sts)");
  }
  if (req.kind == KeyKind::not_domain) return notfound();
  return std::nullopt;
}

bool Responder::needs_mx(const StoredPolicy& p) const {
  if (mx_ == nullptr) return false;
  // DANE may apply to any enforce domain; otherwise only `*.` patterns need the MX set.
  if (opts_.dane) return true;
  for (const MxPattern& m : p.policy.mx)
    if (m.wildcard()) return true;
  return false;
}

void Responder::log_reply(const Request& req, const Reply& reply, const std::string& reason, const LookupResult* r) {
  const std::string& domain = req.domain ? req.domain->str() : std::string();
  const char* source = r ? to_string(r->source) : "none";
  if (reply.suffix_fallback)
    log::warning("MX set unavailable; `*.` patterns sent as `.suffix` (any depth in Postfix)",
                 {{"domain", domain}});
  // One line per lookup would be one per delivery attempt: routine answers at debug; the
  // ones that hold mail back (TEMP) at info, so that a deferral can be explained.
  const log::Level level = reply.outcome == "temp" ? log::Level::info : log::Level::debug;
  const std::string_view map = req.dialect ? to_string(*req.dialect) : "?";
  if (r && !r->error.empty())
    log::write(level, "reply", {{"domain", domain}, {"map", map}, {"reply", reply.outcome}, {"reason", reason},
                                {"source", source}, {"error", r->error}});
  else
    log::write(level, "reply", {{"domain", domain}, {"map", map}, {"reply", reply.outcome}, {"reason", reason},
                                {"source", source}, {"miss_signalled", r && r->miss_signalled ? "yes" : "no"}});
}

Reply Responder::finish(const Request& req, const LookupResult& r, const MxSet* mx) {
  const PolicyDecision pd = decide(r, clock_.now(), opts_);
  Reply reply;
  switch (pd.outcome) {
    case PolicyOutcome::notfound: reply = notfound(); break;
    case PolicyOutcome::defer: reply = temp(pd.temp); break;
    case PolicyOutcome::enforce: reply = enforce_reply(*req.dialect, *req.domain, *pd.policy, mx); break;
  }
  log_reply(req, reply, pd.reason, &r);
  tlsmap_metrics().lookup.record(r);
  tlsmap_metrics().reply(reply.outcome, req.dialect);
  return reply;
}

std::optional<std::string> Responder::answer_fast(std::string_view payload) {
  const Request req = parse_request(payload);
  if (auto r = without_lookup(req)) return std::move(r->text);
  std::optional<LookupResult> r = lookup_.lookup_local(*req.domain);
  if (!r) return std::nullopt;
  const PolicyDecision pd = decide(*r, clock_.now(), opts_);
  MxSetPtr mx;
  if (pd.outcome == PolicyOutcome::enforce && needs_mx(*pd.policy)) {
    mx = mx_->cached(*req.domain);
    if (!mx) return std::nullopt;  // a worker looks it up
  }
  return finish(req, *r, mx.get()).text;
}

StagedAnswer Responder::answer_staged(std::string_view payload) {
  Request req = parse_request(payload);
  if (auto r = without_lookup(req)) return {std::move(r->text), {}};
  // One deadline for all of the lookup's Redis steps (pool wait, connect, GET, retry, miss
  // signal), so that redis-budget bounds the lookup and not each step.
  LookupResult r = [&] {
    const RedisDeadline deadline(redis_budget_ + lookup_.options().miss_wait);
    return lookup_.lookup(*req.domain);
  }();
  const PolicyDecision pd = decide(r, clock_.now(), opts_);
  if (pd.outcome == PolicyOutcome::enforce && needs_mx(*pd.policy)) {
    if (const MxSetPtr mx = mx_->cached(*req.domain)) return {finish(req, r, mx.get()).text, {}};
    // The MX set is DNS, bounded by dns-timeout: on a DNS worker, not this one.
    return {{}, [this, req = std::move(req), r = std::move(r)] {
              const MxSetPtr mx = mx_->get(*req.domain);
              return finish(req, r, mx.get()).text;
            }};
  }
  return {finish(req, r, nullptr).text, {}};
}

std::string Responder::answer(std::string_view payload) {
  StagedAnswer a = answer_staged(payload);
  return a.dns ? a.dns() : std::move(a.reply);
}

}  // namespace mtasts::tlsmap
