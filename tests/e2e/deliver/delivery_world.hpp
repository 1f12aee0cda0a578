// End-to-end environment for delivery-time enforcement (issue 9): a network namespace of the
// test's own in which the loopback world's dnsmasq is the system resolver (on :53) and serves
// the domains' MX, A and TXT records; nginx serves their policies with the test CA; receiving
// MX hosts listen on 127.25.0.x:25, each offering STARTTLS with a certificate of a chosen kind
// or no STARTTLS at all, and keeping what they receive; a real Redis filled by the real
// fetcher (mta-sts-cached); the real mta-sts-tlsmap answering socketmap lookups from it. The
// MTAs (Postfix, Sendmail: mail_env.hpp) are started by the tests, behind exec_prefix().
//
// The domains, all under .dlv.test (the first MX host is preference 10, the next 20):
//   good       enforce [mx.good]                   MX mx.good: valid certificate
//   notls      enforce [mx.notls]                  MX mx.notls: no STARTTLS
//   untrusted  enforce [mx.untrusted]              MX mx.untrusted: certificate of another CA
//   wrongname  enforce [mx.wrongname]              MX mx.wrongname: certificate for another name
//   offpolicy  enforce [mx.offpolicy]              MX mx.elsewhere (valid, but outside the policy);
//                                                  mx.offpolicy (valid) exists for the fix
//   wild       enforce [*.mx.wild]                 MX a.mx.wild: valid (one label under *.)
//   deep       enforce [*.mx.deep]                 MX a.b.mx.deep: valid, but two labels under *.
//   mixed      enforce [mx1.mixed, mx2.mixed]      MX mx1.mixed: wrong name; mx2.mixed: valid
//   testing    testing [mx.testing]                MX mx.testing: certificate for another name
//   nopolicy   no MTA-STS at all                   MX mx.nopolicy: no STARTTLS
//   shared     enforce [mx.testing]                MX mx.testing (testing's host: wrong name)
//   multi      enforce [mx.multi]                  MX mx.multi: valid, one certificate for both
//                                                  mx.multi and mx.testing
//   wcert      enforce [mx.wcert]                  MX mx.wcert: valid, a wildcard *.wcert certificate
//   wdeep      enforce [a.mx.wdeep]                MX a.mx.wdeep: valid, but its certificate is
//                                                  *.wdeep, two labels above it
//   keyword    enforce [hostname]                  MX mx.keyword: valid for its own name, but the
//                                                  policy's one pattern is a Postfix keyword
//   expired    enforce [mx.expired]                MX mx.expired: test-CA certificate, expired
//   selfsigned enforce [mx.selfsigned]             MX mx.selfsigned: self-signed certificate
//   nosts      no MTA-STS at all                   MX mx.nosts: valid (opportunistic TLS)
// (shared and multi make the Sendmail connection-cache trap: see sendmail_test.cpp.)
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/https_sink.hpp"
#include "tests/support/netns.hpp"
#include "tests/support/opendkim.hpp"
#include "tests/support/process.hpp"
#include "tests/support/smtp_mx.hpp"
#include "tests/support/world.hpp"

namespace mtasts::test::e2e {

// Domain names of the delivery world.
inline std::string dlv(const std::string& label) { return label + ".dlv.test"; }

struct DeliveryOptions {
  std::vector<std::string> tlsmap_lines{};  // extra [tlsmap] lines
  // Also a DNSSEC world: the zone dane.test signed (ldns-signzone) and served by nsd, a
  // validating unbound on 127.0.0.1:53 as the namespace's resolver (and mta-sts-tlsmap's) with
  // that zone's trust anchor, forwarding every other name to the world's dnsmasq. Its domains,
  // each also with an enforce MTA-STS policy listing its MX hosts (WebPKI-valid certificates):
  //   full.dane.test   MX mx.full (TLSA 3 1 1 matching its key)
  //   bad.dane.test    MX mx.bad (TLSA 3 1 1 of another key: DANE fails, MTA-STS would pass)
  //   some.dane.test   MX mx1.some (matching TLSA), mx2.some (no TLSA)
  //   plain.dane.test  MX mx.plain (TLSA published, but no STARTTLS offered: stripped)
  //   partial.dane.test  MX mx1.partial (no TLSA, no STARTTLS), mx2.partial (matching TLSA)
  //   pkix.dane.test   MX mx.pkix (only TLSA 1 1 1, PKIX-EE: unusable for SMTP)
  //   insecure.dane.test MX mx.insecure (matching TLSA, but the name is a CNAME to an
  //                    address in the unsigned dlv.test: the address is not validated)
  //   bogus.dane.test  MX mx1.bogus (bogus TLSA: SERVFAIL), mx2.bogus (no TLSA)
  //   bogusdane.dane.test MX mx1.bogusdane (bogus TLSA), mx2.bogusdane (matching TLSA)
  bool dane = false;
  // TLS-RPT (issue 20): every domain of the world (and sender.dlv.test, reports.dlv.test) publishes
  //   _smtp._tls.<domain> TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.dlv.test,https://reports.dlv.test/tlsrpt"
  // (tlsrpt_record()); reports.dlv.test has MX mx.reports.dlv.test, an SmtpMx with a valid
  // certificate that keeps every report mail (report_mx(), 127.25.2.1), and an A record for an
  // HttpsSink on :443 with a valid certificate that keeps every POST (report_https(),
  // 127.25.2.2). Neither publishes MTA-STS: report mail goes out as opportunistic TLS.
  bool tlsrpt = false;
};

class DeliveryWorld {
 public:
  // Whether the world can run here (root); when not, `why` says why (for GTEST_SKIP). A
  // missing package is not a reason: the constructor throws then.
  static bool available(std::string& why);

  // Everything up, every domain fetched into Redis, tlsmap answering. Throws with logs on
  // failure. Must be made and destroyed on the same thread (the test's main thread): that
  // thread lives in the namespace meanwhile.
  explicit DeliveryWorld(DeliveryOptions o = {});
  ~DeliveryWorld();
  DeliveryWorld(const DeliveryWorld&) = delete;
  DeliveryWorld& operator=(const DeliveryWorld&) = delete;

  // Every domain of the world with its policy mode ("" for no MTA-STS at all).
  static std::vector<std::pair<std::string, std::string>> domain_modes();

  World& world() { return *world_; }
  const World& world() const { return *world_; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  // {"ip", "netns", "exec", NAME}: for the MTAs, so that they read the namespace's resolv.conf.
  std::vector<std::string> exec_prefix() const { return ns_->exec_prefix(); }
  const std::string& namespace_name() const { return ns_->name(); }

  SmtpMx& mx(const std::string& host);  // throws std::out_of_range for an unknown host
  // Every MX host that received a message containing `needle`.
  std::vector<std::string> hosts_that_received(const std::string& needle) const;
  // Replaces the MX records of a domain (preference 10, 20, ... in order); applied at once.
  void set_mx(const std::string& domain, const std::vector<std::string>& hosts);
  // Undoes every set_mx(), stop_tlsmap() and SmtpMx::restart() with another certificate: the
  // world as described above again (for the next test in the same process).
  void restore();
  // mta-sts-tlsmap down (SIGTERM) and up again on the same address.
  void stop_tlsmap();
  void start_tlsmap();
  // SIGHUP to mta-sts-tlsmap; returns once it logged the reload (throws if it did not).
  void reload_tlsmap();
  // The fetcher frozen (SIGSTOP) and thawed (SIGCONT; restore() thaws it too): while it is
  // frozen, what the cache loses is not fetched again, so a test sees mta-sts-tlsmap's own
  // fallback and not the fetcher refilling the entry.
  void pause_fetcher();
  void resume_fetcher();

  // mta-sts-tlsmap's address: "127.0.0.1:PORT".
  std::string tlsmap_host_port() const { return "127.0.0.1:" + std::to_string(tlsmap_port_); }
  // For Postfix: smtp_tls_policy_maps = postfix_policy_map().
  std::string postfix_policy_map() const { return "socketmap:inet:" + tlsmap_host_port() + ":postfix"; }
  // One socketmap request over a fresh connection; returns the reply's payload ("OK ...",
  // "NOTFOUND ", ...), or "" when the connection failed. For diagnostics and checks.
  std::string socketmap(const std::string& map, const std::string& key) const { return socketmap(map, key, tlsmap_port_); }
  std::string socketmap(const std::string& map, const std::string& key, unsigned port) const;

  // Another mta-sts-tlsmap on the same Redis, with its own [tlsmap] lines (a resolver...),
  // started and answering on the returned port; stopped with the world. Its log:
  // extra_tlsmap_log(name).
  unsigned start_extra_tlsmap(const std::string& name, const std::vector<std::string>& tlsmap_lines);
  std::string extra_tlsmap_log(const std::string& name) const { return read_file(dir() / ("tlsmap-" + name + ".log")); }
  // DNSSEC world: a resolver that does not validate but passes on the AD bit of the validating
  // one (dnsmasq, proxy-dnssec), on an address of the namespace that is not loopback
  // (10.253.0.1 added to lo): what an on-path attacker or a remote forwarder looks like.
  // Returns its address.
  std::string start_ad_forwarder();

  // TLS-RPT (DeliveryOptions::tlsrpt). Both throw std::logic_error unless the option was set.
  static std::string tlsrpt_record();                    // the TXT record's text
  static std::string report_mailbox() { return "tlsrpt@" + dlv("reports"); }
  static std::string report_url() { return "https://" + dlv("reports") + "/tlsrpt"; }
  SmtpMx& report_mx();
  HttpsSink& report_https();
  // Real DKIM signing (OpenDkim: opendkim with a key made now) for `domain`, its selector's TXT
  // record published in the world's DNS at once. For Postfix: PostfixOptions::milter =
  // dkim.milter_socket() (smtpd_milters and non_smtpd_milters). Verify a received message with
  // dkim_verify(message, dw.exec_prefix()). One per world; a second call returns the first.
  OpenDkim& start_dkim(const std::string& domain = dlv("sender"), const std::string& selector = "tlsrpt");

  // The DANE domains (DeliveryOptions::dane) with their MX hosts.
  static std::vector<std::pair<std::string, std::vector<std::string>>> dane_domains();

  std::string tlsmap_log() const { return read_file(dir() / "tlsmap.log"); }
  std::string fetcher_log() const { return read_file(dir() / "cached.log"); }
  std::string logs() const;  // tails of both, for a failed assertion

 private:
  void start_dnssec();  // nsd + unbound; see DeliveryOptions::dane

  TempDir dir_{"mtasts-dlv"};
  std::string ip_;                       // the world's DNS and HTTPS address
  std::unique_ptr<NetNamespace> ns_;     // first made, last gone
  std::unique_ptr<World> world_;
  std::map<std::string, std::string> mx_ip_;
  std::map<std::string, std::unique_ptr<SmtpMx>> mx_;
  std::unique_ptr<Process> nsd_, unbound_;
  std::unique_ptr<Process> fetcher_;
  unsigned tlsmap_port_ = 0;
  std::unique_ptr<Process> tlsmap_;
  std::vector<std::unique_ptr<Process>> extra_;  // start_extra_tlsmap(), start_ad_forwarder()
  std::unique_ptr<HttpsSink> report_https_;      // DeliveryOptions::tlsrpt
  std::unique_ptr<OpenDkim> dkim_;               // start_dkim()
};

// The shipped etc/sendmail-tlsmap.mc, pointed at the world's test CA and mta-sts-tlsmap:
// the lines for before the MAILER lines, and those for after them.
struct SendmailMc {
  std::vector<std::string> before, after;
};
SendmailMc shipped_sendmail_mc(const DeliveryWorld& dw);

}  // namespace mtasts::test::e2e
