// Test support: the HTTPS side of the loopback world. A real nginx with one TLS server block
// per virtual host (chosen by SNI), so that the client's certificate checks, status handling,
// media type checks and size and time limits meet a real server, not a fake.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "tests/support/world.hpp"

namespace mtasts::test {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kOversizedBytes = 100 * 1024;  // well over the 64 KiB cap
constexpr std::size_t kSlowBytes = 64000;             // under the cap: only the time limit fails it
constexpr const char* kSlowRate = "4k";               // 64000 bytes at 4 KiB/s: about 16 s
constexpr std::size_t kSluggishBytes = 20000;         // at the same rate: about 5 s

// Pads a policy with unknown keys (ignored by RFC 8461 parsers) to exactly `size` bytes.
std::string pad(const std::string& body, std::size_t size) {
  const std::string eol = body.find("\r\n") != std::string::npos ? "\r\n" : "\n";
  std::string out = body;
  if (!out.empty() && out.back() != '\n') out += eol;
  while (out.size() < size) out += "x-padding: " + std::string(64, 'x') + eol;
  if (out.size() > size && body.size() < size) out.resize(size);
  return out;
}

void write_atomically(const fs::path& p, const std::string& content) {
  const fs::path tmp = p.string() + ".tmp";
  write_file(tmp, content);
  fs::rename(tmp, p);  // nginx opens the file per request: it sees the old or the new body
}

bool can_connect(const std::string& ip, std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

const char* to_string(Behaviour b) noexcept {
  switch (b) {
    case Behaviour::serve: return "serve";
    case Behaviour::charset: return "charset";
    case Behaviour::redirect: return "redirect";
    case Behaviour::wrong_type: return "wrong-type";
    case Behaviour::no_type: return "no-type";
    case Behaviour::not_found: return "not-found";
    case Behaviour::server_error: return "server-error";
    case Behaviour::oversized: return "oversized";
    case Behaviour::slow: return "slow";
    case Behaviour::sluggish: return "sluggish";
  }
  return "?";
}

std::optional<Behaviour> behaviour_from_string(const std::string& s) {
  for (Behaviour b : {Behaviour::serve, Behaviour::charset, Behaviour::redirect, Behaviour::wrong_type,
                      Behaviour::no_type, Behaviour::not_found, Behaviour::server_error, Behaviour::oversized,
                      Behaviour::slow, Behaviour::sluggish}) {
    std::string name = to_string(b);
    std::string underscored = name;
    std::replace(underscored.begin(), underscored.end(), '-', '_');
    if (s == name || s == underscored) return b;
  }
  return std::nullopt;
}

HttpsServer::HttpsServer(std::string ip, TestCa& ca, fs::path dir, std::uint16_t port)
    : ip_(std::move(ip)), ca_(ca), dir_(std::move(dir)), port_(port) {
  fs::create_directories(dir_ / "www");
  fs::create_directories(dir_ / "tmp");
}

HttpsServer::~HttpsServer() {
  try {
    stop();
  } catch (...) {
  }
}

void HttpsServer::write_bodies(const VirtualHost& h) const {
  // Flat file names (www/<host>.<variant>): one directory per host would cost a mkdir each.
  const std::string www = (dir_ / "www" / h.name).string();
  write_atomically(www + ".policy.txt", h.body);
  // The padded variants only where they are served: thousands of hosts would otherwise cost
  // 160 KiB of writes each.
  if (h.behaviour == Behaviour::oversized) write_atomically(www + ".oversized.txt", pad(h.body, kOversizedBytes));
  if (h.behaviour == Behaviour::slow) write_atomically(www + ".slow.txt", pad(h.body, kSlowBytes));
  if (h.behaviour == Behaviour::sluggish) write_atomically(www + ".sluggish.txt", pad(h.body, kSluggishBytes));
}

void HttpsServer::add_host(VirtualHost host) {
  if (host.name.empty()) throw std::invalid_argument("HttpsServer::add_host: empty name");
  // A host added on its own leaves any group it was in.
  for (auto& g : groups_) std::erase(g.names, host.name);
  write_bodies(host);
  hosts_[host.name] = std::move(host);
}

void HttpsServer::add_hosts(const std::vector<VirtualHost>& hosts) {
  // One certificate per chunk keeps certificates small and server blocks few.
  constexpr std::size_t kChunk = 100;
  std::map<std::pair<CertKind, Behaviour>, std::vector<std::string>> by_kind;
  for (const auto& h : hosts) {
    add_host(h);
    if (h.redirect_to.empty()) by_kind[{h.cert, h.behaviour}].push_back(h.name);
  }
  for (const auto& [kind, names] : by_kind)
    for (std::size_t i = 0; i < names.size(); i += kChunk)
      groups_.push_back(Group{{names.begin() + static_cast<std::ptrdiff_t>(i),
                               names.begin() + static_cast<std::ptrdiff_t>(std::min(i + kChunk, names.size()))},
                              kind.first, kind.second});
}

void HttpsServer::remove_host(const std::string& name) {
  hosts_.erase(name);
  for (auto& g : groups_) std::erase(g.names, name);
}

void HttpsServer::set_behaviour(const std::string& name, Behaviour b) {
  auto& h = hosts_.at(name);
  h.behaviour = b;
  write_bodies(h);
}

void HttpsServer::set_cert(const std::string& name, CertKind k) { hosts_.at(name).cert = k; }

void HttpsServer::set_body(const std::string& name, const std::string& body) {
  auto& h = hosts_.at(name);
  h.body = body;
  write_bodies(h);
}

fs::path HttpsServer::body_file(const std::string& name) const { return dir_ / "www" / (name + ".policy.txt"); }

std::string HttpsServer::url(const std::string& host) const {
  return "https://" + host + (port_ == 443 ? "" : ":" + std::to_string(port_)) + "/.well-known/mta-sts.txt";
}

void HttpsServer::write_config() {
  // Certificates first, generated in parallel.
  std::vector<std::pair<std::string, CertKind>> wanted{{"default.invalid", CertKind::valid}};
  std::set<std::string> grouped;
  for (const auto& g : groups_)
    for (const auto& n : g.names) {
      const auto& h = hosts_.at(n);
      if (h.cert == g.cert && h.behaviour == g.behaviour && h.redirect_to.empty()) grouped.insert(n);
    }
  for (const auto& [name, h] : hosts_)
    if (!grouped.count(name)) wanted.emplace_back(name, h.cert);
  ca_.prepare(wanted);
  // Group certificates (many SANs each) too, a few openssl processes at a time.
  {
    std::atomic<std::size_t> next{0};
    std::mutex err_mu;
    std::string error;
    std::vector<std::thread> pool;
    for (std::size_t w = 0; w < std::min<std::size_t>(groups_.size(), 4); ++w)
      pool.emplace_back([&] {
        for (std::size_t i = next++; i < groups_.size(); i = next++) {
          try {
            if (!groups_[i].names.empty()) ca_.leaf_for_names(groups_[i].names, groups_[i].cert);
          } catch (const std::exception& e) {
            std::lock_guard lock(err_mu);
            error = e.what();
          }
        }
      });
    for (auto& t : pool) t.join();
    if (!error.empty()) throw std::runtime_error(error);
  }

  const std::string d = dir_.string();
  const std::string listen = "  listen " + ip_ + ":" + std::to_string(port_) + " ssl";
  std::ostringstream c;
  c << "# Written by tests/support/https_server.cpp; rewritten on every apply().\n"
    << "daemon off;\nmaster_process on;\nworker_processes 1;\n"
    << "pid " << d << "/nginx.pid;\nerror_log " << d << "/error.log notice;\n";
  // Workers must read the bodies in our directory; as root, nginx would otherwise use nobody.
  if (::geteuid() == 0) c << "user root;\n";
  c << "worker_rlimit_nofile 20000;\nevents { worker_connections 8192; }\n"
    << "http {\n"
    << "  log_format mtasts '$ssl_server_name $host $status $body_bytes_sent \"$request\" $msec $request_time';\n"
    << "  access_log " << d << "/access.log mtasts;\n"
    << "  client_body_temp_path " << d << "/tmp/body;\n  proxy_temp_path " << d << "/tmp/proxy;\n"
    << "  fastcgi_temp_path " << d << "/tmp/fastcgi;\n  uwsgi_temp_path " << d << "/tmp/uwsgi;\n"
    << "  scgi_temp_path " << d << "/tmp/scgi;\n"
    << "  server_tokens off;\n  ssl_protocols TLSv1.2 TLSv1.3;\n  keepalive_timeout 5s;\n"
    << "  server_names_hash_bucket_size 128;\n  server_names_hash_max_size 65536;\n";
  const CertFiles def = ca_.leaf("default.invalid", CertKind::valid);
  c << "  server {\n" << listen << " default_server;\n  server_name _;\n"
    << "  ssl_certificate " << def.cert.string() << ";\n  ssl_certificate_key " << def.key.string() << ";\n"
    << "  return 421;\n  }\n";

  auto location = [&](Behaviour b, const std::string& www, const std::string& redirect) {
    std::string l = "  location = /.well-known/mta-sts.txt {\n";
    auto file = [&](const std::string& type, const std::string& name) {
      return "    types { }\n    default_type " + type + ";\n    alias " + www + "." + name + ";\n";
    };
    switch (b) {
      case Behaviour::serve: l += file("text/plain", "policy.txt"); break;
      case Behaviour::charset: l += file("text/plain", "policy.txt") + "    charset utf-8;\n"; break;
      case Behaviour::redirect: l += "    return 301 " + redirect + ";\n"; break;
      case Behaviour::wrong_type: l += file("text/html", "policy.txt"); break;
      // An empty type makes nginx omit the header altogether.
      case Behaviour::no_type: l += file("\"\"", "policy.txt"); break;
      case Behaviour::not_found: l += "    return 404;\n"; break;
      case Behaviour::server_error: l += "    return 500;\n"; break;
      case Behaviour::oversized: l += file("text/plain", "oversized.txt"); break;
      case Behaviour::slow:
        l += file("text/plain", "slow.txt") + "    limit_rate " + kSlowRate + ";\n    limit_rate_after 0;\n";
        break;
      case Behaviour::sluggish:
        l += file("text/plain", "sluggish.txt") + "    limit_rate " + kSlowRate + ";\n    limit_rate_after 0;\n";
        break;
    }
    l += "  }\n";
    // The redirect target: serving the policy there proves a client did not follow it.
    l += "  location = /policy.txt {\n" + file("text/plain", "policy.txt") + "  }\n";
    l += "  location / { return 404; }\n";
    return l;
  };
  auto server = [&](const std::string& names, const CertFiles& cert, const std::string& body) {
    c << "  server {\n" << listen << ";\n  server_name " << names << ";\n"
      << "  ssl_certificate " << cert.cert.string() << ";\n  ssl_certificate_key " << cert.key.string() << ";\n"
      << body << "  }\n";
  };
  for (const auto& [name, h] : hosts_) {
    if (grouped.count(name)) continue;
    const std::string redirect = h.redirect_to.empty() ? "https://" + name + "/policy.txt" : h.redirect_to;
    server(name, ca_.leaf(name, h.cert), location(h.behaviour, d + "/www/" + name, redirect));
  }
  for (const auto& g : groups_) {
    std::string names;
    for (const auto& n : g.names)
      if (grouped.count(n)) names += (names.empty() ? "" : " ") + n;
    if (names.empty()) continue;
    server(names, ca_.leaf_for_names(g.names, g.cert),
           location(g.behaviour, d + "/www/$host", "https://$host/policy.txt"));
  }
  c << "}\n";
  const fs::path tmp = dir_ / "nginx.conf.tmp";
  write_file(tmp, c.str());
  fs::rename(tmp, dir_ / "nginx.conf");
}

void HttpsServer::start() {
  if (proc_ && proc_->running()) return;
  write_config();
  const std::string d = dir_.string();
  // setpriv: if the test process dies without its destructors (a crash, a ctest timeout),
  // the server gets SIGTERM instead of living on as an orphan holding the address.
  proc_ = std::make_unique<Process>(
      std::vector<std::string>{"setpriv", "--pdeathsig", "TERM", "nginx", "-p", d, "-c", d + "/nginx.conf", "-e", d + "/error.log"},
      dir_ / "nginx.out");
  const bool up =
      wait_until([&] { return !proc_->running() || can_connect(ip_, port_); }, std::chrono::seconds(5));
  if (!up || !proc_->running())
    throw std::runtime_error("nginx did not start on " + ip_ + ":" + std::to_string(port_) + "; see " +
                             error_log().string() + ":\n" + read_file(error_log()) + read_file(dir_ / "nginx.out"));
}

void HttpsServer::apply() {
  if (!proc_) return;
  stop();
  start();
}

void HttpsServer::stop() {
  if (proc_) proc_->stop();
  proc_.reset();
}

bool HttpsServer::running() { return proc_ && proc_->running(); }

std::size_t HttpsServer::requests(const std::string& host) const {
  std::ifstream in(access_log());
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string sni, h;
    fields >> sni >> h;
    if (h == host && line.find(" /.well-known/mta-sts.txt ") != std::string::npos) ++n;
  }
  return n;
}

}  // namespace mtasts::test
