// MX sets and DANE coverage for mta-sts-tlsmap; see mx.hpp.
#include "tlsmap/mx.hpp"

#include <algorithm>

#include "common/util/log.hpp"

namespace mtasts::tlsmap {

const char* to_string(DaneCoverage d) noexcept {
  switch (d) {
    case DaneCoverage::none: return "none";
    case DaneCoverage::some: return "some";
    case DaneCoverage::all: return "all";
  }
  return "none";
}

DaneCoverage dane_coverage(std::size_t hosts, std::size_t with_tlsa) noexcept {
  if (hosts == 0 || with_tlsa == 0) return DaneCoverage::none;
  return with_tlsa >= hosts ? DaneCoverage::all : DaneCoverage::some;
}

DnsMxSource::DnsMxSource(dns::Resolver& resolver, const Clock& clock, MxOptions opts)
    : resolver_(resolver), clock_(clock), opts_(opts) {}

MxSetPtr DnsMxSource::cached(const Domain& d) {
  std::lock_guard lk(mu_);
  auto it = cache_.find(d.str());
  if (it == cache_.end()) return nullptr;
  if (clock_.now() >= it->second.until) {
    cache_.erase(it);
    return nullptr;
  }
  return it->second.set;
}

std::size_t DnsMxSource::size() const {
  std::lock_guard lk(mu_);
  return cache_.size();
}

void DnsMxSource::store(const std::string& key, MxSetPtr set, Seconds ttl) {
  if (opts_.max_entries == 0 || ttl.count() <= 0) return;
  const SysTime now = clock_.now();
  std::lock_guard lk(mu_);
  if (cache_.size() >= opts_.max_entries && !cache_.count(key)) {
    std::erase_if(cache_, [&](const auto& kv) { return now >= kv.second.until; });
    // Still full: drop an arbitrary entry; the map stays bounded and a dropped set is only
    // looked up again.
    if (cache_.size() >= opts_.max_entries) cache_.erase(cache_.begin());
  }
  cache_[key] = Slot{std::move(set), now + ttl};
}

MxSetPtr DnsMxSource::get(const Domain& d) {
  if (MxSetPtr hit = cached(d)) return hit;
  Seconds ttl{0};
  MxSetPtr set = resolve(d, &ttl);
  store(d.str(), set, ttl);
  return set;
}

MxSetPtr DnsMxSource::resolve(const Domain& d, Seconds* ttl) {
  auto set = std::make_shared<MxSet>();
  const dns::MxAnswer a = resolver_.mx(d.str());
  if (dns::is_failure(a.status)) {
    set->error = std::string("MX lookup: ") + dns::to_string(a.status) + (a.error.empty() ? "" : ": " + a.error);
    *ttl = std::min(opts_.failure_ttl, opts_.max_ttl);
    return set;
  }
  set->available = true;
  set->secure = a.authenticated;
  std::uint32_t min_ttl = a.status == dns::Status::ok ? a.ttl : static_cast<std::uint32_t>(opts_.max_ttl.count());
  if (a.status == dns::Status::ok) {
    std::vector<dns::MxRecord> recs = a.records;
    std::stable_sort(recs.begin(), recs.end(),
                     [](const dns::MxRecord& x, const dns::MxRecord& y) { return x.preference < y.preference; });
    for (const auto& r : recs) {
      if (r.exchange.empty()) continue;  // null MX: the domain takes no mail
      DomainParse p = Domain::parse(r.exchange);
      if (!p.domain) {
        log::warning("MX host is not a valid host name, ignored", {{"domain", d.str()}, {"mx", r.exchange}});
        continue;
      }
      if (std::find(set->hosts.begin(), set->hosts.end(), p.domain->str()) == set->hosts.end())
        set->hosts.push_back(p.domain->str());
    }
  } else {
    // NODATA or NXDOMAIN: RFC 5321 section 5.1, the domain itself is the implicit MX.
    set->hosts.push_back(d.str());
  }

  if (opts_.dane && set->secure && !set->hosts.empty()) {
    std::size_t with_tlsa = 0;
    for (const std::string& h : set->hosts) {
      const dns::TlsaAnswer t = resolver_.tlsa("_25._tcp." + h);
      if (t.status == dns::Status::ok && t.records > 0 && t.authenticated) {
        ++with_tlsa;
        min_ttl = std::min(min_ttl, t.ttl);
      } else if (dns::is_failure(t.status)) {
        log::notice("TLSA lookup failed; host counted as without DANE",
                    {{"domain", d.str()}, {"mx", h}, {"error", t.error}});
      }
    }
    set->dane = dane_coverage(set->hosts.size(), with_tlsa);
  }
  *ttl = std::min(Seconds{min_ttl}, opts_.max_ttl);
  return set;
}

}  // namespace mtasts::tlsmap
