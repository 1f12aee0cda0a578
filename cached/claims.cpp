// The claim keeper's thread and renewal rounds; see claims.hpp for what it promises.
#include "cached/claims.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "common/util/log.hpp"

namespace mtasts::worker {

namespace {
using Steady = std::chrono::steady_clock;

// A third of the lock's life: two renewals may fail (a Redis hiccup) before it runs out.
std::chrono::milliseconds period(std::chrono::milliseconds ttl) {
  return std::max(ttl / 3, std::chrono::milliseconds(1));
}

// After a failed renewal: the first retry soon (a tenth of the period, 10 ms to 1 s), each
// next one twice as late, never later than the period itself, so that the lock still gets
// its renewal in time when Redis comes back, and a dead Redis (or the sentinels that fail it
// over) is not flooded with connection attempts.
std::chrono::milliseconds first_retry(std::chrono::milliseconds ttl) {
  return std::clamp(period(ttl) / 10, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
}
}  // namespace

ClaimKeeper::ClaimKeeper() : thread_([this] { run(); }) {}

ClaimKeeper::~ClaimKeeper() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ClaimKeeper::hold(const Domain& d, const std::string& token, std::shared_ptr<PolicyStore> store,
                       std::chrono::milliseconds ttl) {
  {
    std::lock_guard lock(mu_);
    claims_.insert_or_assign(d.str(),
                             Claim{d, token, std::move(store), ttl, Steady::now() + period(ttl), false, first_retry(ttl)});
  }
  cv_.notify_all();
}

void ClaimKeeper::drop(const Domain& d) {
  std::lock_guard lock(mu_);
  claims_.erase(d.str());
}

bool ClaimKeeper::lost(const Domain& d) const {
  std::lock_guard lock(mu_);
  const auto it = claims_.find(d.str());
  return it != claims_.end() && it->second.lost;
}

std::size_t ClaimKeeper::held() const {
  std::lock_guard lock(mu_);
  return claims_.size();
}

long long ClaimKeeper::renewals() const {
  std::lock_guard lock(mu_);
  return renewals_;
}

long long ClaimKeeper::losses() const {
  std::lock_guard lock(mu_);
  return losses_;
}

long long ClaimKeeper::failures() const {
  std::lock_guard lock(mu_);
  return failures_;
}

void ClaimKeeper::renew_due(Steady::time_point now) {
  // One batch per store (a reload may leave claims in two), taken out of the lock: the round
  // trips happen without holding it, so hold() and drop() never wait on Redis.
  struct Batch {
    std::shared_ptr<PolicyStore> store;
    std::chrono::milliseconds ttl;
    std::vector<std::pair<Domain, std::string>> claims;
  };
  std::map<std::pair<PolicyStore*, long long>, Batch> batches;
  {
    std::lock_guard lock(mu_);
    for (auto& [name, c] : claims_) {
      if (c.lost || c.next > now) continue;
      auto& b = batches[{c.store.get(), static_cast<long long>(c.ttl.count())}];
      if (!b.store) {
        b.store = c.store;
        b.ttl = c.ttl;
      }
      b.claims.emplace_back(c.domain, c.token);
    }
  }
  for (auto& [key, b] : batches) {
    std::vector<bool> held;
    try {
      held = b.store->renew(b.claims, b.ttl);
    } catch (const std::exception& e) {
      // Retried at the next round; the fence catches a claim that ran out meanwhile.
      log::debug("claims not renewed", {{"claims", std::to_string(b.claims.size())}, {"error", e.what()}});
      std::lock_guard lock(mu_);
      for (const auto& [d, token] : b.claims) {
        const auto it = claims_.find(d.str());
        if (it == claims_.end() || it->second.token != token) continue;
        ++failures_;
        it->second.next = now + it->second.retry;
        it->second.retry = std::min(it->second.retry * 2, period(it->second.ttl));
      }
      continue;
    }
    std::vector<std::string> newly_lost;
    {
      std::lock_guard lock(mu_);
      for (std::size_t i = 0; i < b.claims.size() && i < held.size(); ++i) {
        const auto it = claims_.find(b.claims[i].first.str());
        // Dropped meanwhile, or held again under a new token: not this round's business.
        if (it == claims_.end() || it->second.token != b.claims[i].second) continue;
        if (held[i]) {
          ++renewals_;
          it->second.next = now + period(it->second.ttl);
          it->second.retry = first_retry(it->second.ttl);
        } else if (!it->second.lost) {
          it->second.lost = true;
          ++losses_;
          newly_lost.push_back(it->first);
        }
      }
    }
    for (const auto& d : newly_lost)
      log::notice("claim lost while working on the domain; its result will not be written", {{"domain", d}});
  }
}

void ClaimKeeper::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    Steady::time_point wake = Steady::time_point::max();
    for (const auto& [name, c] : claims_)
      if (!c.lost && c.next < wake) wake = c.next;
    if (wake == Steady::time_point::max()) {
      cv_.wait(lock);  // until a claim is held, or stop
      continue;
    }
    if (Steady::now() < wake) {
      cv_.wait_until(lock, wake);  // a hold() or stop wakes it early: recompute
      continue;
    }
    lock.unlock();
    renew_due(Steady::now());
    lock.lock();
  }
}

}  // namespace mtasts::worker
