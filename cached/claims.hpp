// Keeps a fetcher's claims alive while it works on their domains. A claim (lock) lives
// lock-ttl so that a fetcher that dies frees its domains by itself; a discovery may still take
// longer than that (DNS retries, a slow policy host), and without renewal another fetcher would
// take the domain and fetch it a second time while the first is still at it.
//
// Promises:
// - Every held claim is renewed (compare-and-PEXPIRE to lock-ttl) each third of its lock-ttl,
//   all claims of one store in one round trip, on one thread of the keeper's own.
// - A claim that is found not ours any more (it expired during a Redis outage longer than
//   lock-ttl, or was taken over) is marked lost and logged once; it is never taken back. The
//   write that ends the work is fenced by the claim anyway (PolicyStore::put_claimed): a lost
//   claim loses its write cleanly, with nothing written.
// - A renewal that fails for a Redis error is retried with backoff (a tenth of the renewal
//   period at first, doubling, at most the period): never a busy loop against a dead Redis
//   or its sentinels. The claim is only called lost when Redis says so.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/sts/domain.hpp"
#include "common/fleet/store.hpp"

namespace mtasts::worker {

class ClaimKeeper {
 public:
  ClaimKeeper();
  ~ClaimKeeper();  // stops the thread; held claims are left to expire
  ClaimKeeper(const ClaimKeeper&) = delete;
  ClaimKeeper& operator=(const ClaimKeeper&) = delete;

  // Starts renewing a claim just taken. `store` is where it lives (shared: a reload may
  // replace the fetcher's services while the claim is held).
  void hold(const Domain& d, const std::string& token, std::shared_ptr<PolicyStore> store, std::chrono::milliseconds ttl);
  // Stops renewing (the work is done; the caller releases the lock itself).
  void drop(const Domain& d);
  // True when a renewal found the claim taken or gone.
  bool lost(const Domain& d) const;
  std::size_t held() const;
  // Renewals done and claims found lost since start (for the fetcher's counters).
  long long renewals() const;
  long long losses() const;
  // Renewal rounds of one claim that failed for a Redis error (connection, timeout, OOM).
  long long failures() const;

  // One round now for every claim due (what the thread does); for tests.
  void renew_due(std::chrono::steady_clock::time_point now);

 private:
  struct Claim {
    Domain domain;
    std::string token;
    std::shared_ptr<PolicyStore> store;
    std::chrono::milliseconds ttl;
    std::chrono::steady_clock::time_point next;
    bool lost = false;
    std::chrono::milliseconds retry;  // wait before the next try after a failed renewal
  };
  void run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Claim> claims_;  // by domain name
  long long renewals_ = 0;
  long long losses_ = 0;
  long long failures_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mtasts::worker
