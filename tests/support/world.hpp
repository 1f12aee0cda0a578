// Test support: a small, realistic "internet" on loopback for integration and end-to-end tests.
// A test CA made with the openssl CLI, a real dnsmasq (with a tiny in-process upstream that
// answers SERVFAIL or never answers), and a real nginx serving /.well-known/mta-sts.txt per
// virtual host (SNI) with a chosen certificate and behaviour. `World` ties them together with
// one call per MTA-STS domain. Nothing here sends a packet off loopback.
//
// Typical use:
//   World world;                                   // unique 127.a.b.c for this process
//   world.add_domain("enforce.example.test", {.txt = {"v=STSv1; id=abc;"},
//                    .policy = World::policy("enforce", {"mail.enforce.example.test"}, 86400)});
//   world.start();                                 // dnsmasq + nginx up and answering
//   fetcher options: resolver = world.resolver(), ca-file = world.ca_file()
//   world.set_txt("enforce.example.test", {"v=STSv1; id=def;"});   // applied at once
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"

namespace mtasts::test {

// ---- certificates --------------------------------------------------------------------------

enum class CertKind {
  valid,        // signed by the test root, SAN = the host name, valid now
  expired,      // signed by the test root, SAN = the host name, validity entirely in the past
  wrong_name,   // signed by the test root, SAN = "wrong-name.invalid" only
  untrusted,    // SAN = the host name, signed by a second CA that is not in ca_file()
  self_signed,  // SAN = the host name, self-signed (not a CA)
  cn_only,      // signed by the test root, the host name in the subject CN only, no SAN
};
const char* to_string(CertKind k) noexcept;
std::optional<CertKind> cert_kind_from_string(const std::string& s);  // "valid", "wrong-name", ...

struct CertFiles {
  std::filesystem::path cert;  // PEM, the leaf only (the root is the trust anchor)
  std::filesystem::path key;   // PEM, EC P-256, unencrypted
};

// A root CA (trusted: ca_file()), a second CA (untrusted) and leaves made on demand with the
// openssl CLI. Leaves are cached by (name, kind), so asking twice costs nothing. Thread-safe.
class TestCa {
 public:
  // Creates both CAs in `dir` (which must exist and outlive this object).
  explicit TestCa(std::filesystem::path dir);
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  // One CA per process in its own TempDir, so many Worlds in one test binary share the work.
  static TestCa& shared();

  const std::filesystem::path& ca_file() const noexcept { return ca_file_; }  // trusted root PEM
  const std::filesystem::path& untrusted_ca_file() const noexcept { return untrusted_ca_file_; }

  // The leaf for `name` of `kind`, generated on first use. Throws std::runtime_error (with the
  // openssl stderr) on failure.
  CertFiles leaf(const std::string& name, CertKind kind);
  // Generates all missing leaves of the list, several openssl processes at a time.
  void prepare(const std::vector<std::pair<std::string, CertKind>>& leaves);
  // A leaf of kind valid/expired/untrusted/self_signed whose SAN holds every name in `names`
  // (for benchmarks with thousands of hosts); cached by (names, kind).
  CertFiles leaf_for_names(const std::vector<std::string>& names, CertKind kind);

 private:
  struct Job;
  Job make_job(const std::vector<std::string>& names, CertKind kind, const std::string& stem);
  std::filesystem::path dir_;
  std::filesystem::path ca_file_, ca_key_, untrusted_ca_file_, untrusted_ca_key_;
  std::mutex mu_;
  std::mutex ca_db_mu_;  // `openssl ca` keeps an index file: one signer at a time
  std::map<std::string, CertFiles> leaves_;
  unsigned counter_ = 0;
};

// ---- DNS -----------------------------------------------------------------------------------

// One TXT record: one or more character-strings (a resolver concatenates them).
// {"v=STSv1; id=1;"} is one string; TxtRecord{"v=STSv1; ", "id=1;"} is one record of two.
struct TxtRecord {
  std::vector<std::string> strings;
  TxtRecord(const char* s) : strings{s} {}                               // NOLINT: implicit on purpose
  TxtRecord(std::string s) : strings{std::move(s)} {}                    // NOLINT
  TxtRecord(std::initializer_list<std::string> l) : strings(l) {}        // NOLINT
  explicit TxtRecord(std::vector<std::string> v) : strings(std::move(v)) {}
  std::string joined() const;
  bool operator==(const TxtRecord&) const = default;
};

// What the DNS does for a name (and every name below it) instead of answering normally.
enum class DnsFailure { none, servfail, timeout };

// A real dnsmasq on ip:port. Records are collected, then written to DIR/dnsmasq.conf by
// start()/apply(), which (re)start dnsmasq and wait until it answers. Every name that has no
// record of its own gets NXDOMAIN (dnsmasq is authoritative for everything: `local=/#/`), a
// name with records but not of the asked type gets NODATA. SERVFAIL and timeout names are
// forwarded to a small responder thread inside this process.
class DnsServer {
 public:
  // `dir` must exist and outlive this object. Nothing starts until start().
  DnsServer(std::string ip, std::uint16_t port, std::filesystem::path dir);
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Records. Names are used as given (lowercase, no trailing dot). Changes take effect at the
  // next apply() (or start()).
  void add_txt(const std::string& name, TxtRecord record);         // adds one more record
  void set_txt(const std::string& name, std::vector<TxtRecord> records);  // replaces (empty: none)
  void add_host(const std::string& name, const std::string& ip);   // A for IPv4, AAAA for IPv6
  void add_cname(const std::string& name, const std::string& target);  // target must be local
  void add_mx(const std::string& domain, const std::string& host, int preference = 10);
  void set_failure(const std::string& name, DnsFailure f);         // none removes it
  void remove(const std::string& name);  // every record and failure of exactly this name
  void clear();                          // everything

  // start() throws if dnsmasq does not answer within 5 s. Servers are started from the calling
  // thread and get SIGTERM when that thread ends (so a crashed test leaves no orphans): start
  // them from a thread that outlives them, e.g. the test's main thread.
  void start();
  void apply();    // rewrite the config and restart dnsmasq (if running; else no-op)
  void restart() { apply(); }
  void stop();
  bool running();

  std::string resolver() const;  // "IP:PORT", for the fetcher's `resolver` option
  const std::string& ip() const noexcept { return ip_; }
  std::uint16_t port() const noexcept { return port_; }
  std::filesystem::path query_log() const { return dir_ / "dnsmasq.log"; }  // log-queries
  std::filesystem::path config_file() const { return dir_ / "dnsmasq.conf"; }
  // How many queries the in-process responder received for SERVFAIL/timeout names.
  std::uint64_t failure_queries() const noexcept { return upstream_queries_.load(); }

  // Sends one UDP query (type 16 = TXT, 1 = A, ...) and returns the RCODE of the answer, or
  // nullopt when nothing came back within `timeout`. A readiness probe, usable by tests.
  std::optional<int> probe(const std::string& name, std::uint16_t qtype = 16,
                           std::chrono::milliseconds timeout = std::chrono::milliseconds(500)) const;

 private:
  void write_config() const;
  void start_upstream();
  void upstream_loop();
  // The responder's reply to one query: SERVFAIL, or nothing (empty) for a timeout name.
  std::vector<unsigned char> upstream_answer(const unsigned char* query, std::size_t len);
  std::string ip_;
  std::uint16_t port_;
  std::filesystem::path dir_;
  std::map<std::string, std::vector<TxtRecord>> txt_;
  std::map<std::string, std::vector<std::string>> hosts_;
  std::map<std::string, std::string> cnames_;
  std::vector<std::pair<std::string, std::pair<std::string, int>>> mx_;
  std::map<std::string, DnsFailure> failures_;
  std::unique_ptr<Process> proc_;
  int upstream_fd_ = -1;      // UDP
  int upstream_tcp_fd_ = -1;  // TCP, same port: dnsmasq forwards TCP queries over TCP
  int wake_fd_[2] = {-1, -1};
  std::uint16_t upstream_port_ = 0;
  std::thread upstream_;
  std::atomic<std::uint64_t> upstream_queries_{0};
  mutable std::mutex mu_;  // guards failures_ (read by the responder thread)
};

// ---- HTTPS ---------------------------------------------------------------------------------

// What a virtual host does for GET /.well-known/mta-sts.txt.
enum class Behaviour {
  serve,         // 200, Content-Type: text/plain, the body file
  charset,       // 200, Content-Type: text/plain; charset=utf-8, the body file
  redirect,      // 301 to redirect_to (default https://<host>/policy.txt, which serves the body)
  wrong_type,    // 200, Content-Type: text/html, the body file
  no_type,       // 200, no Content-Type header at all, the body file
  not_found,     // 404
  server_error,  // 500
  oversized,     // 200, text/plain, the body padded to 100 KiB (over the 64 KiB cap)
  slow,          // 200, text/plain, the body padded to 64000 bytes, sent at 4 KiB/s (~16 s)
  sluggish,      // 200, text/plain, the body padded to 20000 bytes, sent at 4 KiB/s (~5 s):
                 // a slow fetch that still succeeds within a usual fetch-timeout
};
const char* to_string(Behaviour b) noexcept;
std::optional<Behaviour> behaviour_from_string(const std::string& s);  // "serve", "wrong-type", ...

struct VirtualHost {
  std::string name{};  // SNI and Host, e.g. "mta-sts.example.test"
  CertKind cert = CertKind::valid;
  Behaviour behaviour = Behaviour::serve;
  std::string body{};       // the policy text, served byte for byte
  std::string redirect_to{};  // Behaviour::redirect only; empty: https://<name>/policy.txt
};

// A real nginx (master + one worker) on ip:port with TLS and one server block per host. An
// unknown SNI gets a default server with a certificate for "default.invalid" and 421.
// Bodies live in files: set_body() changes what is served without a restart.
class HttpsServer {
 public:
  // `dir` must exist and outlive this object. Nothing starts until start().
  HttpsServer(std::string ip, TestCa& ca, std::filesystem::path dir, std::uint16_t port = 443);
  ~HttpsServer();
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;

  void add_host(VirtualHost host);  // replaces a host of the same name; applied at apply()
  // Many hosts sharing one certificate (SANs = all names) and one server block per chunk of
  // 100 names, for benchmarks. Bodies are still per host.
  void add_hosts(const std::vector<VirtualHost>& hosts);
  void remove_host(const std::string& name);
  void set_behaviour(const std::string& name, Behaviour b);  // applied at apply()
  void set_cert(const std::string& name, CertKind k);        // applied at apply()
  void set_body(const std::string& name, const std::string& body);  // at once, atomically
  std::filesystem::path body_file(const std::string& name) const;

  void start();   // throws if nginx does not accept connections within 5 s; see DnsServer::start
  void apply();   // rewrite nginx.conf and restart nginx (if running; else no-op)
  void reload() { apply(); }
  void stop();
  bool running();

  const std::string& ip() const noexcept { return ip_; }
  std::uint16_t port() const noexcept { return port_; }
  std::string url(const std::string& host) const;  // https://<host>/.well-known/mta-sts.txt
  std::filesystem::path error_log() const { return dir_ / "error.log"; }
  // One line per request: "<sni> <host> <status> <bytes> "<request line>" <end> <seconds>"
  // (<end>: when it ended, seconds since the epoch with ms; <seconds>: how long it took).
  std::filesystem::path access_log() const { return dir_ / "access.log"; }
  // Requests for /.well-known/mta-sts.txt that `host` received so far (from the access log).
  std::size_t requests(const std::string& host) const;

 private:
  // Hosts from one add_hosts() chunk share a server block and a certificate while their
  // cert and behaviour stay those of the chunk.
  struct Group {
    std::vector<std::string> names;
    CertKind cert;
    Behaviour behaviour;
  };
  void write_config();
  void write_bodies(const VirtualHost& h) const;
  std::string ip_;
  TestCa& ca_;
  std::filesystem::path dir_;
  std::uint16_t port_;
  std::map<std::string, VirtualHost> hosts_;
  std::vector<Group> groups_;
  std::unique_ptr<Process> proc_;
};

// ---- the whole world -----------------------------------------------------------------------

struct DomainSpec {
  // The `_mta-sts.<domain>` TXT RRset; empty means no TXT (NXDOMAIN, or NODATA if the name has
  // other records).
  std::vector<TxtRecord> txt{};
  // When set, `_mta-sts.<domain>` is a CNAME to this name and `txt` is published there.
  std::optional<std::string> txt_cname{};
  // SERVFAIL or timeout for `_mta-sts.<domain>` (overrides txt).
  DnsFailure txt_failure = DnsFailure::none;
  // The body of https://mta-sts.<domain>/.well-known/mta-sts.txt.
  std::string policy{};
  CertKind cert = CertKind::valid;
  Behaviour behaviour = Behaviour::serve;
  std::string redirect_to{};  // Behaviour::redirect only
  // false: no `mta-sts.<domain>` A record and no virtual host.
  bool policy_host = true;
  // The A record of `mta-sts.<domain>`; empty: the World's HTTPS address.
  std::string policy_host_ip{};
  // MX records of the domain itself (preference 10, 20, ...), for end-to-end tests.
  std::vector<std::string> mx{};
};

struct WorldOptions {
  std::string ip{};              // empty: World::unique_loopback_ip()
  std::uint16_t dns_port = 53;   // dnsmasq's port on `ip`
  std::uint16_t https_port = 443;
  std::filesystem::path dir{};   // empty: a fresh TempDir, removed with the World
  TestCa* ca = nullptr;          // nullptr: TestCa::shared()
  bool redis = false;            // also start a RedisServer (redis())
};

class World {
 public:
  explicit World(WorldOptions options = {});
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  // A loopback address for this process: 127.a.b.c with a, b from the pid (never 127.0.x.x or
  // 127.1.x.x) and c counting Worlds made by this process (1, 2, ...).
  static std::string unique_loopback_ip();

  // RFC 8461 policy text, CRLF line ends (LF with crlf = false), keys in the usual order.
  static std::string policy(const std::string& mode, const std::vector<std::string>& mx,
                            long max_age, bool crlf = true);

  // Adds (or replaces) a domain: TXT, `mta-sts.<domain>` A record, virtual host, certificate.
  void add_domain(const std::string& domain, DomainSpec spec);
  // Many domains with the same spec (policy text may use "{domain}" as a placeholder), sharing
  // certificates and server blocks: for benchmarks with thousands of domains.
  void add_domains(const std::vector<std::string>& domains, const DomainSpec& spec);
  void remove_domain(const std::string& domain);

  // Changes after start() take effect before the call returns (DNS and nginx restart as
  // needed; set_policy only rewrites the body file).
  void set_txt(const std::string& domain, std::vector<TxtRecord> txt);
  void set_txt_failure(const std::string& domain, DnsFailure f);
  void set_policy(const std::string& domain, const std::string& body);
  void set_behaviour(const std::string& domain, Behaviour b);
  void set_cert(const std::string& domain, CertKind k);
  const DomainSpec& spec(const std::string& domain) const;  // throws std::out_of_range

  // Starts dnsmasq and nginx (and Redis if asked) and waits until they answer. Setters before
  // start() only record; setters after it apply at once.
  void start();
  void stop();
  bool started() const noexcept { return started_; }

  // Defers the restarts of several setters to one: `{ auto b = world.batch(); ...setters... }`.
  class Batch {
   public:
    explicit Batch(World& w) : w_(w) { ++w_.batch_depth_; }
    ~Batch() noexcept(false);
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;
   private:
    World& w_;
  };
  Batch batch() { return Batch(*this); }

  std::string resolver() const { return dns_.resolver(); }  // "IP:PORT"
  const std::filesystem::path& ca_file() const { return ca_.ca_file(); }
  const std::string& ip() const noexcept { return ip_; }
  const std::filesystem::path& dir() const noexcept { return dir_; }
  DnsServer& dns() noexcept { return dns_; }
  HttpsServer& https() noexcept { return https_; }
  TestCa& ca() noexcept { return ca_; }
  RedisServer& redis();  // throws std::logic_error unless WorldOptions::redis

 private:
  void publish(const std::string& domain, const DomainSpec& spec);
  void apply();  // restarts what is dirty, unless batched or not started
  std::optional<TempDir> tmp_;
  std::filesystem::path dir_;
  std::string ip_;
  TestCa& ca_;
  DnsServer dns_;
  HttpsServer https_;
  std::unique_ptr<RedisServer> redis_;
  bool want_redis_ = false;
  std::map<std::string, DomainSpec> domains_;
  bool started_ = false;
  bool dns_dirty_ = false;
  bool https_dirty_ = false;
  int batch_depth_ = 0;
};

}  // namespace mtasts::test
