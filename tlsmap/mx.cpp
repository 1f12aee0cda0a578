// MX sets and DANE coverage for mta-sts-tlsmap; see mx.hpp.
#include "tlsmap/mx.hpp"

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>

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

const char* to_string(HostDane d) noexcept {
  switch (d) {
    case HostDane::none: return "none";
    case HostDane::usable: return "usable";
    case HostDane::failed: return "failed";
  }
  return "none";
}

DaneCoverage dane_coverage(const MxSet& m) noexcept {
  const auto usable = static_cast<std::size_t>(std::count(m.dane.begin(), m.dane.end(), HostDane::usable));
  if (m.hosts.empty() || m.dane.size() != m.hosts.size() || usable == 0) return DaneCoverage::none;
  return usable == m.hosts.size() ? DaneCoverage::all : DaneCoverage::some;
}

bool usable_for_smtp(const dns::TlsaRecord& r) noexcept {
  if (r.usage != 2 && r.usage != 3) return false;  // PKIX-TA/PKIX-EE: not for SMTP (RFC 7672)
  if (r.selector > 1) return false;
  switch (r.mtype) {
    case 0: return r.data_length > 0;
    case 1: return r.data_length == 32;  // SHA2-256
    case 2: return r.data_length == 64;  // SHA2-512
    default: return false;               // 255 (private use) and unassigned types
  }
}

bool addresses_secure(const dns::AddressAnswer& a, const dns::AddressAnswer& aaaa) noexcept {
  bool any = false;
  for (const dns::AddressAnswer* x : {&a, &aaaa}) {
    if (dns::is_failure(x->status)) return false;  // unknown: it may be an insecure address
    if (x->status == dns::Status::ok && !x->addresses.empty()) {
      if (!x->authenticated) return false;
      any = true;
    }
  }
  return any;
}

HostDane host_dane(const dns::AddressAnswer& a, const dns::AddressAnswer& aaaa, const dns::TlsaAnswer* tlsa) noexcept {
  // Postfix looks TLSA up only for a host whose address is validated (tls_dane_resolve()).
  if (tlsa == nullptr || !addresses_secure(a, aaaa)) return HostDane::none;
  if (dns::is_failure(tlsa->status)) return HostDane::failed;
  if (tlsa->status != dns::Status::ok || !tlsa->authenticated) return HostDane::none;
  const bool any = std::any_of(tlsa->records.begin(), tlsa->records.end(), usable_for_smtp);
  return any ? HostDane::usable : HostDane::none;
}

std::string untrusted_resolver(const std::vector<dns::Server>& servers, const std::vector<dns::Server>& trusted) {
  if (servers.empty()) return "no resolver";
  for (const dns::Server& s : servers) {
    const bool listed = std::find(trusted.begin(), trusted.end(), s) != trusted.end();
    if (!dns::is_loopback(s) && !listed)
      return "resolver " + s.address + " is not on loopback and not listed in dane-trusted-resolver: its AD bit "
             "could be forged on the network path";
  }
  return {};
}

DaneResolverCheck dane_resolver_check(const std::vector<dns::Server>& servers, const std::vector<dns::Server>& trusted,
                                      const std::string& probe_name, const dns::MxAnswer& probe) {
  DaneResolverCheck c;
  c.why = untrusted_resolver(servers, trusted);
  if (!c.why.empty()) return c;
  if (dns::is_failure(probe.status)) {
    c.why = "DNSSEC probe for " + probe_name + " failed (" + dns::to_string(probe.status) +
            (probe.error.empty() ? "" : ": " + probe.error) + ")";
    return c;
  }
  if (!probe.authenticated) {
    c.why = "the resolver did not validate the DNSSEC probe for " + probe_name +
            " (no AD bit): it is not a validating resolver, or has no trust anchor for that name";
    return c;
  }
  c.ok = true;
  return c;
}

DaneResolverCheck probe_dane_resolver(dns::Resolver& resolver, const std::vector<dns::Server>& servers,
                                      const std::vector<dns::Server>& trusted, const std::string& probe_name) {
  // Nothing is asked of a resolver whose answers could not be trusted anyway.
  if (std::string why = untrusted_resolver(servers, trusted); !why.empty()) return DaneResolverCheck{false, why};
  return dane_resolver_check(servers, trusted, probe_name, resolver.mx(probe_name));
}

DnsMxSource::DnsMxSource(dns::Resolver& resolver, const Clock& clock, MxOptions opts)
    : resolver_(resolver), clock_(clock), opts_(opts), dane_(opts.dane) {}

void DnsMxSource::set_dane(bool on) { dane_.store(on); }

MxSetPtr DnsMxSource::cached_locked(const std::string& key) {
  auto it = cache_.find(key);
  if (it == cache_.end()) return nullptr;
  if (clock_.now() >= it->second.until) {
    cache_.erase(it);
    return nullptr;
  }
  return it->second.set;
}

MxSetPtr DnsMxSource::cached(const Domain& d) {
  std::lock_guard lk(mu_);
  return cached_locked(d.str());
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
  const std::string key = d.str();
  std::promise<MxSetPtr> mine;
  {
    std::unique_lock lk(mu_);
    if (MxSetPtr hit = cached_locked(key)) return hit;
    if (auto it = flights_.find(key); it != flights_.end()) {
      // Another thread is resolving this domain: share its answer; beyond max_waiting
      // threads, only for join_wait.
      std::shared_future<MxSetPtr> f = it->second.result;
      if (it->second.waiting >= opts_.max_waiting) {
        lk.unlock();
        if (f.wait_for(opts_.join_wait) == std::future_status::ready) return f.get();
        static const MxSetPtr busy = [] {
          auto b = std::make_shared<MxSet>();
          b->busy = true;
          b->error = "MX lookup of this domain already in progress";
          return b;
        }();
        return busy;
      }
      ++it->second.waiting;
      lk.unlock();
      return f.get();
    }
    flights_.emplace(key, Flight{mine.get_future().share(), 0});
  }
  Seconds ttl{0};
  MxSetPtr set;
  try {
    set = resolve(d, &ttl);
  } catch (const std::exception& e) {  // bad_alloc, thread creation: a failure, not a crash
    auto failed = std::make_shared<MxSet>();
    failed->error = std::string("MX lookup: ") + e.what();
    set = std::move(failed);
    ttl = Seconds{0};
  }
  store(key, set, ttl);
  {
    std::lock_guard lk(mu_);
    flights_.erase(key);
  }
  mine.set_value(set);
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

  // Postfix does DANE only under a validated MX RRset (smtp_tls_policy.c, dane_init()).
  if (dane_.load() && set->secure && !set->hosts.empty()) resolve_dane(d, set.get(), &min_ttl);
  *ttl = std::min(Seconds{min_ttl}, opts_.max_ttl);
  if (std::find(set->dane.begin(), set->dane.end(), HostDane::failed) != set->dane.end())
    *ttl = std::min(*ttl, opts_.failure_ttl);  // ask again soon
  return set;
}

void DnsMxSource::resolve_dane(const Domain& d, MxSet* set, std::uint32_t* ttl) {
  struct HostResult {
    HostDane dane = HostDane::none;
    std::uint32_t ttl = 0;
    std::string error;
  };
  std::vector<HostResult> results(set->hosts.size());
  const auto look_one = [&](std::size_t i) {
    const std::string& h = set->hosts[i];
    const dns::AddressAnswer a = resolver_.address(h, dns::AddressFamily::v4);
    const dns::AddressAnswer aaaa = resolver_.address(h, dns::AddressFamily::v6);
    std::optional<dns::TlsaAnswer> t;
    // Like Postfix, no TLSA lookup for a host whose address is not validated (and so no
    // wait on a zone whose servers mishandle TLSA queries).
    if (addresses_secure(a, aaaa)) {
      // A host name that is a CNAME: Postfix (tls_dane_resolve()) asks at the end of the
      // chain first and takes what is there; only when nothing (validated) is there does it
      // ask at the MX host name itself.
      const std::vector<std::string>& chain = a.cname_chain.empty() ? aaaa.cname_chain : a.cname_chain;
      if (!chain.empty() && chain.back() != h) {
        dns::TlsaAnswer at_end = resolver_.tlsa("_25._tcp." + chain.back());
        if (dns::is_failure(at_end.status) || (at_end.status == dns::Status::ok && at_end.authenticated))
          t = std::move(at_end);
      }
      if (!t) t = resolver_.tlsa("_25._tcp." + h);
    }
    HostResult& r = results[i];
    r.dane = host_dane(a, aaaa, t ? &*t : nullptr);
    if (t) {
      r.ttl = t->ttl;
      r.error = t->error;
    }
  };
  const auto look = [&](std::size_t i) noexcept {
    try {
      look_one(i);
    } catch (const std::exception& e) {  // nothing known about this host: a failed check
      results[i].dane = HostDane::failed;
      results[i].error = e.what();
    }
  };
  // The hosts in parallel (bounded): one slow host costs one host's time, not the sum.
  const std::size_t n = set->hosts.size();
  const std::size_t threads = std::min(n, std::max<std::size_t>(opts_.parallel, 1));
  if (threads <= 1) {
    for (std::size_t i = 0; i < n; ++i) look(i);
  } else {
    std::atomic<std::size_t> next{0};
    const auto work = [&] {
      for (std::size_t i; (i = next.fetch_add(1)) < n;) look(i);
    };
    std::vector<std::jthread> pool;
    pool.reserve(threads - 1);
    try {
      for (std::size_t k = 1; k < threads; ++k) pool.emplace_back(work);
    } catch (const std::system_error& e) {  // no more threads now: fewer do the work
      log::warning("cannot start a DNS thread", {{"error", e.what()}});
    }
    work();
  }
  set->dane.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const HostResult& r = results[i];
    set->dane.push_back(r.dane);
    if (r.dane == HostDane::usable) *ttl = std::min(*ttl, r.ttl);
    if (r.dane == HostDane::failed)
      log::warning("TLSA lookup failed under DNSSEC: a failing DANE check, the host must not be used",
                   {{"domain", d.str()}, {"mx", set->hosts[i]}, {"error", r.error}});
  }
}

}  // namespace mtasts::tlsmap
