// Integration tests of the loopback test world itself: what the fetcher and the end-to-end
// tests rely on must really answer, checked with independent clients (drill and curl), the
// way a person would check a real domain's MTA-STS setup.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <iostream>
#include <sstream>

#include "tests/support/world.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct Dig {
  std::string rcode;                 // NOERROR, NXDOMAIN, SERVFAIL, ... or "TIMEOUT"
  std::vector<std::string> answers;  // "type data" per answer record, e.g. TXT "v=STSv1; " "id=1;"
};

// Asks the world's DNS with drill, an ldns client like the fetcher's.
Dig drill(const World& w, const std::string& name, const std::string& type,
          std::chrono::milliseconds timeout = 3s, bool tcp = false) {
  const auto colon = w.resolver().rfind(':');
  const std::string ip = w.resolver().substr(0, colon), port = w.resolver().substr(colon + 1);
  RunResult r = run({"drill", tcp ? "-t" : "-u", "-p", port, "@" + ip, type, name}, timeout);
  Dig d;
  if (r.exit_code == -1) {
    d.rcode = "TIMEOUT";
    return d;
  }
  std::istringstream in(r.out);
  bool answers = false;
  for (std::string line; std::getline(in, line);) {
    if (auto p = line.find("rcode: "); p != std::string::npos) d.rcode = line.substr(p + 7, line.find(',', p) - p - 7);
    if (line.rfind(";; ANSWER SECTION:", 0) == 0) {
      answers = true;
      continue;
    }
    if (answers && (line.empty() || line[0] == ';')) answers = false;
    if (answers) {
      // name TTL class type data...
      std::istringstream f(line);
      std::string owner, ttl, cls, rtype;
      f >> owner >> ttl >> cls >> rtype;
      std::string rest;
      std::getline(f, rest);
      const auto b = rest.find_first_not_of(" \t");
      d.answers.push_back(rtype + " " + (b == std::string::npos ? "" : rest.substr(b)));
    }
  }
  return d;
}

struct Fetch {
  int curl_exit = -1;
  int status = 0;
  std::string content_type;
  std::string body;
  std::string redirect_url;
  std::string err;
};

// GET https://<host>/.well-known/mta-sts.txt with curl, the world's CA as the only trust
// anchor, connecting to the world's address (as the fetcher does with the address it resolved).
Fetch curl(World& w, const std::string& host, std::vector<std::string> extra = {},
           const std::string& path = "/.well-known/mta-sts.txt") {
  const fs::path out = w.dir() / ("curl-" + host + ".body");
  fs::remove(out);
  std::vector<std::string> argv = {"curl", "-sS", "--noproxy", "*", "--cacert", w.ca_file().string(), "--resolve",
                                   host + ":443:" + w.ip(), "-o", out.string(), "-w",
                                   "%{http_code}\n%{content_type}\n%{redirect_url}\n"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back("https://" + host + path);
  RunResult r = run(argv, 30s);
  Fetch f;
  f.curl_exit = r.exit_code;
  f.err = r.err;
  std::istringstream in(r.out);
  std::string status;
  std::getline(in, status);
  std::getline(in, f.content_type);
  std::getline(in, f.redirect_url);
  f.status = status.empty() ? 0 : std::stoi(status);
  f.body = read_file(out);
  return f;
}

const std::string kEnforce = World::policy("enforce", {"mail.enforce.example.test"}, 86400);

TEST(World, DnsAnswersLikeARealZone) {
  World w;
  {
    auto b = w.batch();
    w.add_domain("enforce.example.test", {.txt = {"v=STSv1; id=abc;"}, .policy = kEnforce,
                                          .mx = {"mail.enforce.example.test"}});
    w.add_domain("split.example.test", {.txt = {{"v=STSv1; ", "id=split1;"}}, .policy = kEnforce});
    w.add_domain("two.example.test", {.txt = {"v=STSv1; id=one;", "v=STSv1; id=two;"}, .policy = kEnforce});
    w.add_domain("delegated.example.test",
                 {.txt = {"v=STSv1; id=prov1;"}, .txt_cname = "_mta-sts.provider.example.test", .policy = kEnforce});
    w.add_domain("nopolicy.example.test", {.policy_host = false, .mx = {"mail.nopolicy.example.test"}});
    w.add_domain("servfail.example.test", {.txt_failure = DnsFailure::servfail, .policy = kEnforce});
    w.add_domain("timeout.example.test", {.txt_failure = DnsFailure::timeout, .policy = kEnforce});
    w.dns().add_host("v6.example.test", "::1");
  }
  w.start();

  Dig d = drill(w, "_mta-sts.enforce.example.test", "TXT");
  EXPECT_EQ(d.rcode, "NOERROR");
  EXPECT_EQ(d.answers, std::vector<std::string>{"TXT \"v=STSv1; id=abc;\""});

  d = drill(w, "_mta-sts.split.example.test", "TXT");
  EXPECT_EQ(d.answers, std::vector<std::string>{"TXT \"v=STSv1; \" \"id=split1;\""});

  d = drill(w, "_mta-sts.two.example.test", "TXT");
  ASSERT_EQ(d.answers.size(), 2u);
  std::sort(d.answers.begin(), d.answers.end());
  EXPECT_EQ(d.answers[0], "TXT \"v=STSv1; id=one;\"");
  EXPECT_EQ(d.answers[1], "TXT \"v=STSv1; id=two;\"");

  d = drill(w, "_mta-sts.delegated.example.test", "TXT");
  EXPECT_EQ(d.rcode, "NOERROR");
  EXPECT_EQ(d.answers, (std::vector<std::string>{"CNAME _mta-sts.provider.example.test.",
                                                 "TXT \"v=STSv1; id=prov1;\""}));

  d = drill(w, "mta-sts.enforce.example.test", "A");
  EXPECT_EQ(d.answers, std::vector<std::string>{"A " + w.ip()});
  d = drill(w, "enforce.example.test", "MX");
  EXPECT_EQ(d.answers, std::vector<std::string>{"MX 10 mail.enforce.example.test."});
  d = drill(w, "v6.example.test", "AAAA");
  EXPECT_EQ(d.answers, std::vector<std::string>{"AAAA ::1"});

  // Absence: NXDOMAIN for unknown names anywhere in the tree, NODATA for a known name.
  EXPECT_EQ(drill(w, "_mta-sts.nopolicy.example.test", "TXT").rcode, "NXDOMAIN");
  EXPECT_EQ(drill(w, "mta-sts.nopolicy.example.test", "A").rcode, "NXDOMAIN");
  EXPECT_EQ(drill(w, "unknown.example.com", "TXT").rcode, "NXDOMAIN");
  d = drill(w, "mta-sts.enforce.example.test", "TXT");
  EXPECT_EQ(d.rcode, "NOERROR");
  EXPECT_TRUE(d.answers.empty());

  // Failures: SERVFAIL answered at once, timeout never answered.
  EXPECT_EQ(drill(w, "_mta-sts.servfail.example.test", "TXT").rcode, "SERVFAIL");
  const auto before = w.dns().failure_queries();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(w.dns().probe("_mta-sts.timeout.example.test", 16, 1500ms).has_value());
  // It waited out its timeout (poll's millisecond rounding may end it a hair early).
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1450ms);
  EXPECT_GT(w.dns().failure_queries(), before);  // dnsmasq did forward it, and got silence
  EXPECT_EQ(drill(w, "_mta-sts.timeout.example.test", "TXT", 1500ms).rcode, "TIMEOUT");
  // The same over TCP, which a resolver uses after a truncated answer.
  const auto before_tcp = w.dns().failure_queries();
  EXPECT_EQ(drill(w, "_mta-sts.servfail.example.test", "TXT", 3s, true).rcode, "SERVFAIL");
  EXPECT_EQ(w.dns().failure_queries(), before_tcp + 1);  // the responder answered it, over TCP
  EXPECT_EQ(drill(w, "_mta-sts.timeout.example.test", "TXT", 1500ms, true).rcode, "TIMEOUT");
  EXPECT_EQ(drill(w, "_mta-sts.split.example.test", "TXT", 3s, true).answers,
            std::vector<std::string>{"TXT \"v=STSv1; \" \"id=split1;\""});
  // The rest of the zone still works while a name times out.
  EXPECT_EQ(drill(w, "_mta-sts.enforce.example.test", "TXT").rcode, "NOERROR");

  // Mid-test changes are visible on the next query.
  w.set_txt("enforce.example.test", {"v=STSv1; id=def;"});
  EXPECT_EQ(drill(w, "_mta-sts.enforce.example.test", "TXT").answers,
            std::vector<std::string>{"TXT \"v=STSv1; id=def;\""});
  w.set_txt("delegated.example.test", {"v=STSv1; id=prov2;"});
  EXPECT_EQ(drill(w, "_mta-sts.delegated.example.test", "TXT").answers.back(), "TXT \"v=STSv1; id=prov2;\"");
  w.set_txt_failure("enforce.example.test", DnsFailure::servfail);
  EXPECT_EQ(drill(w, "_mta-sts.enforce.example.test", "TXT").rcode, "SERVFAIL");
  w.set_txt_failure("enforce.example.test", DnsFailure::none);
  EXPECT_EQ(drill(w, "_mta-sts.enforce.example.test", "TXT").answers,
            std::vector<std::string>{"TXT \"v=STSv1; id=def;\""});
  w.set_txt("servfail.example.test", {});
  w.set_txt_failure("servfail.example.test", DnsFailure::none);
  EXPECT_EQ(drill(w, "_mta-sts.servfail.example.test", "TXT").rcode, "NXDOMAIN");

  // The query log shows what was asked, for tests that count lookups.
  EXPECT_NE(read_file(w.dns().query_log()).find("_mta-sts.enforce.example.test"), std::string::npos);
}

TEST(World, HttpsBehavioursServeWhatTheyPromise) {
  World w;
  {
    auto b = w.batch();
    for (Behaviour be : {Behaviour::serve, Behaviour::charset, Behaviour::redirect, Behaviour::wrong_type,
                         Behaviour::no_type, Behaviour::not_found, Behaviour::server_error, Behaviour::oversized,
                         Behaviour::slow})
      w.add_domain(std::string(to_string(be)) + ".example.test",
                   {.txt = {"v=STSv1; id=1;"}, .policy = kEnforce, .behaviour = be});
    w.add_domain("lf.example.test",
                 {.txt = {"v=STSv1; id=1;"}, .policy = World::policy("testing", {"*.lf.example.test"}, 600, false)});
  }
  const auto t0 = std::chrono::steady_clock::now();
  w.start();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s) << "start() should be quick";

  Fetch f = curl(w, "mta-sts.serve.example.test");
  EXPECT_EQ(f.curl_exit, 0) << f.err;
  EXPECT_EQ(f.status, 200);
  EXPECT_EQ(f.content_type, "text/plain");
  EXPECT_EQ(f.body, kEnforce);

  f = curl(w, "mta-sts.lf.example.test");
  EXPECT_EQ(f.body, "version: STSv1\nmode: testing\nmx: *.lf.example.test\nmax_age: 600\n");

  f = curl(w, "mta-sts.charset.example.test");
  EXPECT_EQ(f.status, 200);
  EXPECT_EQ(f.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(f.body, kEnforce);

  f = curl(w, "mta-sts.redirect.example.test");
  EXPECT_EQ(f.status, 301);
  EXPECT_EQ(f.redirect_url, "https://mta-sts.redirect.example.test/policy.txt");
  f = curl(w, "mta-sts.redirect.example.test", {"-L"});  // a client that followed it would get a policy
  EXPECT_EQ(f.status, 200);
  EXPECT_EQ(f.body, kEnforce);

  f = curl(w, "mta-sts.wrong-type.example.test");
  EXPECT_EQ(f.status, 200);
  EXPECT_EQ(f.content_type, "text/html");
  EXPECT_EQ(f.body, kEnforce);

  const fs::path headers = w.dir() / "no-type.headers";
  f = curl(w, "mta-sts.no-type.example.test", {"-D", headers.string()});
  EXPECT_EQ(f.status, 200);
  EXPECT_EQ(f.content_type, "");
  std::string h = read_file(headers);
  std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  EXPECT_EQ(h.find("content-type"), std::string::npos) << h;
  EXPECT_NE(h.find("content-length: " + std::to_string(kEnforce.size())), std::string::npos) << h;
  EXPECT_EQ(f.body, kEnforce);

  EXPECT_EQ(curl(w, "mta-sts.not-found.example.test").status, 404);
  EXPECT_EQ(curl(w, "mta-sts.server-error.example.test").status, 500);

  f = curl(w, "mta-sts.oversized.example.test");
  EXPECT_EQ(f.status, 200);
  EXPECT_EQ(f.content_type, "text/plain");
  EXPECT_EQ(f.body.size(), 100u * 1024u);
  EXPECT_EQ(f.body.rfind(kEnforce, 0), 0u);

  // Slow: a 64000-byte body at 4 KiB/s cannot arrive within 2 s.
  f = curl(w, "mta-sts.slow.example.test", {"--max-time", "2"});
  EXPECT_EQ(f.curl_exit, 28) << f.err;  // operation timed out
  EXPECT_EQ(f.status, 200);
  EXPECT_GT(f.body.size(), 0u);
  EXPECT_LT(f.body.size(), 30000u);

  // An unknown host name gets the default server, whose certificate does not match.
  EXPECT_EQ(curl(w, "mta-sts.unknown.example.test").curl_exit, 60);

  // The body changes without a restart; behaviour changes apply before the setter returns.
  const std::string changed = World::policy("none", {}, 86400);
  w.set_policy("serve.example.test", changed);
  EXPECT_EQ(curl(w, "mta-sts.serve.example.test").body, changed);
  w.set_behaviour("serve.example.test", Behaviour::not_found);
  EXPECT_EQ(curl(w, "mta-sts.serve.example.test").status, 404);
  w.set_behaviour("serve.example.test", Behaviour::serve);
  EXPECT_EQ(curl(w, "mta-sts.serve.example.test").status, 200);

  // The access log counts requests per host (for "no fetch happened" assertions).
  EXPECT_EQ(w.https().requests("mta-sts.serve.example.test"), 4u);
  EXPECT_EQ(w.https().requests("mta-sts.oversized.example.test"), 1u);
}

TEST(World, BadCertificatesFailVerification) {
  World w;
  {
    auto b = w.batch();
    for (CertKind k : {CertKind::valid, CertKind::expired, CertKind::wrong_name, CertKind::untrusted,
                       CertKind::self_signed})
      w.add_domain(std::string(to_string(k)) + ".example.test", {.txt = {"v=STSv1; id=1;"}, .policy = kEnforce, .cert = k});
  }
  w.start();

  Fetch f = curl(w, "mta-sts.valid.example.test");
  EXPECT_EQ(f.curl_exit, 0) << f.err;
  EXPECT_EQ(f.body, kEnforce);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"expired", "certificate has expired"},
      {"wrong-name", "no alternative certificate subject name matches"},
      {"untrusted", "unable to get local issuer certificate"},
      {"self-signed", "self-signed certificate"},
  };
  for (const auto& [kind, why] : bad) {
    const std::string host = "mta-sts." + kind + ".example.test";
    f = curl(w, host);
    EXPECT_EQ(f.curl_exit, 60) << host << ": " << f.err;  // peer certificate cannot be authenticated
    EXPECT_NE(f.err.find(why), std::string::npos) << host << ": " << f.err;
    // Only verification fails: the server is up and serves the policy.
    f = curl(w, host, {"--insecure"});
    EXPECT_EQ(f.status, 200) << host;
    EXPECT_EQ(f.body, kEnforce) << host;
  }

  // A certificate swap applies before the setter returns.
  w.set_cert("valid.example.test", CertKind::expired);
  EXPECT_EQ(curl(w, "mta-sts.valid.example.test").curl_exit, 60);
  w.set_cert("expired.example.test", CertKind::valid);
  EXPECT_EQ(curl(w, "mta-sts.expired.example.test").curl_exit, 0);

  // The TLS floor is 1.2.
  EXPECT_NE(curl(w, "mta-sts.expired.example.test", {"--tls-max", "1.1"}).curl_exit, 0);
}

TEST(World, CaMakesADozenLeavesQuickly) {
  TempDir dir("mtasts-ca-speed");
  const auto t0 = std::chrono::steady_clock::now();
  TestCa ca(dir.path());
  std::vector<std::pair<std::string, CertKind>> leaves;
  for (int i = 0; i < 12; ++i)
    leaves.emplace_back("mta-sts.d" + std::to_string(i) + ".example.test", static_cast<CertKind>(i % 5));
  ca.prepare(leaves);
  const auto took = std::chrono::steady_clock::now() - t0;
  // Typically 0.3 to 0.6 s; the bound leaves room for a machine busy with parallel builds.
  EXPECT_LT(took, 4s) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  std::cout << "CA + 12 leaves: " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";
  // Cached: asking again runs no openssl.
  const auto t1 = std::chrono::steady_clock::now();
  const CertFiles again = ca.leaf("mta-sts.d0.example.test", CertKind::valid);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 50ms);
  // openssl itself agrees with the kinds.
  EXPECT_EQ(run({"openssl", "verify", "-CAfile", ca.ca_file().string(), again.cert.string()}).exit_code, 0);
  const CertFiles expired = ca.leaf("mta-sts.d1.example.test", CertKind::expired);
  EXPECT_NE(run({"openssl", "x509", "-checkend", "0", "-noout", "-in", expired.cert.string()}).exit_code, 0);
  RunResult text = run({"openssl", "x509", "-noout", "-ext", "subjectAltName,basicConstraints", "-in", again.cert.string()});
  EXPECT_NE(text.out.find("DNS:mta-sts.d0.example.test"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("CA:FALSE"), std::string::npos) << text.out;
}

TEST(World, ManyDomainsShareCertificatesAndTwoWorldsCoexist) {
  World a, b;
  EXPECT_NE(a.ip(), b.ip());
  std::vector<std::string> names;
  for (int i = 0; i < 150; ++i) names.push_back("bulk" + std::to_string(i) + ".example.test");
  a.add_domains(names, {.txt = {"v=STSv1; id={domain};"},
                        .policy = World::policy("enforce", {"mx.{domain}"}, 86400)});
  b.add_domain("other.example.test", {.txt = {"v=STSv1; id=other;"}, .policy = kEnforce});
  a.start();
  b.start();
  EXPECT_EQ(drill(a, "_mta-sts.bulk149.example.test", "TXT").answers,
            std::vector<std::string>{"TXT \"v=STSv1; id=bulk149.example.test;\""});
  for (const std::string host : {"mta-sts.bulk0.example.test", "mta-sts.bulk149.example.test"}) {
    Fetch f = curl(a, host);
    EXPECT_EQ(f.curl_exit, 0) << f.err;
    EXPECT_EQ(f.body, World::policy("enforce", {"mx." + host.substr(8)}, 86400));
  }
  // A host of a group can still be changed on its own.
  a.set_behaviour("bulk7.example.test", Behaviour::server_error);
  EXPECT_EQ(curl(a, "mta-sts.bulk7.example.test").status, 500);
  EXPECT_EQ(curl(a, "mta-sts.bulk8.example.test").status, 200);
  // Each world answers only for its own domains.
  EXPECT_EQ(drill(b, "_mta-sts.bulk0.example.test", "TXT").rcode, "NXDOMAIN");
  EXPECT_EQ(curl(b, "mta-sts.other.example.test").curl_exit, 0);
}

TEST(World, CommandLineWorldFromASpecFile) {
  TempDir dir("mtasts-world-cli");
  const std::string ip = World::unique_loopback_ip();
  Process p({(build_dir() / "tests/world/mtasts-world").string(), "--dir", (dir / "w").string(), "--spec",
             (source_dir() / "tests/world/demo.spec").string(), "--ip", ip, "--dns-port", "5353"},
            dir / "out.log");
  ASSERT_TRUE(wait_until([&] { return read_file(dir / "out.log").find("ready\n") != std::string::npos || !p.running(); }, 10s));
  ASSERT_TRUE(p.running()) << read_file(dir / "out.log");
  const std::string env = read_file(dir / "w/world.env");
  EXPECT_NE(env.find("RESOLVER=" + ip + ":5353\n"), std::string::npos) << env;
  EXPECT_NE(env.find("CA_FILE=" + (dir / "w/ca.pem").string() + "\n"), std::string::npos) << env;

  // Reuse the client helpers through a World-shaped view of the CLI's servers.
  auto ask = [&](const std::string& name, const std::string& type) {
    RunResult r = run({"drill", "-p", "5353", "@" + ip, type, name}, 3s);
    return r.out;
  };
  EXPECT_NE(ask("_mta-sts.enforce.demo.test", "TXT").find("\"v=STSv1; id=20260424T120000Z;\""), std::string::npos);
  EXPECT_NE(ask("_mta-sts.testing.demo.test", "TXT").find("\"v=STSv1; \" \"id=testing1;\""), std::string::npos);
  EXPECT_NE(ask("_mta-sts.nopolicy.demo.test", "TXT").find("NXDOMAIN"), std::string::npos);
  EXPECT_NE(ask("_mta-sts.delegated.demo.test", "TXT").find("_mta-sts.provider.demo.test."), std::string::npos);
  EXPECT_NE(ask("nopolicy.demo.test", "MX").find("mail.nopolicy.demo.test."), std::string::npos);

  auto get = [&](const std::string& host) {
    return run({"curl", "-sS", "--noproxy", "*", "--cacert", (dir / "w/ca.pem").string(), "--resolve",
                host + ":443:" + ip, "https://" + host + "/.well-known/mta-sts.txt"},
               10s);
  };
  RunResult r = get("mta-sts.enforce.demo.test");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "version: STSv1\r\nmode: enforce\r\nmx: mail.enforce.demo.test\r\nmx: *.mx.enforce.demo.test\r\n"
                   "max_age: 86400\r\n");
  r = get("mta-sts.none.demo.test");
  EXPECT_EQ(r.out, "version: STSv1\nmode: none\nmax_age: 86400\n");
  r = get("mta-sts.delegated.demo.test");
  EXPECT_NE(r.out.find("mx: mail.provider.demo.test\r\n"), std::string::npos);

  p.signal(SIGTERM);
  auto st = p.wait(10s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << read_file(dir / "out.log");
  // Its servers are gone with it.
  EXPECT_EQ(run({"drill", "-p", "5353", "@" + ip, "TXT", "_mta-sts.enforce.demo.test"}, 1500ms).exit_code, -1);
  EXPECT_NE(get("mta-sts.enforce.demo.test").exit_code, 0);
}

TEST(World, CommandLineRejectsABadSpec) {
  TempDir dir("mtasts-world-cli");
  write_file(dir / "bad.spec", "domain a.test\n  cert forged\n");
  RunResult r = run({(build_dir() / "tests/world/mtasts-world").string(), "--dir", (dir / "w").string(), "--spec",
                     (dir / "bad.spec").string(), "--ip", World::unique_loopback_ip()},
                    10s);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad.spec:2: unknown cert kind 'forged'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mtasts::test
