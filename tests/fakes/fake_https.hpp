// An HttpsClient for unit tests: results come from a table the test fills (by host);
// unknown hosts fail to connect. Counts fetches and remembers the addresses it was given.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cached/https.hpp"

namespace mtasts::test {

class FakeHttps final : public https::HttpsClient {
 public:
  // 200 text/plain with `body`.
  void serve(const std::string& host, const std::string& body) {
    https::FetchResult r;
    r.kind = https::ErrorKind::none;
    r.status = 200;
    r.content_type = "text/plain";
    r.body = body;
    set(host, std::move(r));
  }
  void fail(const std::string& host, https::ErrorKind kind, long status = 0) {
    https::FetchResult r;
    r.kind = kind;
    r.status = status;
    r.error = std::string("fake ") + https::to_string(kind);
    set(host, std::move(r));
  }
  void set(const std::string& host, https::FetchResult r) {
    std::lock_guard lock(mu_);
    results_[host] = std::move(r);
  }

  // A held host's fetch blocks until release(): a slow or hostile server, without time.
  void hold(const std::string& host) {
    std::lock_guard lock(mu_);
    held_.insert(host);
  }
  void release(const std::string& host) {
    {
      std::lock_guard lock(mu_);
      held_.erase(host);
    }
    cv_.notify_all();
  }
  // How many fetches are blocked in hold() right now.
  int waiting() const {
    std::lock_guard lock(mu_);
    return waiting_;
  }

  https::FetchResult fetch(const std::string& host, const std::vector<std::string>& addresses) override {
    std::unique_lock lock(mu_);
    ++fetches_[host];
    ++waiting_;
    cv_.wait(lock, [&] { return held_.count(host) == 0; });
    --waiting_;
    last_addresses_[host] = addresses;
    auto it = results_.find(host);
    if (it == results_.end()) {
      https::FetchResult r;
      r.kind = https::ErrorKind::connect;
      r.error = "fake: connection refused";
      return r;
    }
    return it->second;
  }

  int fetches(const std::string& host) const {
    std::lock_guard lock(mu_);
    auto it = fetches_.find(host);
    return it == fetches_.end() ? 0 : it->second;
  }
  std::vector<std::string> last_addresses(const std::string& host) const {
    std::lock_guard lock(mu_);
    auto it = last_addresses_.find(host);
    return it == last_addresses_.end() ? std::vector<std::string>{} : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> held_;
  int waiting_ = 0;
  std::map<std::string, https::FetchResult> results_;
  std::map<std::string, int> fetches_;
  std::map<std::string, std::vector<std::string>> last_addresses_;
};

}  // namespace mtasts::test
