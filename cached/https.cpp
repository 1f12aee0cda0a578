// The libcurl implementation of HttpsClient. One easy handle per fetch (handles are never
// shared between threads); every handle and list is owned by a unique_ptr from creation.
// libcurl errors are turned into ErrorKind in exactly one place (classify).
#include "cached/https.hpp"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <vector>
#include <mutex>
#include <stdexcept>

namespace mtasts::https {

const char* to_string(ErrorKind k) noexcept {
  switch (k) {
    case ErrorKind::none: return "none";
    case ErrorKind::no_address: return "no-address";
    case ErrorKind::connect: return "connect";
    case ErrorKind::tls: return "tls";
    case ErrorKind::certificate: return "certificate";
    case ErrorKind::timeout: return "timeout";
    case ErrorKind::redirect: return "redirect";
    case ErrorKind::http_status: return "http-status";
    case ErrorKind::content_type: return "content-type";
    case ErrorKind::too_large: return "too-large";
    case ErrorKind::aborted: return "aborted";
    case ErrorKind::other: return "other";
  }
  return "other";
}

std::string policy_url(std::string_view host) {
  return "https://" + std::string(host) + kWellKnownPath;
}

bool is_text_plain(std::string_view ct) noexcept {
  const auto semi = ct.find(';');
  std::string_view type = ct.substr(0, semi);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  constexpr std::string_view want = "text/plain";
  if (type.size() != want.size()) return false;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(type[i])) != want[i]) return false;
  }
  return true;
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("curl_global_init failed");
  });
}

namespace {

struct EasyFree { void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); } };
struct SlistFree { void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); } };
using EasyPtr = std::unique_ptr<CURL, EasyFree>;
using SlistPtr = std::unique_ptr<curl_slist, SlistFree>;

// Why our write callback stopped a transfer (libcurl only sees CURLE_WRITE_ERROR).
enum class Stop { none, status, content_type, too_large, internal };

struct Transfer {
  CURL* curl = nullptr;
  std::string host;      // the policy host, for the SAN check (on_ssl_ctx)
  bool body_seen = false;
  bool resumed = false;  // SSL_session_reused() of the connection that brought the body
  std::size_t max_body = 0;
  std::string body;
  Stop stop = Stop::none;
  const std::atomic<bool>* abort = nullptr;
};

long response_code(CURL* c) {
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  return code;
}

std::string content_type(CURL* c) {
  char* ct = nullptr;
  curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
  return ct ? std::string(ct) : std::string();
}

// Rejects a response as soon as its first body bytes arrive when the status or type is
// wrong, and stops reading past the cap: a hostile server cannot make us buffer anything.
// noexcept, and nothing escapes: an exception unwinding through libcurl's C frames is
// undefined behaviour (a bad_alloc from the append or the Content-Type copy included), so it
// ends the transfer as a write error instead.
extern "C" std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) noexcept {
  auto* t = static_cast<Transfer*>(user);
  try {
    const std::size_t len = size * n;
    if (!t->body_seen) {
      t->body_seen = true;
      const curl_tlssessioninfo* info = nullptr;
      if (curl_easy_getinfo(t->curl, CURLINFO_TLS_SSL_PTR, &info) == CURLE_OK && info != nullptr &&
          info->backend == CURLSSLBACKEND_OPENSSL && info->internals != nullptr)
        t->resumed = SSL_session_reused(static_cast<SSL*>(info->internals)) == 1;
    }
    if (response_code(t->curl) != 200) { t->stop = Stop::status; return 0; }
    if (!is_text_plain(content_type(t->curl))) { t->stop = Stop::content_type; return 0; }
    if (len > t->max_body - std::min(t->max_body, t->body.size())) { t->stop = Stop::too_large; return 0; }
    t->body.append(data, len);
    return len;
  } catch (...) {
    t->stop = Stop::internal;
    return 0;
  }
}

extern "C" int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) noexcept {
  const auto* t = static_cast<const Transfer*>(user);
  return (t->abort != nullptr && t->abort->load()) ? 1 : 0;
}

// RFC 8461 section 3.3 and RFC 6125 section 6.4.4: the policy host is matched against the
// certificate's subjectAltName dNSNames only, never the subject CN (libcurl's OpenSSL
// backend falls back to the CN when a certificate has no dNSName). OpenSSL checks the name
// during the handshake with the CN fallback switched off; libcurl's own check still runs.
extern "C" CURLcode on_ssl_ctx(CURL*, void* ssl_ctx, void* user) noexcept {
  const auto* t = static_cast<const Transfer*>(user);
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(static_cast<SSL_CTX*>(ssl_ctx));
  if (param == nullptr) return CURLE_SSL_CERTPROBLEM;
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (X509_VERIFY_PARAM_set1_host(param, t->host.c_str(), t->host.size()) != 1) return CURLE_SSL_CERTPROBLEM;
  return CURLE_OK;
}

// The callbacks libcurl calls must not throw (see on_body); checked at compile time so that
// a later edit cannot lose it.
static_assert(noexcept(on_body(nullptr, 0, 0, nullptr)));
static_assert(noexcept(on_progress(nullptr, 0, 0, 0, 0)));
static_assert(noexcept(on_ssl_ctx(nullptr, nullptr, nullptr)));

ErrorKind classify(CURLcode rc) {
  switch (rc) {
    case CURLE_OK: return ErrorKind::none;
    case CURLE_COULDNT_RESOLVE_HOST: return ErrorKind::no_address;
    case CURLE_COULDNT_CONNECT: return ErrorKind::connect;
    case CURLE_OPERATION_TIMEDOUT: return ErrorKind::timeout;
    case CURLE_PEER_FAILED_VERIFICATION: return ErrorKind::certificate;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_ENGINE_INITFAILED:
      return ErrorKind::tls;
    case CURLE_FILESIZE_EXCEEDED: return ErrorKind::too_large;
    case CURLE_ABORTED_BY_CALLBACK: return ErrorKind::aborted;
    default: return ErrorKind::other;
  }
}

class CurlClient final : public HttpsClient {
 public:
  explicit CurlClient(HttpsOptions o) : opts_(std::move(o)) {
    global_init();
    // The CA file is read by libcurl at each handshake: fail early if it is unreadable.
    if (!opts_.ca_file.empty()) {
      if (FILE* f = std::fopen(opts_.ca_file.c_str(), "r")) std::fclose(f);
      else throw std::runtime_error("cannot read ca-file " + opts_.ca_file);
    }
    idle_.reserve(kMaxIdle);
  }

  FetchResult fetch(const std::string& host, const std::vector<std::string>& addresses) override {
    FetchResult r;
    if (addresses.empty() && opts_.proxy.empty()) {
      r.kind = ErrorKind::no_address;
      r.error = "no address for " + host;
      return r;
    }
    Lease curl(this);
    if (!curl.get()) {
      r.error = "curl_easy_init failed";
      return r;
    }
    // Connect only to the addresses we resolved: "host:443:a,b,[v6]".
    std::string entry = host + ":443:";
    for (std::size_t i = 0; i < addresses.size(); ++i) {
      if (i) entry += ',';
      entry += addresses[i].find(':') != std::string::npos ? "[" + addresses[i] + "]" : addresses[i];
    }
    // (Through a proxy, the proxy resolves the name: there is nothing to pin then.)
    SlistPtr resolve(addresses.empty() ? nullptr : curl_slist_append(nullptr, entry.c_str()));
    if (!resolve && !addresses.empty()) {
      r.error = "out of memory";
      return r;
    }

    Transfer t;
    t.curl = curl.get();
    t.host = host;
    t.max_body = opts_.max_body;
    t.abort = opts_.abort;
    char errbuf[CURL_ERROR_SIZE] = {};
    const std::string url = policy_url(host);
    CURL* c = curl.get();
    bool set_ok = true;
    auto set = [&](CURLcode rc) { set_ok = set_ok && rc == CURLE_OK; };
    set(curl_easy_setopt(c, CURLOPT_URL, url.c_str()));
    set(curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https"));
    set(curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https"));
    set(curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L));
    // Handles are reused, connections never: each fetch starts a fresh TLS connection.
    set(curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L));
    set(curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L));
    if (resolve) set(curl_easy_setopt(c, CURLOPT_RESOLVE, resolve.get()));
    set(curl_easy_setopt(c, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2)));
    set(curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L));
    set(curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L));
    set(curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx));
    set(curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, &t));
    // Handles are reused: without this a refetch would resume the TLS session of an earlier
    // fetch and skip the certificate check (a revoked or replaced certificate unnoticed).
    set(curl_easy_setopt(c, CURLOPT_SSL_SESSIONID_CACHE, 0L));
    if (!opts_.ca_file.empty()) {
      set(curl_easy_setopt(c, CURLOPT_CAINFO, opts_.ca_file.c_str()));
      // Without this the built-in CA directory would still be trusted beside the file.
      set(curl_easy_setopt(c, CURLOPT_CAPATH, nullptr));
    }
    // "" disables proxies, including http(s)_proxy from the environment.
    set(curl_easy_setopt(c, CURLOPT_PROXY, opts_.proxy.c_str()));
    set(curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L));
    set(curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout.count())));
    set(curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts_.connect_timeout.count())));
    set(curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(opts_.max_body)));
    set(curl_easy_setopt(c, CURLOPT_USERAGENT, opts_.user_agent.c_str()));
    set(curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body));
    set(curl_easy_setopt(c, CURLOPT_WRITEDATA, &t));
    set(curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress));
    set(curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t));
    set(curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L));
    set(curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf));
    if (!set_ok) {
      r.error = "libcurl rejected an option (too old?)";
      return r;
    }

    const CURLcode rc = curl_easy_perform(c);
    r.tls_resumed = t.resumed;
    r.status = response_code(c);
    r.content_type = content_type(c);
    char* ip = nullptr;
    if (curl_easy_getinfo(c, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip) r.peer = ip;

    if (t.stop == Stop::internal) {
      r.kind = ErrorKind::other;
      r.error = "internal error while reading the body (out of memory?)";
      return r;
    }
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && t.stop != Stop::none)) {
      r.kind = classify(rc);
      if (rc == CURLE_ABORTED_BY_CALLBACK) r.error = "fetch abandoned at shutdown";
      else if (r.kind == ErrorKind::too_large)
        r.error = "body larger than " + std::to_string(opts_.max_body) + " bytes";
      else
        r.error = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
      return r;
    }
    // The response arrived (or our callback stopped it): judge status, type, size.
    if (r.status >= 300 && r.status < 400) {
      r.kind = ErrorKind::redirect;
      char* location = nullptr;
      curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location);
      r.error = "HTTP " + std::to_string(r.status) + " redirect (not followed)" +
                (location ? std::string(" to ") + location : std::string());
      return r;
    }
    if (r.status != 200) {
      r.kind = ErrorKind::http_status;
      r.error = "HTTP status " + std::to_string(r.status) + " (only 200 is accepted)";
      return r;
    }
    if (!is_text_plain(r.content_type)) {
      r.kind = ErrorKind::content_type;
      r.error = r.content_type.empty() ? "no Content-Type (text/plain required)"
                                       : "Content-Type " + r.content_type + " (text/plain required)";
      return r;
    }
    if (t.stop == Stop::too_large) {
      r.kind = ErrorKind::too_large;
      r.error = "body larger than " + std::to_string(opts_.max_body) + " bytes";
      return r;
    }
    r.kind = ErrorKind::none;
    r.body = std::move(t.body);
    return r;
  }

 private:
  // Easy handles are kept for reuse (curl_easy_reset between fetches): a handle keeps the
  // parsed CA store, which otherwise costs a parse of the whole trust store per fetch.
  // CURLOPT_RESOLVE entries stay in a handle's DNS cache for good, so a handle is retired
  // after kMaxUses fetches: the memory a handle holds stays bounded.
  struct Handle {
    EasyPtr easy;
    unsigned uses = 0;
  };
  class Lease {
   public:
    explicit Lease(CurlClient* c) : client_(c), h_(c->acquire()) {}
    ~Lease() { client_->give_back(std::move(h_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    CURL* get() const noexcept { return h_.easy.get(); }
   private:
    CurlClient* client_;
    Handle h_;
  };
  Handle acquire() {
    std::unique_lock lock(mu_);
    if (!idle_.empty()) {
      Handle h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
    lock.unlock();
    return Handle{EasyPtr(curl_easy_init()), 0};
  }
  void give_back(Handle h) noexcept {
    if (!h.easy || ++h.uses >= kMaxUses) return;
    curl_easy_reset(h.easy.get());
    std::lock_guard lock(mu_);
    if (idle_.size() < idle_.capacity()) idle_.push_back(std::move(h));
  }
  static constexpr std::size_t kMaxIdle = 64;
  static constexpr unsigned kMaxUses = 256;

  HttpsOptions opts_;
  std::mutex mu_;
  std::vector<Handle> idle_;  // capacity reserved up front: give_back never allocates
};

}  // namespace

std::unique_ptr<HttpsClient> make_https_client(HttpsOptions opts) {
  return std::make_unique<CurlClient>(std::move(opts));
}

}  // namespace mtasts::https
