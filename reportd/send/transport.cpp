// The production transports; see transport.hpp.
#include "reportd/send/transport.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "common/util/fd.hpp"

extern char** environ;

namespace mtasts::reportd {

std::vector<std::string> split_command(const std::string& command) {
  std::vector<std::string> argv;
  std::string word;
  for (char c : command) {
    if (c == ' ' || c == '\t') {
      if (!word.empty()) argv.push_back(std::move(word));
      word.clear();
      continue;
    }
    if (c == '"' || c == '\'' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      throw std::invalid_argument("sendmail-command: quotes, backslashes and control characters are not understood");
    word += c;
  }
  if (!word.empty()) argv.push_back(std::move(word));
  if (argv.empty()) throw std::invalid_argument("sendmail-command is empty");
  return argv;
}

namespace {

using Steady = std::chrono::steady_clock;

int remaining_ms(Steady::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1000));
}

class Sendmail final : public MailSubmitter {
 public:
  explicit Sendmail(SendmailOptions o) : opts_(std::move(o)), base_(split_command(opts_.command)) {}

  Delivery submit(const std::string& sender, const std::string& recipient, const std::string& message) override {
    std::vector<std::string> args = base_;
    args.insert(args.end(), {"-f", sender, "--", recipient});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    // Standard input is a socket, not a pipe: send(MSG_NOSIGNAL) cannot raise SIGPIPE in the
    // daemon when the child exits early.
    int in[2];
    int err[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0) return fail_errno("socketpair");
    UniqueFd in_parent(in[0]), in_child(in[1]);
    if (pipe2(err, O_CLOEXEC) != 0) return fail_errno("pipe");
    UniqueFd err_parent(err[0]), err_child(err[1]);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_child.get(), 0);
    posix_spawn_file_actions_adddup2(&fa, err_child.get(), 1);  // its chatter goes to the log too
    posix_spawn_file_actions_adddup2(&fa, err_child.get(), 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigset_t deflt;
    sigemptyset(&deflt);
    sigaddset(&deflt, SIGPIPE);
    sigaddset(&deflt, SIGTERM);
    sigaddset(&deflt, SIGHUP);
    sigaddset(&deflt, SIGINT);
    posix_spawnattr_setsigdefault(&attr, &deflt);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    const int rc = args[0].find('/') != std::string::npos
                       ? posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), environ)
                       : posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    in_child.reset();
    err_child.reset();
    if (rc != 0) return {false, "cannot run " + args[0] + ": " + std::strerror(rc)};

    const auto deadline = Steady::now() + opts_.timeout;
    std::string stderr_text;
    std::size_t sent = 0;
    bool timed_out = false;
    bool exited = false;
    int status = 0;
    pid_t w = 0;
    fcntl(in_parent.get(), F_SETFL, O_NONBLOCK);
    fcntl(err_parent.get(), F_SETFL, O_NONBLOCK);
    auto drain = [&] {
      char buf[1024];
      for (;;) {
        const ssize_t got = read(err_parent.get(), buf, sizeof buf);
        if (got > 0) {
          if (stderr_text.size() < 2048) stderr_text.append(buf, static_cast<std::size_t>(got));
          continue;
        }
        if (got == 0 || (errno != EINTR && errno != EAGAIN)) err_parent.reset();
        return;
      }
    };
    // Until the child exits (not until its stderr closes: a background grandchild may keep
    // that open), or the deadline.
    while (!exited) {
      if (Steady::now() >= deadline) {
        timed_out = true;
        break;
      }
      pollfd fds[2];
      nfds_t n = 0;
      if (err_parent.valid()) fds[n++] = {err_parent.get(), POLLIN, 0};
      if (in_parent.valid()) fds[n++] = {in_parent.get(), POLLOUT, 0};
      const int pr = poll(fds, n, std::min(remaining_ms(deadline), 20));
      if (pr < 0 && errno != EINTR) break;
      for (nfds_t k = 0; k < n && pr > 0; ++k) {
        if (fds[k].revents == 0) continue;
        if (fds[k].fd == err_parent.get()) {
          drain();
        } else {
          const ssize_t put = send(in_parent.get(), message.data() + sent, message.size() - sent, MSG_NOSIGNAL);
          if (put > 0) sent += static_cast<std::size_t>(put);
          else if (put < 0 && errno != EINTR && errno != EAGAIN) in_parent.reset();  // the child stopped reading
          if (sent == message.size()) in_parent.reset();  // end of the message: EOF on its stdin
        }
      }
      w = waitpid(pid, &status, WNOHANG);
      if (w != 0) exited = true;
    }
    if (err_parent.valid()) drain();
    if (!exited) {
      kill(pid, SIGKILL);
      w = waitpid(pid, &status, 0);
      if (timed_out)
        return {false, args[0] + " did not finish within " + std::to_string(opts_.timeout.count()) + " ms" +
                           tail(stderr_text)};
    }
    if (w < 0) return fail_errno("waitpid");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      if (sent != message.size()) return {false, args[0] + " exited 0 before reading the whole message"};
      return {true, {}};
    }
    if (WIFEXITED(status))
      return {false, args[0] + " exited with status " + std::to_string(WEXITSTATUS(status)) + tail(stderr_text)};
    return {false, args[0] + " killed by signal " + std::to_string(WIFSIGNALED(status) ? WTERMSIG(status) : 0) +
                       tail(stderr_text)};
  }

 private:
  static Delivery fail_errno(const char* what) { return {false, std::string(what) + ": " + std::strerror(errno)}; }
  static std::string tail(const std::string& text) {
    if (text.empty()) return {};
    std::string t = text.size() > 512 ? text.substr(0, 512) : text;
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    return ": " + t;
  }
  SendmailOptions opts_;
  std::vector<std::string> base_;
};

struct EasyFree { void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); } };
struct SlistFree { void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); } };

constexpr std::size_t kMaxResponse = 65536;

extern "C" std::size_t on_response(char*, std::size_t size, std::size_t n, void* user) noexcept {
  auto* seen = static_cast<std::size_t*>(user);
  *seen += size * n;
  return *seen > kMaxResponse ? 0 : size * n;  // the body is not used; only bounded
}
static_assert(noexcept(on_response(nullptr, 0, 0, nullptr)));

bool is_ip_literal(const std::string& host) {
  if (host.find(':') != std::string::npos) return true;
  for (char c : host)
    if (!((c >= '0' && c <= '9') || c == '.')) return false;
  return true;
}

class CurlPoster final : public HttpsPoster {
 public:
  CurlPoster(PostOptions o, dns::Resolver& resolver) : opts_(std::move(o)), resolver_(resolver) {
    static std::once_flag once;
    std::call_once(once, [] {
      if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("curl_global_init failed");
    });
    // libcurl reads the CA file at each handshake: say at start-up that it cannot.
    if (!opts_.ca_file.empty() && access(opts_.ca_file.c_str(), R_OK) != 0)
      throw std::runtime_error("cannot read ca-file " + opts_.ca_file);
  }

  Delivery post(const std::string& url, const std::string& body) override {
    std::string host;
    unsigned port = 443;
    if (!url_host_port(url, &host, &port)) return {false, "not an https: URL with a host"};
    // Connect only to the addresses our resolver gives: "host:port:a,b,[v6]".
    std::unique_ptr<curl_slist, SlistFree> pin;
    if (!is_ip_literal(host)) {
      std::vector<std::string> addresses;
      std::string why;
      for (auto family : {dns::AddressFamily::v4, dns::AddressFamily::v6}) {
        const dns::AddressAnswer a = resolver_.address(host, family);
        if (dns::is_failure(a.status)) why = std::string("address lookup failed: ") + dns::to_string(a.status);
        for (const auto& ip : a.addresses) addresses.push_back(ip);
      }
      if (addresses.empty()) return {false, why.empty() ? "no address for " + host : why};
      std::string entry = host + ":" + std::to_string(port) + ":";
      for (std::size_t i = 0; i < addresses.size(); ++i) {
        if (i) entry += ',';
        entry += addresses[i].find(':') != std::string::npos ? "[" + addresses[i] + "]" : addresses[i];
      }
      pin.reset(curl_slist_append(nullptr, entry.c_str()));
      if (!pin) return {false, "out of memory"};
    }
    std::unique_ptr<CURL, EasyFree> curl(curl_easy_init());
    if (!curl) return {false, "curl_easy_init failed"};
    std::unique_ptr<curl_slist, SlistFree> headers(curl_slist_append(nullptr, "Content-Type: application/tlsrpt+gzip"));
    if (!headers) return {false, "out of memory"};
    // No "Expect: 100-continue" round trip.
    curl_slist* more = curl_slist_append(headers.get(), "Expect:");
    if (!more) return {false, "out of memory"};
    std::size_t seen = 0;
    char errbuf[CURL_ERROR_SIZE] = {};
    CURL* c = curl.get();
    bool ok = true;
    auto set = [&](CURLcode rc) { ok = ok && rc == CURLE_OK; };
    set(curl_easy_setopt(c, CURLOPT_URL, url.c_str()));
    set(curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https"));
    set(curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https"));
    set(curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L));
    if (pin) set(curl_easy_setopt(c, CURLOPT_RESOLVE, pin.get()));
    set(curl_easy_setopt(c, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2)));
    set(curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L));
    set(curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L));
    if (!opts_.ca_file.empty()) {
      set(curl_easy_setopt(c, CURLOPT_CAINFO, opts_.ca_file.c_str()));
      set(curl_easy_setopt(c, CURLOPT_CAPATH, nullptr));
    }
    set(curl_easy_setopt(c, CURLOPT_PROXY, ""));
    set(curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L));
    set(curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout.count())));
    set(curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts_.connect_timeout.count())));
    set(curl_easy_setopt(c, CURLOPT_USERAGENT, opts_.user_agent.c_str()));
    set(curl_easy_setopt(c, CURLOPT_POST, 1L));
    set(curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data()));
    set(curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size())));
    set(curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get()));
    set(curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_response));
    set(curl_easy_setopt(c, CURLOPT_WRITEDATA, &seen));
    set(curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf));
    if (!ok) return {false, "libcurl rejected an option (too old?)"};
    const CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && status >= 200 && status < 300))
      return {false, errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc))};
    if (status >= 200 && status < 300) return {true, {}};
    if (status >= 300 && status < 400) return {false, "HTTP " + std::to_string(status) + " redirect (not followed)"};
    return {false, "HTTP status " + std::to_string(status)};
  }

 private:
  PostOptions opts_;
  dns::Resolver& resolver_;
};

}  // namespace

std::unique_ptr<MailSubmitter> make_sendmail(SendmailOptions opts) { return std::make_unique<Sendmail>(std::move(opts)); }
std::unique_ptr<HttpsPoster> make_https_poster(PostOptions opts, dns::Resolver& resolver) {
  return std::make_unique<CurlPoster>(std::move(opts), resolver);
}

bool url_host_port(const std::string& url, std::string* host, unsigned* port) {
  constexpr std::string_view scheme = "https://";
  if (url.size() <= scheme.size() || url.compare(0, scheme.size(), scheme) != 0) return false;
  const std::string rest = url.substr(scheme.size());
  const std::string authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.empty() || authority.find('@') != std::string::npos) return false;
  std::string h;
  std::string p;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string::npos) return false;
    h = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return false;
      p = authority.substr(close + 2);
    }
  } else {
    const auto colon = authority.find(':');
    h = authority.substr(0, colon);
    if (colon != std::string::npos) p = authority.substr(colon + 1);
  }
  if (h.empty()) return false;
  *port = 443;
  if (!p.empty()) {
    if (p.size() > 5) return false;
    unsigned v = 0;
    for (char c : p) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v == 0 || v > 65535) return false;
    *port = v;
  }
  for (char& c : h)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  *host = h;
  return true;
}

}  // namespace mtasts::reportd
