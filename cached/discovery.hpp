// One MTA-STS discovery of one policy domain (RFC 8461 sections 3 and 5): the `_mta-sts` TXT
// record, the TXT id compared with the cached policy, the policy host's addresses, the HTTPS
// fetch and the policy parse. The fetcher (worker.cpp) and `mta-sts-ctl query` both call
// discover(), so that an operator sees exactly what the fetcher would conclude.
//
// discover() does no caching and writes nothing: it returns a Report that records every
// step, for display and for the refresh rules (refresh.hpp), which decide what to store.
// It never throws for anything a remote party controls.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/dns/dns.hpp"
#include "cached/https.hpp"
#include "common/sts/cache_entry.hpp"
#include "common/util/clock.hpp"
#include "common/sts/domain.hpp"
#include "common/sts/policy.hpp"
#include "common/sts/txt_record.hpp"

namespace mtasts::discovery {

enum class Status {
  valid,           // a policy was fetched and parsed (`policy` is set)
  no_policy,       // no TXT record, NXDOMAIN, no STSv1 record, or not exactly one valid one
  dns_error,       // the TXT lookup failed, or both address lookups failed
  fetch_error,     // the HTTPS fetch failed (see `fetch.kind`), or the host has no address
  policy_invalid,  // the body was fetched but is not a valid policy
  unchanged,       // the TXT id equals the cached policy's and its body is fresh: no fetch
};
const char* to_string(Status s) noexcept;

struct Options {
  // With a cached policy of the same TXT id, the body is reused only while it is younger
  // than this (RFC-NOTES.md: re-fetched at least every 24 h even with an unchanged id).
  Seconds refresh_interval{86400};
  // Drop policy host addresses that are not global (is_global_address); with none left the
  // fetch fails without a connection. Off here (tests, `mta-sts-ctl query`); the fetcher's
  // configuration turns it on by default.
  bool global_addresses_only = false;
};

// False for loopback, private, shared, link-local, documentation, benchmarking, multicast,
// reserved and unspecified IPv4/IPv6 addresses (IPv4-mapped IPv6 judged as IPv4), and for
// text that is not an address.
bool is_global_address(std::string_view address) noexcept;

struct Report {
  std::string domain;
  Status status = Status::dns_error;

  // Step 1: TXT at _mta-sts.<domain>.
  std::string txt_name;
  dns::Status txt_dns = dns::Status::error;
  std::vector<std::string> txt_cnames;             // CNAME chain followed, if any
  std::vector<std::string> txt_records;            // each record's strings concatenated
  TxtResult txt;                                   // parse_sts_txt of the RRset
  std::string id;                                  // the TXT id when txt.status == policy

  // Step 2: addresses of mta-sts.<domain> (skipped when unchanged or no TXT id).
  std::string policy_host;
  bool resolved = false;
  dns::Status a_dns = dns::Status::error;
  dns::Status aaaa_dns = dns::Status::error;
  std::vector<std::string> addresses;

  // Step 3: HTTPS (fetch.body holds the policy file as served).
  bool fetched = false;
  https::FetchResult fetch;

  // Step 4: the parse of the body.
  std::optional<PolicyParseResult> parse;

  // Outcome: the policy in force after this discovery (for valid; for unchanged, the
  // cached one), and every error and warning of every step, readable by a domain owner.
  std::optional<Policy> policy;
  std::vector<std::string> errors;
  std::vector<std::string> warnings;

  // The failure this discovery records in the cache, if any: dns_error -> dns,
  // fetch_error -> fetch, policy_invalid -> policy_invalid, no_policy because of an
  // invalid STSv1 record set -> txt_invalid. nullopt for valid, unchanged and plain absence.
  std::optional<FailureKind> failure() const;
  // One-line reason for logs ("" for valid/unchanged).
  std::string reason() const;
};

// `cached` is the policy currently in the cache (nullptr when none, or for a live query that
// must always fetch). Its id is compared with the TXT id; an equal id with a usable policy
// whose body is younger than opts.refresh_interval gives Status::unchanged without a fetch.
Report discover(const Domain& domain, dns::Resolver& resolver, https::HttpsClient& client,
                const StoredPolicy* cached, SysTime now, const Options& opts = {});

// Step 1 alone (the `_mta-sts` TXT record): `id` is set when exactly one valid STSv1 record
// was found. The fetcher runs it for a domain in failure backoff, where the cheap TXT query
// still tells whether a new policy (a new id) was published.
Report check_txt(const Domain& domain, dns::Resolver& resolver);

// Human-readable lines, one per step and finding, for `mta-sts-ctl query` and debug logs.
std::vector<std::string> describe(const Report& r);

}  // namespace mtasts::discovery
