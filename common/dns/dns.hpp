// DNS for MTA-STS: the `_mta-sts` TXT RRset (CNAMEs followed) and the A/AAAA of
// `mta-sts.<domain>` for discovery (mta-sts-cached, mta-sts-ctl); a domain's MX RRset and the
// TLSA RRset of `_25._tcp.<mx host>` with the resolver's AD bit for mta-sts-tlsmap (which
// lists the MX hosts a `*.` pattern allows and lets DANE take precedence). Behind an abstract
// Resolver so that callers can be unit-tested with a fake. The production implementation (make_resolver) speaks DNS over UDP (TCP when the
// answer is truncated) with ldns for the wire format; dns.cpp is the only translation unit
// that includes ldns headers (ldns/common.h defines `true`/`false` as macros).
//
// Promise: absence is a value, failure is an error. NXDOMAIN and NODATA are answers
// (`nxdomain`, `nodata`); SERVFAIL, REFUSED, timeouts and network errors are failures
// (is_failure() is true) and must never be read as "no policy".
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mtasts::dns {

enum class Status {
  ok,        // the RRset was found (after CNAMEs)
  nxdomain,  // the name (or the end of its CNAME chain) does not exist
  nodata,    // the name exists but has no record of that type
  servfail,  // the resolver answered SERVFAIL (or REFUSED, or another error rcode)
  timeout,   // no answer within the per-query timeout, after every retry
  error,     // network error, malformed answer, CNAME loop
};
const char* to_string(Status s) noexcept;
// SERVFAIL, timeout, error: the lookup failed, nothing is known about the name.
constexpr bool is_failure(Status s) noexcept {
  return s == Status::servfail || s == Status::timeout || s == Status::error;
}

struct TxtAnswer {
  Status status = Status::error;
  // One element per TXT record, each the list of its character-strings (raw bytes).
  std::vector<std::vector<std::string>> records;
  // Names followed from the query name to the owner of the records ("" chain: none).
  std::vector<std::string> cname_chain;
  std::string error;  // for failures: what went wrong, for logs and `mta-sts-ctl query`
};

struct AddressAnswer {
  Status status = Status::error;
  std::vector<std::string> addresses;  // textual IPv4/IPv6 addresses
  std::vector<std::string> cname_chain;
  std::string error;
  // The resolver set AD on every answer of the lookup (CNAMEs included): DNSSEC-validated.
  // Postfix uses an MX host's TLSA records only when its address records are validated.
  bool authenticated = false;
};

struct MxRecord {
  unsigned preference = 0;
  std::string exchange;  // lowercase, no trailing dot; "" for a null MX ("." , RFC 7505)
  friend bool operator==(const MxRecord&, const MxRecord&) = default;
};

struct MxAnswer {
  Status status = Status::error;
  std::vector<MxRecord> records;
  bool authenticated = false;  // the resolver set AD: DNSSEC-validated (trust the resolver path)
  std::uint32_t ttl = 0;       // smallest TTL of the records (0 for negative answers)
  std::string error;
};

// One TLSA record's fields (RFC 6698 section 2.1): what decides whether an MTA can use it.
struct TlsaRecord {
  std::uint8_t usage = 0;       // 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE
  std::uint8_t selector = 0;    // 0 full certificate, 1 SubjectPublicKeyInfo
  std::uint8_t mtype = 0;       // 0 exact, 1 SHA-256, 2 SHA-512, 255 private use
  std::size_t data_length = 0;  // octets of certificate association data
  friend bool operator==(const TlsaRecord&, const TlsaRecord&) = default;
};

struct TlsaAnswer {
  Status status = Status::error;
  std::vector<TlsaRecord> records;  // the TLSA records at the name (malformed ones left out)
  bool authenticated = false;       // AD bit (on every answer of the lookup)
  std::uint32_t ttl = 0;
  std::string error;
};

enum class AddressFamily { v4, v6 };

// Thread-safe: discovery runs on several threads against one Resolver.
class Resolver {
 public:
  virtual ~Resolver() = default;
  virtual TxtAnswer txt(const std::string& name) = 0;
  // address(), mx() and tlsa() ask with the AD bit set (RFC 6840 section 5.7) so that a
  // validating resolver says whether the answer is DNSSEC-validated. The AD bit means
  // something only from a resolver reached over a path nobody can tamper with (loopback):
  // see is_loopback() and mta-sts-tlsmap's DNSSEC probe.
  virtual AddressAnswer address(const std::string& name, AddressFamily family) = 0;
  virtual MxAnswer mx(const std::string& name) = 0;
  virtual TlsaAnswer tlsa(const std::string& name) = 0;
};

struct Server {
  std::string address;  // numeric IPv4 or IPv6
  unsigned short port = 53;
  friend bool operator==(const Server&, const Server&) = default;
};

// True for 127.0.0.0/8 and ::1 (also ::ffff:127.x.y.z): a resolver on this host, whose
// answers (and AD bit) cannot be forged on the network path.
bool is_loopback(const Server& s) noexcept;

// Parses "ADDR", "ADDR:PORT", "[V6]" or "[V6]:PORT" (a bare IPv6 address has port 53).
// Throws std::invalid_argument with the reason.
Server parse_server(const std::string& text);
// The `nameserver` lines of a resolv.conf file (IPv6 scope ids are dropped). Throws
// std::runtime_error when the file cannot be read or names no server.
std::vector<Server> servers_from_resolv_conf(const std::string& path = "/etc/resolv.conf");

struct ResolverOptions {
  std::vector<Server> servers;               // empty: /etc/resolv.conf
  std::chrono::milliseconds timeout{2000};   // per query attempt
  unsigned retries = 2;                      // extra rounds over all servers after the first
};

// The production resolver (UDP with TCP fallback, random query ids and source ports, answers
// checked against the question). Throws std::runtime_error when no server is configured.
std::unique_ptr<Resolver> make_resolver(ResolverOptions opts);

}  // namespace mtasts::dns
