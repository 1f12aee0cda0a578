// The fleet's TLS-RPT aggregates in Redis (issue 20): every MTA host's mta-sts-reportd applies
// its batches here, one round trip per flush, exactly once; the sender and `mta-sts-ctl report`
// read one (day, domain) back. Values read back are validated as strictly as input from the
// network. Bounded: days kept, distinct failure details per (day, domain, policy) capped, with
// what was dropped counted.
//
// Keys (under the store prefix; the exact layout is documented in report_store.cpp and in
// mta-sts.conf(5)): all begin with "<prefix>v1:rpt:" so that one ACL pattern covers them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/fleet/redis.hpp"
#include "common/fleet/store.hpp"
#include "common/tlsrpt/batch.hpp"
#include "common/tlsrpt/report.hpp"

namespace mtasts {

struct ReportLimits {
  std::chrono::seconds keep{8 * 86400};  // how long a day's aggregates are kept
  std::size_t max_details = 1000;        // distinct failure details per (day, domain, policy)
  std::size_t max_policies = 16;         // distinct policies per (day, domain)
};

class ReportStore {
 public:
  ReportStore(Pool& pool, std::string prefix, ReportLimits limits);

  enum class Applied { applied, duplicate };
  // Applies `batch` as host `host`'s batch number `seq` (sequence numbers of one host only
  // grow): once, whatever the number of replays. One round trip. Throws RedisError.
  Applied apply(std::string_view host, std::uint64_t seq, const tlsrpt::Batch& batch);

  // The policy domains with sessions on `day` ("YYYY-MM-DD"), sorted.
  std::vector<std::string> domains(std::string_view day);
  // What the fleet counted for (day, domain), one element per applied policy.
  struct DayCounts {
    std::vector<tlsrpt::PolicyCounts> policies;
    std::uint64_t dropped_details = 0;  // failure details not kept (over the cap)
    // Sessions of policies over max_policies: counted, not reported (no policy to put them in).
    std::uint64_t dropped_policy_sessions = 0;
    // Fields read back that were not valid (written by something else): skipped and logged.
    std::uint64_t skipped_fields = 0;
  };
  DayCounts read(std::string_view day, std::string_view domain);

  // `--check-redis`: harmless commands that prove the permissions of a reader (`write` false:
  // mta-sts-ctl report) or of mta-sts-reportd (apply and read), on probe keys no real batch
  // writes, in the form PolicyStore::probes gives (direct ones run, queued ones only queued
  // in a MULTI that is made to abort).
  static std::vector<RedisProbe> probes(const std::string& prefix, bool write);

  // Key names (see report_store.cpp), for tests and for `mta-sts-ctl`.
  std::string key_base() const;  // "<prefix>v1:rpt:"
  std::string seq_key(std::string_view host) const;
  std::string day_key(std::string_view day) const;
  std::string counts_key(std::string_view day, std::string_view domain) const;

 private:
  Pool& pool_;
  std::string prefix_;
  ReportLimits limits_;
};

}  // namespace mtasts
