// What the fleet's senders share in Redis so that each report goes out once (issue 20):
//
//   <prefix>v1:rpt:sending:<day>:<domain>  string  a sender's token; SET NX PX (the claim),
//                                          renewed (compare-and-PEXPIRE) before each
//                                          delivery, released by compare-and-delete
//   <prefix>v1:rpt:sent:<day>:<domain>     hash    what was done for (day, domain), kept
//                                          `keep` (8 days) from the last write:
//       status    "done" (every rua sent or given up), "nowhere" (no usable TLSRPT record),
//                 "skipped" (only-failures and none), "gave-up" (DNS failed for 24 hours);
//                 absent while work remains
//       first     unix time of the first attempt (the 24-hour retry window starts here)
//       next      unix time before which no sender tries again (after a DNS failure)
//       attempts  DNS failures so far
//       error     the last error (bounded)
//       rua:<uri> one per rua: "sent <unix>", "failed <attempts> <next unix> <error>",
//                 "gave-up <unix> <error>"
//
// Every write is fenced by the claim (a script checks the token first, as the fetcher's
// put_claimed does): a sender whose claim was lost or taken over writes nothing. Values read
// back are untrusted: a field that does not parse is treated as absent (the rua is tried).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/fleet/redis.hpp"
#include "common/fleet/store.hpp"

namespace mtasts::reportd {

struct RuaState {
  enum class Kind { pending, sent, failed, gave_up };
  Kind kind = Kind::pending;
  std::int64_t at = 0;         // sent / gave-up: when
  unsigned attempts = 0;       // failed: attempts so far
  std::int64_t next = 0;       // failed: not before
  std::string error;
  std::string encode() const;
  static RuaState decode(std::string_view text);  // pending when unreadable
};

struct SendState {
  std::string status;          // "" while work remains
  std::int64_t first = 0;
  std::int64_t next = 0;
  unsigned attempts = 0;
  std::string error;
  std::map<std::string, RuaState> rua;  // by URI as published
};

class SendStore {
 public:
  SendStore(Pool& pool, std::string prefix, std::chrono::seconds keep = std::chrono::seconds(8 * 86400));

  bool claim(std::string_view day, std::string_view domain, const std::string& token, std::chrono::milliseconds ttl);
  // False when the claim is not ours any more.
  bool renew(std::string_view day, std::string_view domain, const std::string& token, std::chrono::milliseconds ttl);
  void release(std::string_view day, std::string_view domain, const std::string& token);

  SendState read(std::string_view day, std::string_view domain);
  // Fenced HSET of `fields` (name, value) and EXPIRE keep; false (nothing written) when the
  // claim does not hold `token`.
  bool write(std::string_view day, std::string_view domain, const std::string& token,
             const std::vector<std::pair<std::string, std::string>>& fields);

  std::string state_key(std::string_view day, std::string_view domain) const;
  std::string claim_key(std::string_view day, std::string_view domain) const;

 private:
  Pool& pool_;
  std::string prefix_;
  std::chrono::seconds keep_;
};

// `--check-redis` of a sending host: every command the sender runs, on a probe (day, domain)
// no real report has ("0000-00-00", "check-redis.invalid"): a claim of one second, its
// renewal, a fenced write whose state key lives one second, the read, the release.
std::vector<RedisProbe> send_store_probes(std::string_view prefix);
// The commands those are (for the ACL's list): SET, EVAL, HGETALL; inside the scripts GET,
// PEXPIRE, DEL, HSET, EXPIRE.
std::vector<std::string> send_store_commands();

}  // namespace mtasts::reportd
