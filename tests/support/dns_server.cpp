// Test support: the DNS of the loopback world. A real dnsmasq answers every name (it is made
// authoritative for the whole tree, so unknown names get NXDOMAIN rather than REFUSED); names
// that must fail are forwarded to a responder thread here that answers SERVFAIL or nothing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <random>
#include <stdexcept>

#include "tests/support/world.hpp"

namespace mtasts::test {

namespace fs = std::filesystem;

namespace {

// dnsmasq config values are parsed with quotes and backslash escapes.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

sockaddr_in make_addr(const std::string& ip, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) throw std::invalid_argument("not an IPv4 address: " + ip);
  return a;
}

// Reads the question name starting at `off`; returns the offset after QTYPE/QCLASS, or 0 when
// the packet is malformed (compression is not allowed in a question of a query).
std::size_t read_question(const unsigned char* p, std::size_t len, std::size_t off, std::string& name) {
  name.clear();
  while (off < len) {
    const std::size_t l = p[off++];
    if (l == 0) return off + 4 <= len ? off + 4 : 0;
    if (l > 63 || off + l > len) return 0;
    if (!name.empty()) name += '.';
    name.append(reinterpret_cast<const char*>(p + off), l);
    off += l;
  }
  return 0;
}

}  // namespace

std::string TxtRecord::joined() const {
  std::string s;
  for (const auto& part : strings) s += part;
  return s;
}

DnsServer::DnsServer(std::string ip, std::uint16_t port, fs::path dir)
    : ip_(std::move(ip)), port_(port), dir_(std::move(dir)) {
  fs::create_directories(dir_);
}

DnsServer::~DnsServer() {
  try {
    stop();
  } catch (...) {
  }
  if (upstream_.joinable()) {
    const char c = 'q';
    (void)!::write(wake_fd_[1], &c, 1);
    upstream_.join();
  }
  for (int fd : {upstream_fd_, upstream_tcp_fd_, wake_fd_[0], wake_fd_[1]})
    if (fd >= 0) ::close(fd);
}

void DnsServer::add_txt(const std::string& name, TxtRecord record) { txt_[lower(name)].push_back(std::move(record)); }

void DnsServer::set_txt(const std::string& name, std::vector<TxtRecord> records) {
  if (records.empty())
    txt_.erase(lower(name));
  else
    txt_[lower(name)] = std::move(records);
}

void DnsServer::add_host(const std::string& name, const std::string& ip) { hosts_[lower(name)].push_back(ip); }

void DnsServer::add_cname(const std::string& name, const std::string& target) { cnames_[lower(name)] = lower(target); }

void DnsServer::add_mx(const std::string& domain, const std::string& host, int preference) {
  mx_.push_back({lower(domain), {lower(host), preference}});
}

void DnsServer::set_failure(const std::string& name, DnsFailure f) {
  std::lock_guard lock(mu_);
  if (f == DnsFailure::none)
    failures_.erase(lower(name));
  else
    failures_[lower(name)] = f;
}

void DnsServer::remove(const std::string& name_in) {
  const std::string name = lower(name_in);
  txt_.erase(name);
  hosts_.erase(name);
  cnames_.erase(name);
  std::erase_if(mx_, [&](const auto& m) { return m.first == name; });
  std::lock_guard lock(mu_);
  failures_.erase(name);
}

void DnsServer::clear() {
  txt_.clear();
  hosts_.clear();
  cnames_.clear();
  mx_.clear();
  std::lock_guard lock(mu_);
  failures_.clear();
}

void DnsServer::write_config() const {
  std::string c;
  c += "# Written by tests/support/dns_server.cpp; rewritten on every apply().\n";
  c += "listen-address=" + ip_ + "\nport=" + std::to_string(port_) + "\nbind-interfaces\n";
  c += "no-resolv\nno-hosts\nno-poll\n";
  // No cache: a record changed by a test must be visible on the next query.
  c += "cache-size=0\nno-negcache\nlocal-ttl=0\n";
  c += "log-queries\nlog-facility=" + query_log().string() + "\n";
  c += "pid-file=" + (dir_ / "dnsmasq.pid").string() + "\n";
  // Stay root: the log file in our directory stays writable, and no credential change clears
  // the parent-death signal (see start()).
  if (::geteuid() == 0) c += "user=root\ngroup=root\n";
  c += "local=/#/\n";
  std::set<std::string> failing;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, f] : failures_) {
      failing.insert(name);
      c += "server=/" + name + "/" + ip_ + "#" + std::to_string(upstream_port_) + "\n";
    }
  }
  for (const auto& [name, records] : txt_) {
    if (failing.count(name)) continue;
    for (const auto& r : records) {
      c += "txt-record=" + name;
      for (const auto& s : r.strings) c += "," + quoted(s);
      c += "\n";
    }
  }
  for (const auto& [name, ips] : hosts_) {
    if (failing.count(name)) continue;
    c += "host-record=" + name;
    for (const auto& ip : ips) c += "," + ip;
    c += "\n";
  }
  for (const auto& [name, target] : cnames_)
    if (!failing.count(name)) c += "cname=" + name + "," + target + "\n";
  for (const auto& [domain, mx] : mx_)
    if (!failing.count(domain)) c += "mx-host=" + domain + "," + mx.first + "," + std::to_string(mx.second) + "\n";
  const fs::path tmp = dir_ / "dnsmasq.conf.tmp";
  write_file(tmp, c);
  fs::rename(tmp, config_file());
}

void DnsServer::start_upstream() {
  if (upstream_.joinable()) return;
  // TCP first on any free port, then UDP on the same number: dnsmasq's server= line names
  // one port for both.
  upstream_tcp_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  upstream_fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (upstream_fd_ < 0 || upstream_tcp_fd_ < 0) throw std::runtime_error("DnsServer: socket failed");
  sockaddr_in a = make_addr(ip_, 0);
  if (::bind(upstream_tcp_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(upstream_tcp_fd_, 16) != 0)
    throw std::runtime_error("DnsServer: bind " + ip_ + ":0/tcp failed: " + std::strerror(errno));
  socklen_t alen = sizeof a;
  ::getsockname(upstream_tcp_fd_, reinterpret_cast<sockaddr*>(&a), &alen);
  upstream_port_ = ntohs(a.sin_port);
  if (::bind(upstream_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("DnsServer: bind " + ip_ + ":" + std::to_string(upstream_port_) +
                             "/udp failed: " + std::strerror(errno));
  if (::pipe2(wake_fd_, O_CLOEXEC) != 0) throw std::runtime_error("DnsServer: pipe failed");
  upstream_ = std::thread([this] { upstream_loop(); });
}

std::vector<unsigned char> DnsServer::upstream_answer(const unsigned char* q, std::size_t len) {
  ++upstream_queries_;
  std::string name;
  const std::size_t qend = len >= 12 ? read_question(q, len, 12, name) : 0;
  if (qend == 0) return {};
  name = lower(name);
  DnsFailure what = DnsFailure::timeout;  // forwarded but unknown here: stay silent
  {
    std::lock_guard lock(mu_);
    // The configured name or any name below it, as dnsmasq's server=/name/ matches.
    for (std::string n = name;;) {
      if (auto it = failures_.find(n); it != failures_.end()) {
        what = it->second;
        break;
      }
      const auto dot = n.find('.');
      if (dot == std::string::npos) break;
      n = n.substr(dot + 1);
    }
  }
  if (what != DnsFailure::servfail) return {};
  // Header: same id, QR set, opcode and RD copied, RA set, RCODE 2; the question echoed.
  std::vector<unsigned char> out(q, q + qend);
  out[2] = static_cast<unsigned char>(0x80 | (q[2] & 0x79));
  out[3] = 0x80 | 2;
  out[4] = 0;
  out[5] = 1;
  std::fill(out.begin() + 6, out.begin() + 12, 0);
  return out;
}

void DnsServer::upstream_loop() {
  struct Conn {
    int fd;
    std::vector<unsigned char> in;
  };
  std::vector<Conn> conns;
  unsigned char buf[4096];
  for (;;) {
    std::vector<pollfd> fds = {{wake_fd_[0], POLLIN, 0}, {upstream_fd_, POLLIN, 0}, {upstream_tcp_fd_, POLLIN, 0}};
    for (const auto& c : conns) fds.push_back({c.fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) break;
    if (fds[1].revents & POLLIN) {
      sockaddr_in from{};
      socklen_t flen = sizeof from;
      const ssize_t n = ::recvfrom(upstream_fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
      if (n > 0) {
        const auto reply = upstream_answer(buf, static_cast<std::size_t>(n));
        if (!reply.empty())
          (void)::sendto(upstream_fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
      }
    }
    if (fds[2].revents & POLLIN) {
      const int fd = ::accept4(upstream_tcp_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) conns.push_back({fd, {}});
    }
    // TCP messages carry a two-byte length prefix. A timeout name keeps its connection open
    // and silent until the peer gives up.
    for (std::size_t i = 3; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      Conn& c = conns[i - 3];
      const ssize_t n = ::read(c.fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(c.fd);
        c.fd = -1;
        continue;
      }
      c.in.insert(c.in.end(), buf, buf + n);
      while (c.in.size() >= 2) {
        const std::size_t mlen = (std::size_t{c.in[0]} << 8) | c.in[1];
        if (c.in.size() < 2 + mlen) break;
        auto reply = upstream_answer(c.in.data() + 2, mlen);
        c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(2 + mlen));
        if (reply.empty()) continue;
        const unsigned char prefix[2] = {static_cast<unsigned char>(reply.size() >> 8),
                                         static_cast<unsigned char>(reply.size() & 0xff)};
        reply.insert(reply.begin(), prefix, prefix + 2);
        (void)!::write(c.fd, reply.data(), reply.size());
      }
    }
    std::erase_if(conns, [](const Conn& c) { return c.fd < 0; });
  }
  for (const auto& c : conns) ::close(c.fd);
}

std::optional<int> DnsServer::probe(const std::string& name, std::uint16_t qtype,
                                    std::chrono::milliseconds timeout) const {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  std::vector<unsigned char> q(12, 0);
  static std::mt19937 rng{std::random_device{}()};
  const auto id = static_cast<std::uint16_t>(rng());
  q[0] = static_cast<unsigned char>(id >> 8);
  q[1] = static_cast<unsigned char>(id & 0xff);
  q[2] = 0x01;  // RD
  q[5] = 1;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    const std::size_t l = dot - start;
    if (l > 0) {
      q.push_back(static_cast<unsigned char>(l));
      q.insert(q.end(), name.begin() + static_cast<std::ptrdiff_t>(start), name.begin() + static_cast<std::ptrdiff_t>(dot));
    }
    start = dot + 1;
  }
  q.push_back(0);
  q.push_back(static_cast<unsigned char>(qtype >> 8));
  q.push_back(static_cast<unsigned char>(qtype & 0xff));
  q.push_back(0);
  q.push_back(1);
  sockaddr_in to = make_addr(ip_, port_);
  std::optional<int> rcode;
  // Connected, so that a port nobody listens on yet fails at once (ECONNREFUSED) instead of
  // costing the whole timeout.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0 &&
      ::send(fd, q.data(), q.size(), 0) == static_cast<ssize_t>(q.size())) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      unsigned char buf[4096];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n >= 12 && buf[0] == q[0] && buf[1] == q[1] && (buf[2] & 0x80)) {
        rcode = buf[3] & 0x0f;
        break;
      }
      if (n < 0) break;  // e.g. ECONNREFUSED: nothing listens yet
    }
  }
  ::close(fd);
  return rcode;
}

void DnsServer::start() {
  if (proc_ && proc_->running()) return;
  start_upstream();
  write_config();
  // setpriv: if the test process dies without its destructors (a crash, a ctest timeout),
  // the server gets SIGTERM instead of living on as an orphan holding the address.
  proc_ = std::make_unique<Process>(
      std::vector<std::string>{"setpriv", "--pdeathsig", "TERM", "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                               "--conf-file=" + config_file().string()},
      dir_ / "dnsmasq.out");
  const bool up = wait_until(
      [&] { return !proc_->running() || probe("ready.probe.invalid", 1, std::chrono::milliseconds(100)).has_value(); },
      std::chrono::seconds(5));
  if (!up || !proc_->running())
    throw std::runtime_error("dnsmasq did not start on " + resolver() + "; see " + (dir_ / "dnsmasq.out").string() +
                             ":\n" + read_file(dir_ / "dnsmasq.out"));
}

void DnsServer::apply() {
  if (!proc_) return;
  stop();
  start();
}

void DnsServer::stop() {
  if (proc_) proc_->stop();
  proc_.reset();
}

bool DnsServer::running() { return proc_ && proc_->running(); }

std::string DnsServer::resolver() const { return ip_ + ":" + std::to_string(port_); }

}  // namespace mtasts::test
