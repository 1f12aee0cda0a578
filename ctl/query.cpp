// `mta-sts-ctl query`: builds the fetcher's own resolver and HTTPS client from the [ctl]
// options and runs discovery::discover() once, with no cached policy (a live query always
// fetches), then shows the report. No decision is made here: the status is the fetcher's.
// For a policy found, it then answers the postmaster's first question, "will my mail to
// them be delivered?": the domain's MX records against the policy's mx patterns.
#include "ctl/query.hpp"

#include <algorithm>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>

#include "cached/discovery.hpp"
#include "common/dns/dns.hpp"
#include "cached/https.hpp"
#include "common/util/json.hpp"

namespace mtasts::ctl {
namespace {

// The names of the fixed JSON interface (mta-sts-ctl(1)).
const char* status_name(discovery::Status s) noexcept {
  switch (s) {
    case discovery::Status::valid: return "valid";
    case discovery::Status::no_policy: return "no-policy";
    case discovery::Status::dns_error: return "dns-error";
    case discovery::Status::fetch_error: return "fetch-error";
    case discovery::Status::policy_invalid: return "policy-invalid";
    case discovery::Status::unchanged: return "valid";  // impossible without a cached policy
  }
  return "dns-error";
}

int exit_code(discovery::Status s) noexcept {
  switch (s) {
    case discovery::Status::valid:
    case discovery::Status::unchanged: return kExitOk;
    case discovery::Status::no_policy: return kExitNo;
    case discovery::Status::dns_error:
    case discovery::Status::fetch_error:
    case discovery::Status::policy_invalid: return kExitFailed;
  }
  return kExitFailed;
}

Output usage(const std::string& why) {
  Output o;
  o.code = kExitUsage;
  o.err = "mta-sts-ctl: " + why + "\n";
  return o;
}

std::vector<std::string> safe(const std::vector<std::string>& v) {
  std::vector<std::string> out;
  out.reserve(v.size());
  for (const auto& s : v) out.push_back(utf8_safe(s));
  return out;
}

// `mx_check`: the MX check as a JSON object, "" when none was made.
std::string render_json(const discovery::Report& r, const std::string& mx_check) {
  json::Object o;
  o.str("domain", r.domain).str("status", status_name(r.status));
  if (r.id.empty()) o.null("id");
  else o.str("id", utf8_safe(r.id));
  if (r.status == discovery::Status::valid && r.policy) {
    std::vector<std::string> mx;
    for (const auto& m : r.policy->mx) mx.push_back(m.str());
    o.str("mode", to_string(r.policy->mode)).num("max_age", r.policy->max_age.count()).strings("mx", mx);
  }
  // The steps, for scripts that want more than the verdict.
  o.strings("txt_records", safe(r.txt_records)).str("txt_dns", dns::to_string(r.txt_dns));
  if (r.resolved) o.strings("addresses", r.addresses);
  if (r.fetched) {
    json::Object f;
    f.str("result", r.fetch.ok() ? "ok" : https::to_string(r.fetch.kind)).num("http_status", r.fetch.status);
    f.str("content_type", utf8_safe(r.fetch.content_type));
    if (!r.fetch.peer.empty()) f.str("peer", utf8_safe(r.fetch.peer));
    if (!r.fetch.error.empty()) f.str("error", utf8_safe(r.fetch.error));
    o.raw("fetch", f.done());
  }
  if (!mx_check.empty()) o.raw("mx_check", mx_check);
  o.strings("errors", safe(r.errors)).strings("warnings", safe(r.warnings));
  return o.done() + "\n";
}

// The domain's MX hosts against the policy's patterns (RFC 8461 section 4.1).
struct MxCheck {
  struct Host {
    unsigned preference = 0;
    std::string name;
    std::string pattern;  // the first pattern that matches; "" when none
  };
  dns::Status status = dns::Status::error;
  std::string error;
  bool implicit = false;  // no MX records: the domain itself is the MX (RFC 5321 section 5.1)
  bool null_mx = false;   // "MX 0 ." (RFC 7505): the domain accepts no mail
  std::vector<Host> hosts;
  std::size_t matching() const {
    return static_cast<std::size_t>(std::count_if(hosts.begin(), hosts.end(), [](const Host& h) { return !h.pattern.empty(); }));
  }
};

MxCheck check_mx(dns::Resolver& resolver, const Domain& domain, const Policy& policy) {
  MxCheck c;
  const dns::MxAnswer a = resolver.mx(domain.str());
  c.status = a.status;
  c.error = a.error;
  std::vector<dns::MxRecord> records = a.records;
  if (a.status == dns::Status::nodata) {
    c.implicit = true;
    records.push_back({0, domain.str()});
  } else if (a.status != dns::Status::ok) {
    return c;
  }
  std::stable_sort(records.begin(), records.end(),
                   [](const dns::MxRecord& x, const dns::MxRecord& y) { return x.preference < y.preference; });
  for (const dns::MxRecord& rec : records) {
    if (rec.exchange.empty()) {
      c.null_mx = true;
      continue;
    }
    MxCheck::Host h{rec.preference, rec.exchange, ""};
    for (const MxPattern& p : policy.mx) {
      if (p.matches(rec.exchange)) {
        h.pattern = p.str();
        break;
      }
    }
    c.hosts.push_back(std::move(h));
  }
  return c;
}

// What a sending MTA that honours the policy will do, in one line.
std::string verdict(const MxCheck& c, Mode mode) {
  if (dns::is_failure(c.status)) return "cannot tell: the MX lookup failed";
  if (c.status == dns::Status::nxdomain) return "the domain does not exist: no mail is delivered";
  if (c.hosts.empty()) return "the domain accepts no mail (null MX)";
  const std::size_t n = c.matching(), total = c.hosts.size();
  const std::string count = std::to_string(n) + " of " + std::to_string(total) + " MX host" + (total == 1 ? "" : "s");
  switch (mode) {
    case Mode::enforce:
      if (n == 0) return "NOT DELIVERED: no MX host matches the policy; senders that enforce MTA-STS defer all mail";
      return "delivered over verified TLS to the matching MX hosts only (" + count + " match)";
    case Mode::testing:
      return n == 0 ? "delivered as usual (testing); no MX host matches the policy, which senders report"
                    : "delivered as usual (testing); " + count + " match the policy";
    case Mode::none: break;
  }
  return "delivered as usual (mode none: no policy applies)";
}

std::vector<std::string> describe(const MxCheck& c, const Domain& domain, Mode mode) {
  std::vector<std::string> out;
  std::string head = "MX " + domain.str() + ": " + dns::to_string(c.status);
  if (c.implicit) head += " (no MX records: the domain itself is the mail host)";
  if (dns::is_failure(c.status) && !c.error.empty()) head += " (" + c.error + ")";
  out.push_back(head);
  for (const auto& h : c.hosts) {
    out.push_back("  " + std::to_string(h.preference) + " " + h.name + ": " +
                  (h.pattern.empty() ? "matches no mx pattern" : "matches " + h.pattern));
  }
  out.push_back("delivery: " + verdict(c, mode));
  return out;
}

std::string mx_json(const MxCheck& c, Mode mode) {
  std::string hosts = "[";
  for (std::size_t i = 0; i < c.hosts.size(); ++i) {
    json::Object h;
    h.num("preference", c.hosts[i].preference).str("host", utf8_safe(c.hosts[i].name));
    if (c.hosts[i].pattern.empty()) h.null("pattern");
    else h.str("pattern", c.hosts[i].pattern);
    hosts += (i ? "," : "") + h.done();
  }
  hosts += "]";
  json::Object o;
  o.str("dns", dns::to_string(c.status)).boolean("implicit", c.implicit).raw("hosts", hosts);
  o.num("matching", static_cast<std::int64_t>(c.matching())).str("delivery", verdict(c, mode));
  return o.done();
}

}  // namespace

Output query(const CtlConfig& cfg, std::string_view domain_text, bool json) {
  DomainParse p = Domain::parse(domain_text);
  if (!p.domain) {
    return usage("\"" + terminal_safe(domain_text) + "\" is not a domain: " +
                 (p.address_literal ? "an address literal has no MTA-STS policy" : p.error));
  }

  dns::ResolverOptions ro;
  https::HttpsOptions ho;
  std::unique_ptr<dns::Resolver> resolver;
  std::unique_ptr<https::HttpsClient> client;
  try {
    for (const std::string& s : cfg.resolvers) ro.servers.push_back(dns::parse_server(s));
  } catch (const std::invalid_argument& e) {
    return usage(std::string("--resolver: ") + e.what());
  }
  ro.timeout = cfg.dns_timeout;
  ho.ca_file = cfg.ca_file;
  ho.timeout = cfg.fetch_timeout;
  ho.connect_timeout = std::min<std::chrono::milliseconds>(ho.timeout, std::chrono::seconds(10));
  ho.user_agent = "mta-sts-ctl";
  try {
    resolver = dns::make_resolver(ro);
    client = https::make_https_client(ho);
  } catch (const std::exception& e) {
    // No resolver configured and none in /etc/resolv.conf, or an unusable CA file.
    return usage(e.what());
  }

  const discovery::Report r = discovery::discover(*p.domain, *resolver, *client, nullptr, SystemClock().now());
  std::optional<MxCheck> mx;
  if (r.policy && r.policy->mode != Mode::none) mx = check_mx(*resolver, *p.domain, *r.policy);
  Output o;
  o.code = exit_code(r.status);
  if (json) {
    o.out = render_json(r, mx ? mx_json(*mx, r.policy->mode) : std::string());
    return o;
  }
  // describe() opens with "domain D: status" and then shows each step. TXT records, media
  // types, MX names and errors come from the remote side: escaped before they reach a terminal.
  for (const std::string& line : discovery::describe(r)) o.out += terminal_safe(line, 4096) + "\n";
  if (mx)
    for (const std::string& line : describe(*mx, *p.domain, r.policy->mode)) o.out += terminal_safe(line, 4096) + "\n";
  return o;
}

}  // namespace mtasts::ctl
