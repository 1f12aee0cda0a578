// One socketmap request in, one reply out: request parsing, the policy lookup (local cache,
// Redis within the budget, miss signal, miss-wait), the MX set and DANE coverage, and the
// reply. The server calls answer_fast() on its event-loop thread (never blocks: answers
// protocol errors, keys that are not policy domains and local-cache hits whose MX set is
// cached) and answer() on a worker thread for the rest.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/util/clock.hpp"
#include "common/fleet/lookup.hpp"
#include "tlsmap/mx.hpp"
#include "tlsmap/reply.hpp"
#include "tlsmap/request.hpp"

namespace mtasts::tlsmap {

// A lookup worker's result: the reply, or (`dns` set) the rest of the work, which waits on
// DNS and runs on a DNS worker; its result is the reply.
struct StagedAnswer {
  std::string reply;
  std::function<std::string()> dns;
};

// What the server needs from whoever answers (fakes in the server's tests).
class Handler {
 public:
  virtual ~Handler() = default;
  // On the event-loop thread: never blocks.
  virtual std::optional<std::string> answer_fast(std::string_view request) = 0;
  // The whole answer, waiting on whatever it needs.
  virtual std::string answer(std::string_view request) = 0;
  // On a lookup worker: may wait on Redis, never on DNS (that part is returned as `dns`).
  virtual StagedAnswer answer_staged(std::string_view request) { return {answer(request), {}}; }
};

class Responder final : public Handler {
 public:
  // `lookup`, `clock` and `mx` (may be null: MX sets are then never known and `*.` patterns
  // fall back to `.suffix`) must outlive this object.
  // `redis_budget`: the longest the Redis part of one lookup may take, all steps together
  // (pool wait, connect, commands, retry, miss signal; plus the lookup's miss-wait).
  Responder(PolicyLookup& lookup, MxSource* mx, const Clock& clock, ReplyOptions opts,
            std::chrono::milliseconds redis_budget = std::chrono::milliseconds{100});
  std::optional<std::string> answer_fast(std::string_view request) override;
  std::string answer(std::string_view request) override;
  StagedAnswer answer_staged(std::string_view request) override;

 private:
  // Replies that need no lookup (bad request, unknown NAME, not a policy domain).
  std::optional<Reply> without_lookup(const Request& req);  // counts the reply (metrics)
  std::optional<Reply> answer_without_lookup(const Request& req);
  Reply finish(const Request& req, const LookupResult& r, const MxSet* mx);
  bool needs_mx(const StoredPolicy& p) const;
  void log_reply(const Request& req, const Reply& reply, const std::string& reason, const LookupResult* r);

  PolicyLookup& lookup_;
  MxSource* mx_;
  const Clock& clock_;
  ReplyOptions opts_;
  std::chrono::milliseconds redis_budget_;
};

}  // namespace mtasts::tlsmap
