// End-to-end environment for delivery-time enforcement; see delivery_world.hpp.
#include "tests/e2e/deliver/delivery_world.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

#include "common/domain.hpp"
#include "tests/e2e/milter/mail_env.hpp"
#include "tests/integration/milter/harness.hpp"

namespace mtasts::test::e2e {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct DomainDef {
  std::string label;
  std::string mode;                    // "" : no MTA-STS at all
  std::vector<std::string> patterns;   // policy mx lines
  std::vector<std::string> mx;         // MX records, in preference order
};

// See the table in delivery_world.hpp.
const std::vector<DomainDef>& domains() {
  static const std::vector<DomainDef> d = {
      {"good", "enforce", {dlv("mx.good")}, {dlv("mx.good")}},
      {"notls", "enforce", {dlv("mx.notls")}, {dlv("mx.notls")}},
      {"untrusted", "enforce", {dlv("mx.untrusted")}, {dlv("mx.untrusted")}},
      {"wrongname", "enforce", {dlv("mx.wrongname")}, {dlv("mx.wrongname")}},
      {"offpolicy", "enforce", {dlv("mx.offpolicy")}, {dlv("mx.elsewhere")}},
      {"wild", "enforce", {"*." + dlv("mx.wild")}, {dlv("a.mx.wild")}},
      {"deep", "enforce", {"*." + dlv("mx.deep")}, {dlv("a.b.mx.deep")}},
      {"mixed", "enforce", {dlv("mx1.mixed"), dlv("mx2.mixed")}, {dlv("mx1.mixed"), dlv("mx2.mixed")}},
      {"testing", "testing", {dlv("mx.testing")}, {dlv("mx.testing")}},
      {"shared", "enforce", {dlv("mx.testing")}, {dlv("mx.testing")}},
      {"multi", "enforce", {dlv("mx.multi")}, {dlv("mx.multi")}},
      {"nopolicy", "", {}, {dlv("mx.nopolicy")}},
  };
  return d;
}

// Every MX host and what it offers (cert nullopt: no STARTTLS).
struct MxDef {
  std::string host;
  std::optional<CertKind> cert;
  std::vector<std::string> extra_names{};
};
const std::vector<MxDef>& mx_hosts() {
  static const std::vector<MxDef> h = {
      {dlv("mx.good"), CertKind::valid},
      {dlv("mx.notls"), std::nullopt},
      {dlv("mx.untrusted"), CertKind::untrusted},
      {dlv("mx.wrongname"), CertKind::wrong_name},
      {dlv("mx.elsewhere"), CertKind::valid},
      {dlv("mx.offpolicy"), CertKind::valid},
      {dlv("a.mx.wild"), CertKind::valid},
      {dlv("a.b.mx.deep"), CertKind::valid},
      {dlv("mx1.mixed"), CertKind::wrong_name},
      {dlv("mx2.mixed"), CertKind::valid},
      {dlv("mx.testing"), CertKind::wrong_name},
      {dlv("mx.nopolicy"), std::nullopt},
      {dlv("mx.multi"), CertKind::valid, {dlv("mx.testing")}},
  };
  return h;
}

bool accepts(const std::string& ip, unsigned port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// The binary under test: MTASTS_TLSMAP_BIN in the environment (e.g. an installed one) or the
// one built here.
std::string tlsmap_binary() {
  const char* env = std::getenv("MTASTS_TLSMAP_BIN");
  return env && *env ? env : MTASTS_TLSMAP_BIN;
}

std::string tail(const std::string& s, std::size_t n) { return s.size() > n ? s.substr(s.size() - n) : s; }

}  // namespace

bool DeliveryWorld::available(std::string& why) {
  if (!NetNamespace::available(why)) return false;
  if (run({"/usr/bin/python3", "-c", "import aiosmtpd"}, 30s).exit_code != 0) {
    why = "python3-aiosmtpd is not installed (scripts/install-deps.sh)";
    return false;
  }
  if (!fs::exists(tlsmap_binary())) {
    why = "mta-sts-tlsmap is not built: " + tlsmap_binary();
    return false;
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> DeliveryWorld::domain_modes() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& d : domains()) out.emplace_back(dlv(d.label), d.mode);
  return out;
}

DeliveryWorld::DeliveryWorld(DeliveryOptions o) : ip_(World::unique_loopback_ip()) {
  ns_ = std::make_unique<NetNamespace>(ip_);
  world_ = std::make_unique<World>(WorldOptions{.ip = ip_, .dir = dir() / "world", .redis = true});

  // Certificates first, all at once (openssl runs are the slow part of the set-up).
  std::vector<std::pair<std::string, CertKind>> leaves;
  for (const auto& m : mx_hosts())
    if (m.cert && m.extra_names.empty()) leaves.emplace_back(m.host, *m.cert);
  world_->ca().prepare(leaves);
  unsigned n = 10;
  for (const auto& m : mx_hosts()) {
    mx_ip_[m.host] = "127.25.0." + std::to_string(n++);
    fs::create_directories(dir() / "mx" / m.host);
    mx_[m.host] = std::make_unique<SmtpMx>(m.host, mx_ip_.at(m.host), m.cert, world_->ca(), dir() / "mx" / m.host,
                                           m.extra_names);
  }

  std::string warm;
  {
    auto batch = world_->batch();
    for (const auto& d : domains()) {
      const std::string domain = dlv(d.label);
      DomainSpec spec{.mx = d.mx};
      if (d.mode.empty()) {
        spec.policy_host = false;
      } else {
        spec.txt = {"v=STSv1; id=dlv" + d.label + "1;"};
        spec.policy = World::policy(d.mode, d.patterns, 86400);
      }
      world_->add_domain(domain, spec);
      warm += domain + "\n";
    }
    for (const auto& [host, ip] : mx_ip_) world_->dns().add_host(host, ip);
  }
  world_->start();
  for (auto& [host, mx] : mx_) mx->wait_ready();

  write_file(dir() / "warm.list", warm);
  write_file(dir() / "cached.conf",
             "[redis]\naddress = " + world_->redis().address() + "\n[cached]\nlog = stderr\nlog-level = debug\n"
             "resolver = " + world_->resolver() + "\nca-file = " + world_->ca_file().string() + "\n"
             "warm-list = " + (dir() / "warm.list").string() + "\n"
             "dns-timeout = 500ms\ndns-retries = 1\nfetch-timeout = 10s\nconnect-timeout = 5s\n"
             "poll-interval = 20ms\nrefresh-jitter = 0\nfetcher-id = dlv\n");
  fetcher_ = std::make_unique<Process>(
      std::vector<std::string>{MTASTS_CACHED_BIN, "--config=" + (dir() / "cached.conf").string()}, dir() / "cached.log");
  // Every domain known (a policy, or a negative entry) before any mail is sent.
  const bool filled = wait_until(
      [&] {
        try {
          CacheFiller f(world_->redis().address());
          const SysTime now = SystemClock().now();
          for (const auto& d : domains()) {
            auto e = f.store().get(*Domain::parse(dlv(d.label)).domain);
            if (!e || verdict(*e, now) == Verdict::unknown) return false;
          }
          return true;
        } catch (const std::exception&) {
          return false;
        }
      },
      60s);
  if (!filled) throw std::runtime_error("the fetcher did not fill the cache; its log:\n" + tail(fetcher_log(), 8000));

  tlsmap_port_ = free_port();
  std::string conf = "[redis]\naddress = " + world_->redis().address() +
                     "\n[tlsmap]\nlisten = inet:" + tlsmap_host_port() +
                     "\nlog = stderr\nlog-level = debug\nresolver = " + world_->resolver() +
                     "\ndns-timeout = 1000ms\n";
  for (const auto& l : o.tlsmap_lines) conf += l + "\n";
  write_file(dir() / "tlsmap.conf", conf);
  tlsmap_ = std::make_unique<Process>(
      std::vector<std::string>{tlsmap_binary(), "--config=" + (dir() / "tlsmap.conf").string()}, dir() / "tlsmap.log");
  if (!wait_until([&] { return !tlsmap_->running() || accepts("127.0.0.1", tlsmap_port_); }, 15s) ||
      !tlsmap_->running())
    throw std::runtime_error("mta-sts-tlsmap did not start; its log:\n" + tlsmap_log());
}

DeliveryWorld::~DeliveryWorld() {
  if (tlsmap_) tlsmap_->stop(10s);
  if (fetcher_) fetcher_->stop(20s);
  mx_.clear();
  world_.reset();
  ns_.reset();
}

SmtpMx& DeliveryWorld::mx(const std::string& host) { return *mx_.at(host); }

std::vector<std::string> DeliveryWorld::hosts_that_received(const std::string& needle) const {
  std::vector<std::string> out;
  for (const auto& [host, mx] : mx_)
    if (mx->received(needle)) out.push_back(host);
  return out;
}

void DeliveryWorld::set_mx(const std::string& domain, const std::vector<std::string>& hosts) {
  // The domain's own name holds only its MX records: its TXT and policy host are other names.
  auto& dns = world_->dns();
  dns.remove(domain);
  for (std::size_t i = 0; i < hosts.size(); ++i) dns.add_mx(domain, hosts[i], static_cast<int>(10 * (i + 1)));
  dns.apply();
}

void DeliveryWorld::restore() {
  for (const auto& m : mx_hosts())
    if (mx_.at(m.host)->cert() != m.cert) mx_.at(m.host)->restart(m.cert);
  auto& dns = world_->dns();
  for (const auto& d : domains()) {
    dns.remove(dlv(d.label));
    for (std::size_t i = 0; i < d.mx.size(); ++i) dns.add_mx(dlv(d.label), d.mx[i], static_cast<int>(10 * (i + 1)));
  }
  dns.apply();
}

std::string DeliveryWorld::socketmap(const std::string& map, const std::string& key) const {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(tlsmap_port_));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  const std::string payload = map + " " + key;
  const std::string request = std::to_string(payload.size()) + ":" + payload + ",";
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
    std::string in;
    char buf[4096];
    for (;;) {
      const auto colon = in.find(':');
      if (colon != std::string::npos) {
        const std::size_t len = std::stoul(in.substr(0, colon));
        if (in.size() >= colon + 1 + len + 1) {
          reply = in.substr(colon + 1, len);
          break;
        }
      }
      const ssize_t k = ::recv(fd, buf, sizeof buf, 0);
      if (k <= 0) break;
      in.append(buf, static_cast<std::size_t>(k));
    }
  }
  ::close(fd);
  return reply;
}

std::string DeliveryWorld::logs() const {
  return "--- tlsmap log (tail):\n" + tail(tlsmap_log(), 6000) + "--- fetcher log (tail):\n" + tail(fetcher_log(), 4000);
}

}  // namespace mtasts::test::e2e
