// One discovery of one domain over the Resolver and HttpsClient interfaces. The order of the
// steps and what each outcome means follows RFC 8461 section 3 and RFC-NOTES.md.
#include "cached/discovery.hpp"

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>

namespace mtasts::discovery {

const char* to_string(Status s) noexcept {
  switch (s) {
    case Status::valid: return "valid";
    case Status::no_policy: return "no-policy";
    case Status::dns_error: return "dns-error";
    case Status::fetch_error: return "fetch-error";
    case Status::policy_invalid: return "policy-invalid";
    case Status::unchanged: return "unchanged";
  }
  return "dns-error";
}

std::optional<FailureKind> Report::failure() const {
  switch (status) {
    case Status::dns_error: return FailureKind::dns;
    case Status::fetch_error: return FailureKind::fetch;
    case Status::policy_invalid: return FailureKind::policy_invalid;
    case Status::no_policy:
      if (txt.status == TxtStatus::invalid) return FailureKind::txt_invalid;
      return std::nullopt;
    case Status::valid:
    case Status::unchanged:
      return std::nullopt;
  }
  return std::nullopt;
}

std::string Report::reason() const {
  if (status == Status::valid || status == Status::unchanged) return {};
  if (!errors.empty()) {
    std::string out = errors.front();
    for (std::size_t i = 1; i < errors.size() && i < 4; ++i) out += "; " + errors[i];
    return out;
  }
  return to_string(status);
}

namespace {

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

std::string where(const Diagnostic& d) {
  return d.line == 0 ? std::string("policy: ") : "policy line " + std::to_string(d.line) + ": ";
}

// Step 1. Returns false when discovery ends here (status set).
bool lookup_txt(const Domain& domain, dns::Resolver& resolver, Report& r) {
  r.txt_name = "_mta-sts." + domain.str();
  const dns::TxtAnswer ans = resolver.txt(r.txt_name);
  r.txt_dns = ans.status;
  r.txt_cnames = ans.cname_chain;
  if (dns::is_failure(ans.status)) {
    r.status = Status::dns_error;
    r.errors.push_back("TXT lookup of " + r.txt_name + " failed (" + dns::to_string(ans.status) +
                       (ans.error.empty() ? "" : ": " + ans.error) + ")");
    return false;
  }
  for (const auto& rec : ans.records) {
    std::string joined;
    for (const auto& s : rec) joined += s;
    r.txt_records.push_back(std::move(joined));
  }
  r.txt = parse_sts_txt(ans.records);
  for (const auto& w : r.txt.warnings) r.warnings.push_back("TXT: " + w);
  switch (r.txt.status) {
    case TxtStatus::policy:
      r.id = r.txt.id;
      return true;
    case TxtStatus::no_policy:
      r.status = Status::no_policy;
      if (ans.status == dns::Status::nxdomain) r.warnings.push_back(r.txt_name + " does not exist (NXDOMAIN)");
      else if (ans.records.empty()) r.warnings.push_back(r.txt_name + " has no TXT record");
      else r.warnings.push_back(r.txt_name + " has no record beginning with v=STSv1;");
      return false;
    case TxtStatus::invalid:
      r.status = Status::no_policy;
      for (const auto& e : r.txt.errors) r.errors.push_back("TXT: " + e);
      if (r.txt.errors.empty()) r.errors.push_back("TXT: not exactly one valid STSv1 record");
      return false;
  }
  return false;
}

// IPv4 ranges that are not global (IANA special-purpose registry), as (network, prefix).
bool global_v4(std::uint32_t a) noexcept {
  struct Net { std::uint32_t net; int len; };
  static constexpr Net kNotGlobal[] = {
      {0x00000000, 8},  {0x0a000000, 8},  {0x64400000, 10}, {0x7f000000, 8},  {0xa9fe0000, 16},
      {0xac100000, 12}, {0xc0000000, 24}, {0xc0000200, 24}, {0xc0a80000, 16}, {0xc6120000, 15},
      {0xc6336400, 24}, {0xcb007100, 24}, {0xe0000000, 4},  {0xf0000000, 4}};
  for (const Net& n : kNotGlobal) {
    const std::uint32_t mask = ~std::uint32_t{0} << (32 - n.len);
    if ((a & mask) == n.net) return false;
  }
  return true;
}

}  // namespace

bool is_global_address(std::string_view address) noexcept {
  char buf[64];
  if (address.empty() || address.size() >= sizeof buf) return false;
  std::memcpy(buf, address.data(), address.size());
  buf[address.size()] = '\0';
  unsigned char b[16];
  if (::inet_pton(AF_INET, buf, b) == 1)
    return global_v4(std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8 | b[3]);
  if (::inet_pton(AF_INET6, buf, b) != 1) return false;
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(b, kMapped, 12) == 0)
    return global_v4(std::uint32_t{b[12]} << 24 | std::uint32_t{b[13]} << 16 | std::uint32_t{b[14]} << 8 | b[15]);
  bool zero_prefix = true;  // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
  for (int i = 0; i < 12; ++i) zero_prefix = zero_prefix && b[i] == 0;
  if (zero_prefix) return false;
  if ((b[0] & 0xfe) == 0xfc) return false;                      // fc00::/7 unique local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return false;      // fe80::/10 link-local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return false;      // fec0::/10 site-local
  if (b[0] == 0xff) return false;                                // multicast
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return false;  // 2001:db8::/32
  if (b[0] == 0x01 && b[1] == 0 && b[2] == 0 && b[3] == 0 && b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] == 0)
    return false;                                                // 100::/64 discard-only
  return true;
}

namespace {

// Step 2. Returns false when discovery ends here.
bool lookup_host(dns::Resolver& resolver, Report& r, const Options& opts) {
  r.resolved = true;
  const dns::AddressAnswer a = resolver.address(r.policy_host, dns::AddressFamily::v4);
  const dns::AddressAnswer aaaa = resolver.address(r.policy_host, dns::AddressFamily::v6);
  r.a_dns = a.status;
  r.aaaa_dns = aaaa.status;
  r.addresses = a.addresses;
  r.addresses.insert(r.addresses.end(), aaaa.addresses.begin(), aaaa.addresses.end());
  if (opts.global_addresses_only && !r.addresses.empty()) {
    std::vector<std::string> refused;
    std::erase_if(r.addresses, [&](const std::string& ip) {
      if (is_global_address(ip)) return false;
      refused.push_back(ip);
      return true;
    });
    if (!refused.empty()) {
      std::string list;
      for (const auto& ip : refused) list += (list.empty() ? "" : ", ") + ip;
      const std::string what = r.policy_host + " resolves to non-global addresses (" + list + ")";
      if (r.addresses.empty()) {
        // No connection at all: a hostile domain learns nothing about what answers there.
        r.status = Status::fetch_error;
        r.fetch.kind = https::ErrorKind::no_address;
        r.errors.push_back(what + ", refused by global-addresses-only");
        return false;
      }
      r.warnings.push_back(what + ", not used");
    }
  }
  if (!r.addresses.empty()) {
    if (dns::is_failure(a.status) || dns::is_failure(aaaa.status))
      r.warnings.push_back("one address lookup of " + r.policy_host + " failed; using the other");
    return true;
  }
  if (dns::is_failure(a.status) || dns::is_failure(aaaa.status)) {
    const auto& bad = dns::is_failure(a.status) ? a : aaaa;
    r.status = Status::dns_error;
    r.errors.push_back("address lookup of " + r.policy_host + " failed (" + dns::to_string(bad.status) +
                       (bad.error.empty() ? "" : ": " + bad.error) + ")");
    return false;
  }
  r.status = Status::fetch_error;
  r.fetch.kind = https::ErrorKind::no_address;
  r.errors.push_back(r.policy_host + " has no A or AAAA record");
  return false;
}

}  // namespace

Report check_txt(const Domain& domain, dns::Resolver& resolver) {
  Report r;
  r.domain = domain.str();
  r.policy_host = "mta-sts." + domain.str();
  lookup_txt(domain, resolver, r);
  return r;
}

Report discover(const Domain& domain, dns::Resolver& resolver, https::HttpsClient& client,
                const StoredPolicy* cached, SysTime now, const Options& opts) {
  Report r;
  r.domain = domain.str();
  r.policy_host = "mta-sts." + domain.str();
  if (!lookup_txt(domain, resolver, r)) return r;

  if (cached != nullptr && cached->id == r.id && now < cached->expires_at &&
      now < cached->fetched_at + opts.refresh_interval) {
    r.status = Status::unchanged;
    r.policy = cached->policy;
    return r;
  }

  if (!lookup_host(resolver, r, opts)) return r;

  r.fetched = true;
  r.fetch = client.fetch(r.policy_host, r.addresses);
  if (!r.fetch.ok()) {
    r.status = Status::fetch_error;
    r.errors.push_back("fetch of " + https::policy_url(r.policy_host) + " failed (" +
                       https::to_string(r.fetch.kind) + "): " + r.fetch.error);
    return r;
  }

  r.parse = parse_policy(r.fetch.body);
  for (const auto& w : r.parse->warnings) r.warnings.push_back(where(w) + w.message);
  if (!r.parse->policy) {
    r.status = Status::policy_invalid;
    for (const auto& e : r.parse->errors) r.errors.push_back(where(e) + e.message);
    if (r.parse->errors.empty()) r.errors.push_back("policy file is invalid");
    return r;
  }
  r.status = Status::valid;
  r.policy = r.parse->policy;
  return r;
}

std::vector<std::string> describe(const Report& r) {
  std::vector<std::string> out;
  out.push_back("domain " + r.domain + ": " + to_string(r.status));
  std::string txt = "TXT " + r.txt_name + ": " + dns::to_string(r.txt_dns);
  if (!r.txt_cnames.empty()) txt += " via CNAME " + join(r.txt_cnames, " -> ");
  out.push_back(txt);
  for (const auto& rec : r.txt_records) out.push_back("  record: \"" + rec + "\"");
  if (!r.id.empty()) out.push_back("  id: " + r.id);
  if (r.status == Status::unchanged) out.push_back("id unchanged: cached policy body still fresh, not fetched");
  if (r.resolved) {
    out.push_back("host " + r.policy_host + ": A " + dns::to_string(r.a_dns) + ", AAAA " +
                  dns::to_string(r.aaaa_dns) +
                  (r.addresses.empty() ? std::string() : " (" + join(r.addresses, ", ") + ")"));
  }
  if (r.fetched) {
    std::string f = "GET " + https::policy_url(r.policy_host) + ": ";
    if (r.fetch.status != 0) f += "HTTP " + std::to_string(r.fetch.status);
    else f += "no response";
    if (!r.fetch.content_type.empty()) f += ", Content-Type " + r.fetch.content_type;
    if (r.fetch.ok()) f += ", " + std::to_string(r.fetch.body.size()) + " bytes";
    else f += " (" + std::string(https::to_string(r.fetch.kind)) + ")";
    out.push_back(f);
  }
  if (r.policy) out.push_back("policy: " + summarize(*r.policy));
  for (const auto& e : r.errors) out.push_back("error: " + e);
  for (const auto& w : r.warnings) out.push_back("warning: " + w);
  return out;
}

}  // namespace mtasts::discovery
