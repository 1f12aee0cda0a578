// A Resolver for unit tests: answers come from a table the test fills; unknown names are
// NXDOMAIN. Counts queries so that tests can assert what discovery did (and did not) ask.
// A hook, called before each answer outside the lock, lets a test hold a query (a hanging
// server) or count queries in flight.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/dns/dns.hpp"

namespace mtasts::test {

class FakeResolver final : public dns::Resolver {
 public:
  // One TXT RRset for `name`; each record given as one string.
  void set_txt(const std::string& name, std::vector<std::string> records) {
    dns::TxtAnswer a;
    a.status = records.empty() ? dns::Status::nodata : dns::Status::ok;
    for (auto& r : records) a.records.push_back({std::move(r)});
    set_txt_answer(name, std::move(a));
  }
  void set_txt_answer(const std::string& name, dns::TxtAnswer a) {
    std::lock_guard lock(mu_);
    txt_[name] = std::move(a);
  }
  void set_txt_failure(const std::string& name, dns::Status s) {
    dns::TxtAnswer a;
    a.status = s;
    a.error = std::string("fake ") + dns::to_string(s);
    set_txt_answer(name, std::move(a));
  }
  void set_address(const std::string& name, dns::AddressFamily f, dns::AddressAnswer a) {
    std::lock_guard lock(mu_);
    addr_[{name, f}] = std::move(a);
  }
  // Convenience: an A record (and NODATA for AAAA); `ad`: both answers DNSSEC-validated.
  void set_a(const std::string& name, const std::string& ip, bool ad = false) {
    set_address(name, dns::AddressFamily::v4, {dns::Status::ok, {ip}, {}, {}, ad});
    set_address(name, dns::AddressFamily::v6, {dns::Status::nodata, {}, {}, {}, ad});
  }
  // Called with (type, name) before every query is answered, outside the lock.
  void set_hook(std::function<void(const std::string& type, const std::string& name)> hook) {
    std::lock_guard lock(mu_);
    hook_ = std::move(hook);
  }
  void erase(const std::string& name) {
    std::lock_guard lock(mu_);
    txt_.erase(name);
    addr_.erase({name, dns::AddressFamily::v4});
    addr_.erase({name, dns::AddressFamily::v6});
  }

  dns::TxtAnswer txt(const std::string& name) override {
    call_hook("TXT", name);
    std::lock_guard lock(mu_);
    ++txt_queries_[name];
    auto it = txt_.find(name);
    if (it == txt_.end()) return {dns::Status::nxdomain, {}, {}, {}};
    return it->second;
  }
  dns::AddressAnswer address(const std::string& name, dns::AddressFamily f) override {
    call_hook(f == dns::AddressFamily::v4 ? "A" : "AAAA", name);
    std::lock_guard lock(mu_);
    ++addr_queries_[name];
    auto it = addr_.find({name, f});
    if (it == addr_.end()) return {dns::Status::nxdomain, {}, {}, {}};
    return it->second;
  }

  void set_mx(const std::string& name, dns::MxAnswer a) {
    std::lock_guard lock(mu_);
    mx_[name] = std::move(a);
  }
  void set_tlsa(const std::string& name, dns::TlsaAnswer a) {
    std::lock_guard lock(mu_);
    tlsa_[name] = std::move(a);
  }
  dns::MxAnswer mx(const std::string& name) override {
    call_hook("MX", name);
    std::lock_guard lock(mu_);
    ++mx_queries_[name];
    auto it = mx_.find(name);
    if (it == mx_.end()) return {dns::Status::nxdomain, {}, false, 0, {}};
    return it->second;
  }
  dns::TlsaAnswer tlsa(const std::string& name) override {
    call_hook("TLSA", name);
    std::lock_guard lock(mu_);
    ++tlsa_queries_[name];
    auto it = tlsa_.find(name);
    if (it == tlsa_.end()) return {dns::Status::nxdomain, {}, false, 0, {}};
    return it->second;
  }
  int mx_queries(const std::string& name) const {
    std::lock_guard lock(mu_);
    auto it = mx_queries_.find(name);
    return it == mx_queries_.end() ? 0 : it->second;
  }
  int tlsa_queries(const std::string& name) const {
    std::lock_guard lock(mu_);
    auto it = tlsa_queries_.find(name);
    return it == tlsa_queries_.end() ? 0 : it->second;
  }

  int txt_queries(const std::string& name) const {
    std::lock_guard lock(mu_);
    auto it = txt_queries_.find(name);
    return it == txt_queries_.end() ? 0 : it->second;
  }
  int address_queries(const std::string& name) const {
    std::lock_guard lock(mu_);
    auto it = addr_queries_.find(name);
    return it == addr_queries_.end() ? 0 : it->second;
  }

 private:
  void call_hook(const char* type, const std::string& name) {
    std::function<void(const std::string&, const std::string&)> h;
    {
      std::lock_guard lock(mu_);
      h = hook_;
    }
    if (h) h(type, name);
  }

  mutable std::mutex mu_;
  std::function<void(const std::string&, const std::string&)> hook_;
  std::map<std::string, dns::TxtAnswer> txt_;
  std::map<std::pair<std::string, dns::AddressFamily>, dns::AddressAnswer> addr_;
  std::map<std::string, int> txt_queries_;
  std::map<std::string, int> addr_queries_;
  std::map<std::string, dns::MxAnswer> mx_;
  std::map<std::string, dns::TlsaAnswer> tlsa_;
  std::map<std::string, int> mx_queries_;
  std::map<std::string, int> tlsa_queries_;
};

}  // namespace mtasts::test
