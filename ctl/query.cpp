// `mta-sts-ctl query`: builds the fetcher's own resolver and HTTPS client from the [ctl]
// options and runs discovery::discover() once, with no cached policy (a live query always
// fetches), then shows the report. No decision is made here: the status is the fetcher's.
#include "ctl/query.hpp"

#include <algorithm>
#include <exception>
#include <memory>
#include <stdexcept>

#include "cached/discovery.hpp"
#include "common/dns.hpp"
#include "cached/https.hpp"
#include "common/json.hpp"

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

std::string render_json(const discovery::Report& r) {
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
  o.strings("errors", safe(r.errors)).strings("warnings", safe(r.warnings));
  return o.done() + "\n";
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
  Output o;
  o.code = exit_code(r.status);
  if (json) {
    o.out = render_json(r);
    return o;
  }
  // describe() opens with "domain D: status" and then shows each step. TXT records, media
  // types and errors come from the remote side: escaped before they reach a terminal.
  for (const std::string& line : discovery::describe(r)) o.out += terminal_safe(line, 4096) + "\n";
  return o;
}

}  // namespace mtasts::ctl
