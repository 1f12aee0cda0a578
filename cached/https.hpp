// HTTPS fetch of an MTA-STS policy file (RFC 8461 section 3.3), behind an abstract client so
// that discovery can be unit-tested with a fake. The production client (make_https_client,
// libcurl + OpenSSL) promises: https only, TLS 1.2 or newer, SNI and certificate verification
// for the policy host, a connection only to the addresses that we resolved ourselves,
// redirects never followed, no proxy unless configured (the environment is ignored), no
// conditional requests, status 200 only, `text/plain` only, a body cap enforced while
// reading, and a total timeout.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mtasts::https {

enum class ErrorKind {
  none,          // success: status 200, text/plain, body within the cap
  no_address,    // nothing to connect to (the host name resolved to no address)
  connect,       // TCP connection refused/unreachable
  tls,           // handshake failed (protocol version, alert, reset during handshake)
  certificate,   // certificate not trusted, expired, or not valid for the host name
  timeout,       // connect or total timeout
  redirect,      // 3xx (never followed)
  http_status,   // any other status than 200
  content_type,  // missing, or not text/plain
  too_large,     // body over the cap
  aborted,       // abandoned by us (shutdown): says nothing about the domain
  other,         // anything else libcurl reports
};
const char* to_string(ErrorKind k) noexcept;

struct FetchResult {
  ErrorKind kind = ErrorKind::other;
  long status = 0;           // HTTP status, 0 when no response arrived
  std::string content_type;  // as sent, "" when absent
  std::string body;          // the policy file (only when kind == none)
  std::string error;         // human-readable reason when kind != none
  std::string peer;          // the address connected to, when known
  bool tls_resumed = false;  // the TLS session was resumed (never, by design: every fetch
                             // checks the certificate; kept to prove it)
  bool ok() const noexcept { return kind == ErrorKind::none; }
};

// Thread-safe: discovery runs on several threads against one client.
class HttpsClient {
 public:
  virtual ~HttpsClient() = default;
  // GET https://<host>/.well-known/mta-sts.txt, connecting only to `addresses`.
  virtual FetchResult fetch(const std::string& host, const std::vector<std::string>& addresses) = 0;
};

struct HttpsOptions {
  std::string ca_file;   // replaces the system trust store when set
  std::string proxy;     // empty: never a proxy (environment variables ignored)
  std::chrono::milliseconds timeout{60000};         // total per fetch
  std::chrono::milliseconds connect_timeout{10000};
  std::size_t max_body = 65536;
  std::string user_agent = "mta-sts-cached";
  // When set and true, transfers in progress are abandoned (shutdown deadline passed).
  const std::atomic<bool>* abort = nullptr;
};

inline constexpr const char* kWellKnownPath = "/.well-known/mta-sts.txt";
std::string policy_url(std::string_view host);
// RFC 8461 section 3.2: media type text/plain, case-insensitive, parameters ignored.
bool is_text_plain(std::string_view content_type) noexcept;

// Calls curl_global_init once per process (thread-safe); make_https_client does it too.
void global_init();
std::unique_ptr<HttpsClient> make_https_client(HttpsOptions opts);

}  // namespace mtasts::https
