// End-to-end environment for delivery-time enforcement; see delivery_world.hpp.
#include "tests/e2e/deliver/delivery_world.hpp"

#include <csignal>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include "common/sts/domain.hpp"
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
      {"wcert", "enforce", {dlv("mx.wcert")}, {dlv("mx.wcert")}},
      {"wdeep", "enforce", {dlv("a.mx.wdeep")}, {dlv("a.mx.wdeep")}},
      {"nopolicy", "", {}, {dlv("mx.nopolicy")}},
      {"keyword", "enforce", {"hostname"}, {dlv("mx.keyword")}},
      {"expired", "enforce", {dlv("mx.expired")}, {dlv("mx.expired")}},
      {"selfsigned", "enforce", {dlv("mx.selfsigned")}, {dlv("mx.selfsigned")}},
      {"nosts", "", {}, {dlv("mx.nosts")}},
  };
  return d;
}

// Every MX host and what it offers (cert nullopt: no STARTTLS).
struct MxDef {
  std::string host;
  std::optional<CertKind> cert;
  std::vector<std::string> cert_names{};  // empty: the host's own name
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
      {dlv("mx.multi"), CertKind::valid, {dlv("mx.multi"), dlv("mx.testing")}},
      {dlv("mx.wcert"), CertKind::valid, {"*." + dlv("wcert")}},
      {dlv("a.mx.wdeep"), CertKind::valid, {"*." + dlv("wdeep")}},
      {dlv("mx.keyword"), CertKind::valid},
      {dlv("mx.expired"), CertKind::expired},
      {dlv("mx.selfsigned"), CertKind::self_signed},
      {dlv("mx.nosts"), CertKind::valid},
  };
  return h;
}

// The DNSSEC world (DeliveryOptions::dane): its MX hosts, their addresses and TLSA records.
constexpr const char* kNsdIp = "127.0.2.53";
struct DaneMx {
  std::string host;
  std::string ip;
  // matching: TLSA 3 1 1 of its key; other_key: 3 1 1 of another key; pkix: only 1 1 1 of its
  // key (PKIX-EE, unusable for SMTP); bogus: 3 1 1 of its key, altered after signing (the
  // validating resolver answers SERVFAIL).
  enum { matching, other_key, none, pkix, bogus } tlsa;
  bool starttls = true;
  std::string cname_to{};  // the name is a (signed) CNAME to this name in the unsigned dlv.test
};
const std::vector<DaneMx>& dane_mx() {
  static const std::vector<DaneMx> h = {
      {"mx.full.dane.test", "127.25.1.10", DaneMx::matching},
      {"mx.bad.dane.test", "127.25.1.11", DaneMx::other_key},
      {"mx1.some.dane.test", "127.25.1.12", DaneMx::matching},
      {"mx2.some.dane.test", "127.25.1.13", DaneMx::none},
      {"mx.plain.dane.test", "127.25.1.14", DaneMx::matching, false},
      {"mx1.partial.dane.test", "127.25.1.15", DaneMx::none, false},
      {"mx2.partial.dane.test", "127.25.1.16", DaneMx::matching},
      {"mx.pkix.dane.test", "127.25.1.17", DaneMx::pkix},
      {"mx.insecure.dane.test", "127.25.1.18", DaneMx::matching, true, "mxhost.insecure.dlv.test"},
      {"mx1.bogus.dane.test", "127.25.1.19", DaneMx::bogus},
      {"mx2.bogus.dane.test", "127.25.1.20", DaneMx::none},
      {"mx1.bogusdane.dane.test", "127.25.1.21", DaneMx::bogus},
      {"mx2.bogusdane.dane.test", "127.25.1.22", DaneMx::matching},
  };
  return h;
}

// DeliveryOptions::tlsrpt: the report sinks.
const std::string kReportMx = dlv("mx.reports");
constexpr const char* kReportMxIp = "127.25.2.1";
constexpr const char* kReportHttpsIp = "127.25.2.2";

// The SHA-256 of a certificate's public key (DER SubjectPublicKeyInfo): TLSA 3 1 1 data.
std::string spki_sha256(const fs::path& cert) {
  const RunResult r = run({"sh", "-c",
                           "openssl x509 -in '" + cert.string() +
                               "' -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r"},
                          30s);
  const std::string digest = r.out.substr(0, r.out.find(' '));
  if (r.exit_code != 0 || digest.size() != 64) throw std::runtime_error("TLSA digest failed: " + r.err);
  return digest;
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

bool DeliveryWorld::available(std::string& why) { return NetNamespace::available(why); }

namespace {
// What a root test needs beyond the build: installed by scripts/install-deps.sh, so a missing
// piece is an error, not a reason to skip.
void require_tools(bool dane) {
  if (run({"/usr/bin/python3", "-c", "import aiosmtpd"}, 30s).exit_code != 0)
    throw std::runtime_error("python3-aiosmtpd is not installed (scripts/install-deps.sh)");
  if (!fs::exists(tlsmap_binary())) throw std::runtime_error("mta-sts-tlsmap is not built: " + tlsmap_binary());
  if (!dane) return;
  for (const char* tool : {"nsd", "unbound", "ldns-signzone", "ldns-keygen", "drill"})
    if (run({"sh", "-c", std::string("command -v ") + tool}, 10s).exit_code != 0)
      throw std::runtime_error(std::string(tool) + " is not installed (scripts/install-deps.sh)");
}
}  // namespace

std::vector<std::pair<std::string, std::string>> DeliveryWorld::domain_modes() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& d : domains()) out.emplace_back(dlv(d.label), d.mode);
  return out;
}

std::vector<std::pair<std::string, std::vector<std::string>>> DeliveryWorld::dane_domains() {
  return {{"full.dane.test", {"mx.full.dane.test"}},
          {"bad.dane.test", {"mx.bad.dane.test"}},
          {"some.dane.test", {"mx1.some.dane.test", "mx2.some.dane.test"}},
          {"plain.dane.test", {"mx.plain.dane.test"}},
          {"partial.dane.test", {"mx1.partial.dane.test", "mx2.partial.dane.test"}},
          {"pkix.dane.test", {"mx.pkix.dane.test"}},
          {"insecure.dane.test", {"mx.insecure.dane.test"}},
          {"bogus.dane.test", {"mx1.bogus.dane.test", "mx2.bogus.dane.test"}},
          {"bogusdane.dane.test", {"mx1.bogusdane.dane.test", "mx2.bogusdane.dane.test"}}};
}

DeliveryWorld::DeliveryWorld(DeliveryOptions o) : ip_(World::unique_loopback_ip()) {
  require_tools(o.dane);
  // With DNSSEC the MTAs ask the validating unbound; without, the world's dnsmasq.
  ns_ = std::make_unique<NetNamespace>(o.dane ? "127.0.0.1" : ip_);
  world_ = std::make_unique<World>(WorldOptions{.ip = ip_, .dir = dir() / "world", .redis = true});

  // Certificates first, all at once (openssl runs are the slow part of the set-up).
  std::vector<std::pair<std::string, CertKind>> leaves;
  for (const auto& m : mx_hosts())
    if (m.cert && m.cert_names.empty()) leaves.emplace_back(m.host, *m.cert);
  if (o.tlsrpt) {
    leaves.emplace_back(kReportMx, CertKind::valid);
    leaves.emplace_back(dlv("reports"), CertKind::valid);
  }
  world_->ca().prepare(leaves);
  unsigned n = 10;
  for (const auto& m : mx_hosts()) {
    mx_ip_[m.host] = "127.25.0." + std::to_string(n++);
    fs::create_directories(dir() / "mx" / m.host);
    mx_[m.host] = std::make_unique<SmtpMx>(m.host, mx_ip_.at(m.host), m.cert, world_->ca(), dir() / "mx" / m.host,
                                           m.cert_names);
  }
  if (o.tlsrpt) {
    mx_ip_[kReportMx] = kReportMxIp;
    fs::create_directories(dir() / "mx" / kReportMx);
    mx_[kReportMx] = std::make_unique<SmtpMx>(kReportMx, kReportMxIp, CertKind::valid, world_->ca(),
                                              dir() / "mx" / kReportMx);
    report_https_ = std::make_unique<HttpsSink>(dlv("reports"), kReportHttpsIp, world_->ca(), dir() / "report-https");
  }
  if (o.dane) {
    for (const auto& m : dane_mx()) {
      mx_ip_[m.host] = m.ip;
      fs::create_directories(dir() / "mx" / m.host);
      mx_[m.host] = std::make_unique<SmtpMx>(m.host, m.ip, m.starttls ? std::optional(CertKind::valid) : std::nullopt,
                                             world_->ca(), dir() / "mx" / m.host);
    }
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
    // The DANE domains in dnsmasq too (the fetcher's resolver), with MTA-STS policies that a
    // WebPKI check alone would pass.
    if (o.dane) {
      for (const auto& [domain, hosts] : dane_domains()) {
        const std::string label = domain.substr(0, domain.find('.'));
        world_->add_domain(domain, {.txt = {"v=STSv1; id=dane" + label + "1;"},
                                    .policy = World::policy("enforce", hosts, 86400),
                                    .mx = hosts});
        warm += domain + "\n";
      }
    }
    for (const auto& [host, ip] : mx_ip_) world_->dns().add_host(host, ip);
    if (o.tlsrpt) {
      for (const auto& d : domains()) world_->dns().add_txt("_smtp._tls." + dlv(d.label), tlsrpt_record());
      world_->dns().add_txt("_smtp._tls." + dlv("sender"), tlsrpt_record());
      // The report domain too: were the sessions that deliver reports counted (a report loop),
      // they would make a report of their own.
      world_->dns().add_txt("_smtp._tls." + dlv("reports"), tlsrpt_record());
      world_->dns().add_mx(dlv("reports"), kReportMx, 10);
      world_->dns().add_host(dlv("reports"), kReportHttpsIp);
    }
    if (o.dane)
      for (const auto& m : dane_mx())
        if (!m.cname_to.empty()) world_->dns().add_host(m.cname_to, m.ip);
  }
  world_->start();
  for (auto& [host, mx] : mx_) mx->wait_ready();
  if (o.dane) start_dnssec();

  write_file(dir() / "warm.list", warm);
  write_file(dir() / "cached.conf",
             "[redis]\naddress = " + world_->redis().address() + "\n[cached]\nlog = stderr\nlog-level = debug\n"
             "resolver = " + world_->resolver() + "\nca-file = " + world_->ca_file().string() + "\n"
             "global-addresses-only = no\n"  // the world lives on loopback
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
          std::vector<std::string> all;
          for (const auto& d : domains()) all.push_back(dlv(d.label));
          if (o.dane)
            for (const auto& d : dane_domains()) all.push_back(d.first);
          for (const auto& d : all) {
            auto e = f.store().get(*Domain::parse(d).domain);
            if (!e || verdict(*e, now) == Verdict::unknown) return false;
          }
          return true;
        } catch (const std::exception&) {
          return false;
        }
      },
      60s);
  if (!filled) throw std::runtime_error("the fetcher did not fill the cache; its log:\n" + tail(fetcher_log(), 8000));

  tlsmap_port_ = free_tcp_port();
  std::string conf = "[redis]\naddress = " + world_->redis().address() +
                     "\n[tlsmap]\nlisten = inet:" + tlsmap_host_port() +
                     "\nlog = stderr\nlog-level = debug\nresolver = " + (o.dane ? "127.0.0.1" : world_->resolver()) +
                     "\ndns-timeout = 1000ms\n";
  // The world's only trust anchor is dane.test's (the root is not signed here).
  if (o.dane) conf += "dane-probe-name = dane.test\n";
  for (const auto& l : o.tlsmap_lines) conf += l + "\n";
  write_file(dir() / "tlsmap.conf", conf);
  start_tlsmap();
}

void DeliveryWorld::start_tlsmap() {
  if (tlsmap_ && tlsmap_->running()) return;
  tlsmap_ = std::make_unique<Process>(
      std::vector<std::string>{tlsmap_binary(), "--config=" + (dir() / "tlsmap.conf").string()}, dir() / "tlsmap.log");
  if (!wait_until([&] { return !tlsmap_->running() || accepts("127.0.0.1", tlsmap_port_); }, 15s) ||
      !tlsmap_->running())
    throw std::runtime_error("mta-sts-tlsmap did not start; its log:\n" + tlsmap_log());
}

void DeliveryWorld::reload_tlsmap() {
  const auto reloads = [&] {
    const std::string log = tlsmap_log();
    std::size_t n = 0;
    for (auto p = log.find("configuration reloaded"); p != std::string::npos; p = log.find("configuration reloaded", p + 1))
      ++n;
    return n;
  };
  const std::size_t before = reloads();
  tlsmap_->signal(SIGHUP);
  if (!wait_until([&] { return reloads() > before; }, 15s))
    throw std::runtime_error("mta-sts-tlsmap did not reload; its log:\n" + tlsmap_log());
}

void DeliveryWorld::stop_tlsmap() {
  if (tlsmap_) tlsmap_->stop(10s);
}

DeliveryWorld::~DeliveryWorld() {
  stop_tlsmap();
  extra_.clear();
  if (fetcher_) fetcher_->stop(20s);
  if (unbound_) unbound_->stop(10s);
  if (nsd_) nsd_->stop(10s);
  dkim_.reset();
  report_https_.reset();
  mx_.clear();
  world_.reset();
  ns_.reset();
}

SmtpMx& DeliveryWorld::mx(const std::string& host) { return *mx_.at(host); }

std::string DeliveryWorld::tlsrpt_record() {
  return "v=TLSRPTv1; rua=mailto:" + report_mailbox() + "," + report_url();
}

SmtpMx& DeliveryWorld::report_mx() {
  const auto it = mx_.find(kReportMx);
  if (it == mx_.end()) throw std::logic_error("report_mx(): the world was made without DeliveryOptions::tlsrpt");
  return *it->second;
}

HttpsSink& DeliveryWorld::report_https() {
  if (!report_https_) throw std::logic_error("report_https(): the world was made without DeliveryOptions::tlsrpt");
  return *report_https_;
}

OpenDkim& DeliveryWorld::start_dkim(const std::string& domain, const std::string& selector) {
  if (dkim_) return *dkim_;
  dkim_ = std::make_unique<OpenDkim>(dir() / "opendkim", domain, selector);
  world_->dns().add_txt(dkim_->txt_name(), dkim_->txt_record());
  world_->dns().apply();
  return *dkim_;
}

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

void DeliveryWorld::start_dnssec() {
  const fs::path d = dir() / "dnssec";
  fs::create_directories(d);
  std::string zone =
      "$ORIGIN dane.test.\n$TTL 60\n"
      "@ IN SOA ns.dane.test. hostmaster.dane.test. 1 3600 600 86400 60\n"
      "@ IN NS ns.dane.test.\n"
      "ns IN A " + std::string(kNsdIp) + "\n";
  const std::string other_key = spki_sha256(world_->ca().leaf("other-key.dane.test", CertKind::valid).cert);
  for (const auto& [domain, hosts] : dane_domains()) {
    const std::string label = domain.substr(0, domain.find('.'));
    for (std::size_t i = 0; i < hosts.size(); ++i)
      zone += label + " IN MX " + std::to_string(10 * (i + 1)) + " " + hosts[i] + ".\n";
    zone += "_mta-sts." + label + " IN TXT \"v=STSv1; id=dane" + label + "1;\"\n";
    zone += "mta-sts." + label + " IN A " + ip_ + "\n";
  }
  std::vector<std::pair<std::string, std::string>> to_break;  // TLSA owner, digest: made bogus
  for (const auto& m : dane_mx()) {
    const std::string rel = m.host.substr(0, m.host.size() - std::string(".dane.test").size());
    if (m.cname_to.empty())
      zone += rel + " IN A " + m.ip + "\n";
    else
      zone += rel + " IN CNAME " + m.cname_to + ".\n";
    if (m.tlsa == DaneMx::none) continue;
    const std::string digest =
        m.tlsa == DaneMx::other_key ? other_key : spki_sha256(world_->ca().leaf(m.host, CertKind::valid).cert);
    zone += "_25._tcp." + rel + " IN TLSA " + (m.tlsa == DaneMx::pkix ? "1 1 1 " : "3 1 1 ") + digest + "\n";
    if (m.tlsa == DaneMx::bogus) to_break.emplace_back("_25._tcp." + m.host + ".", digest);
  }
  write_file(d / "dane.test.zone", zone);
  // Keys and signatures made now: signatures last four weeks from signing.
  const auto sh = [&](const std::string& cmd) {
    const RunResult r = run({"sh", "-c", "cd '" + d.string() + "' && " + cmd}, 60s);
    if (r.exit_code != 0) throw std::runtime_error("DNSSEC set-up: " + cmd + " failed: " + r.err + r.out);
    return r.out.substr(0, r.out.find('\n'));
  };
  const std::string ksk = sh("ldns-keygen -a ECDSAP256SHA256 -k dane.test");
  const std::string zsk = sh("ldns-keygen -a ECDSAP256SHA256 dane.test");
  sh("ldns-signzone dane.test.zone " + ksk + " " + zsk);
  // Bogus TLSA: the record changed after signing, its signature kept.
  if (!to_break.empty()) {
    std::string signed_zone = read_file(d / "dane.test.zone.signed");
    std::string out;
    std::istringstream lines(signed_zone);
    for (std::string l; std::getline(lines, l);) {
      for (const auto& [owner, digest] : to_break)
        if (l.rfind(owner, 0) == 0 && l.find("TLSA") != std::string::npos) {
          std::string lower = l;  // ldns may print the hex in either case
          for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          const auto at = lower.find(digest);
          if (at != std::string::npos) l.replace(at, digest.size(), other_key);
        }
      out += l + "\n";
    }
    if (out == signed_zone) throw std::runtime_error("DNSSEC set-up: no TLSA record to make bogus");
    write_file(d / "dane.test.zone.signed", out);
  }

  const std::string ds = d.string();
  write_file(d / "nsd.conf", "server:\n  ip-address: " + std::string(kNsdIp) + "\n  port: 53\n  do-ip6: no\n"
             "  username: \"\"\n  chroot: \"\"\n  zonesdir: \"" + ds + "\"\n  database: \"\"\n"
             "  zonelistfile: \"" + ds + "/zone.list\"\n  xfrdfile: \"" + ds + "/xfrd.state\"\n"
             "  xfrdir: \"" + ds + "\"\n  pidfile: \"" + ds + "/nsd.pid\"\n  logfile: \"" + ds + "/nsd.log\"\n"
             "  server-count: 1\nremote-control:\n  control-enable: no\n"
             "zone:\n  name: \"dane.test\"\n  zonefile: \"" + ds + "/dane.test.zone.signed\"\n");
  nsd_ = std::make_unique<Process>(
      std::vector<std::string>{"setpriv", "--pdeathsig", "TERM", "nsd", "-d", "-c", (d / "nsd.conf").string()},
      d / "nsd.out");
  // unbound 1.17 answers .test itself (NXDOMAIN) unless told not to; names outside dane.test
  // go to the world's dnsmasq and are insecure (no trust anchor above them).
  write_file(d / "unbound.conf", "server:\n  interface: 127.0.0.1\n  port: 53\n  do-ip6: no\n"
             "  username: \"\"\n  chroot: \"\"\n  directory: \"" + ds + "\"\n  pidfile: \"" + ds + "/unbound.pid\"\n"
             "  logfile: \"" + ds + "/unbound.log\"\n  use-syslog: no\n  verbosity: 1\n"
             "  module-config: \"validator iterator\"\n  do-not-query-localhost: no\n  val-permissive-mode: no\n"
             "  trust-anchor-file: \"" + ds + "/" + ksk + ".ds\"\n  local-zone: \"test.\" nodefault\n"
             "  cache-max-ttl: 1\n  cache-max-negative-ttl: 1\n"
             "stub-zone:\n  name: \"dane.test\"\n  stub-addr: " + std::string(kNsdIp) + "\n"
             "forward-zone:\n  name: \".\"\n  forward-addr: " + ip_ + "@53\n"
             "remote-control:\n  control-enable: no\n");
  unbound_ = std::make_unique<Process>(
      std::vector<std::string>{"setpriv", "--pdeathsig", "TERM", "unbound", "-d", "-c", (d / "unbound.conf").string()},
      d / "unbound.out");
  // Ready when a TLSA answer comes back validated (the AD flag).
  RunResult last;
  const bool ok = wait_until(
      [&] {
        last = run({"drill", "-D", "@127.0.0.1", "_25._tcp.mx.full.dane.test", "TLSA"}, 5s);
        return last.out.find(" ad ") != std::string::npos || last.out.find(" ad;") != std::string::npos;
      },
      15s);
  if (!ok)
    throw std::runtime_error("no validated TLSA answer from unbound:\n" + last.out + last.err + read_file(d / "nsd.out") +
                             read_file(d / "nsd.log") + read_file(d / "unbound.out") + read_file(d / "unbound.log"));
}

void DeliveryWorld::pause_fetcher() {
  if (fetcher_) fetcher_->signal(SIGSTOP);
}

void DeliveryWorld::resume_fetcher() {
  if (fetcher_) fetcher_->signal(SIGCONT);
}

void DeliveryWorld::restore() {
  resume_fetcher();
  start_tlsmap();
  for (const auto& m : mx_hosts())
    if (mx_.at(m.host)->cert() != m.cert) mx_.at(m.host)->restart(m.cert);
  auto& dns = world_->dns();
  for (const auto& d : domains()) {
    dns.remove(dlv(d.label));
    for (std::size_t i = 0; i < d.mx.size(); ++i) dns.add_mx(dlv(d.label), d.mx[i], static_cast<int>(10 * (i + 1)));
  }
  dns.apply();
}

unsigned DeliveryWorld::start_extra_tlsmap(const std::string& name, const std::vector<std::string>& tlsmap_lines) {
  const unsigned port = free_tcp_port();
  std::string conf = "[redis]\naddress = " + world_->redis().address() + "\n[tlsmap]\nlisten = inet:127.0.0.1:" +
                     std::to_string(port) + "\nlog = stderr\nlog-level = debug\ndns-timeout = 1000ms\n";
  for (const auto& l : tlsmap_lines) conf += l + "\n";
  const fs::path cf = dir() / ("tlsmap-" + name + ".conf");
  write_file(cf, conf);
  auto& p = extra_.emplace_back(std::make_unique<Process>(
      std::vector<std::string>{tlsmap_binary(), "--config=" + cf.string()}, dir() / ("tlsmap-" + name + ".log")));
  if (!wait_until([&] { return !p->running() || accepts("127.0.0.1", port); }, 15s) || !p->running())
    throw std::runtime_error("mta-sts-tlsmap " + name + " did not start; its log:\n" + extra_tlsmap_log(name));
  return port;
}

std::string DeliveryWorld::start_ad_forwarder() {
  const std::string ip = "10.253.0.1";
  RunResult r = run({"ip", "addr", "replace", ip + "/32", "dev", "lo"}, 10s);
  if (r.exit_code != 0) throw std::runtime_error("ip addr: " + r.err);
  const fs::path d = dir() / "forwarder";
  fs::create_directories(d);
  extra_.push_back(std::make_unique<Process>(
      std::vector<std::string>{"setpriv", "--pdeathsig", "TERM", "dnsmasq", "--keep-in-foreground", "--no-resolv",
                               "--no-hosts", "--bind-interfaces", "--listen-address=" + ip, "--port=53",
                               "--server=127.0.0.1#53", "--proxy-dnssec", "--cache-size=0", "--user=root",
                               "--pid-file=" + (d / "dnsmasq.pid").string(), "--log-facility=-"},
      d / "dnsmasq.log"));
  RunResult last;
  const bool ok = wait_until(
      [&] {
        last = run({"drill", "-D", "@" + ip, "_25._tcp.mx.full.dane.test", "TLSA"}, 5s);
        return last.out.find(" ad ") != std::string::npos || last.out.find(" ad;") != std::string::npos;
      },
      15s);
  if (!ok) throw std::runtime_error("the AD forwarder does not pass AD on:\n" + last.out + last.err + read_file(d / "dnsmasq.log"));
  return ip;
}

std::string DeliveryWorld::socketmap(const std::string& map, const std::string& key, unsigned port) const {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
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

SendmailMc shipped_sendmail_mc(const DeliveryWorld& dw) {
  const auto replace_all = [](std::string s, const std::string& from, const std::string& to) {
    for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size())
      s.replace(pos, from.size(), to);
    return s;
  };
  std::string text = read_file(source_dir() / "etc/sendmail-tlsmap.mc");
  if (text.empty()) throw std::runtime_error("etc/sendmail-tlsmap.mc is missing");
  const std::string ca_file = dw.world().ca_file().string();
  const std::string port = dw.tlsmap_host_port().substr(dw.tlsmap_host_port().rfind(':') + 1);
  text = replace_all(text, "/etc/ssl/certs/ca-certificates.crt", ca_file);
  text = replace_all(text, "/etc/ssl/certs", fs::path(ca_file).parent_path().string());
  text = replace_all(text, "inet:8461@127.0.0.1", "inet:" + port + "@127.0.0.1");
  SendmailMc out;
  bool after = false;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l.find("---- second part") != std::string::npos) after = true;
    (after ? out.after : out.before).push_back(l);
  }
  if (!after) throw std::runtime_error("etc/sendmail-tlsmap.mc: no second part");
  return out;
}

}  // namespace mtasts::test::e2e
