// Integration tests of the real mta-sts-ctl binary, as scripts and operators use it: every
// exit code of every subcommand, the JSON shapes parsed back, `query` against the loopback
// DNS + HTTPS world for each status, and `cache` against a real redis-server (also killed).
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/sts/cache_entry.hpp"
#include "common/sts/policy.hpp"
#include "common/fleet/redis.hpp"
#include "common/fleet/store.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/world.hpp"
#include "tests/unit/ctl/mini_json.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;

RunResult ctl(const std::vector<std::string>& args, const std::string& stdin_data = "") {
  std::vector<std::string> argv{MTASTS_CTL_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, 60s, stdin_data);
}

// Exactly one JSON object on stdout, or the test fails.
JsonValue json_of(const RunResult& r) {
  JsonValue v = parse_json(r.out);
  EXPECT_TRUE(v.is_object()) << "not one JSON object: [" << r.out << "] stderr: " << r.err;
  return v;
}

std::string describe(const RunResult& r) { return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "stderr:\n" + r.err; }

constexpr const char* kPolicy =
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n";

// ---- offline subcommands --------------------------------------------------------------------

class CtlOffline : public ::testing::Test {
 protected:
  TempDir dir{"mtasts-ctl"};
  std::string file(const std::string& name, const std::string& content) {
    write_file(dir / name, content);
    return (dir / name).string();
  }
};

TEST_F(CtlOffline, LintExitCodes) {
  const std::string good = file("good.txt", kPolicy);
  const std::string bad = file("bad.txt", "version: STSv1\nmode: Enforce\nmax_age: 86400\n");
  const std::string warn = file("warn.txt", "version: STSv1\nmode: testing\n\nmx: mail.example.com.\nmax_age: 99999999\n");

  RunResult r = ctl({"lint", good});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("valid: mode=enforce max_age=604800 mx=mail.example.com,*.example.net"), std::string::npos);

  r = ctl({"lint", warn});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find(warn + ":3: warning: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(warn + ":4: warning: "), std::string::npos) << r.out;

  r = ctl({"lint", bad});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_NE(r.out.find(bad + ":2: error: "), std::string::npos) << r.out;

  r = ctl({"lint", "-"}, kPolicy);
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("<stdin>: valid"), std::string::npos);

  r = ctl({"lint", (dir / "missing.txt").string()});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_NE(r.err.find("missing.txt"), std::string::npos);

  EXPECT_EQ(ctl({"lint"}).exit_code, 2);
  EXPECT_EQ(ctl({"lint", good, good}).exit_code, 2);
  EXPECT_EQ(ctl({"lint", "--bogus", good}).exit_code, 2);
  EXPECT_EQ(ctl({"lint", dir.path().string()}).exit_code, 2);  // a directory is an I/O error

  // Over 64 KiB: the fetcher would refuse it, so it is invalid, not an I/O error.
  std::string big = kPolicy;
  while (big.size() <= 65536) big += "x-padding: " + std::string(100, 'x') + "\r\n";
  r = ctl({"lint", file("big.txt", big)});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
}

TEST_F(CtlOffline, LintJson) {
  RunResult r = ctl({"lint", "--json", file("p.txt", "version: STSv1\nmode: enforce\nmx: MAIL.example.com.\nmax_age: 40000000\n")});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  JsonValue v = json_of(r);
  EXPECT_EQ(v["valid"].type, JsonValue::Type::boolean);
  EXPECT_TRUE(v["valid"].boolean);
  EXPECT_TRUE(v["errors"].is_array());
  EXPECT_EQ(v["warnings"].array.size(), 2u);
  EXPECT_EQ(v["mode"].string, "enforce");
  EXPECT_EQ(v["max_age"].number, 31557600);  // effective, clamped
  ASSERT_EQ(v["mx"].array.size(), 1u);
  EXPECT_EQ(v["mx"].array[0].string, "mail.example.com");

  // --json before the subcommand works too; an invalid policy has no policy fields.
  r = ctl({"--json", "lint", "-"}, "version: STSv1\nmode: enforce\nmax_age: 1\n");
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  v = json_of(r);
  EXPECT_FALSE(v["valid"].boolean);
  ASSERT_EQ(v["errors"].array.size(), 1u);
  EXPECT_FALSE(v.has("mode"));
  EXPECT_FALSE(v.has("max_age"));
  EXPECT_FALSE(v.has("mx"));
}

TEST_F(CtlOffline, CheckTxt) {
  RunResult r = ctl({"check-txt", "v=STSv1; id=20260424T120000Z;"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, "policy id 20260424T120000Z\n");

  r = ctl({"check-txt", "--json", "v=spf1 -all", "v=STSv1; id=abc;"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  JsonValue v = json_of(r);
  EXPECT_TRUE(v["valid"].boolean);
  EXPECT_EQ(v["id"].string, "abc");
  EXPECT_TRUE(v["errors"].is_array());
  EXPECT_TRUE(v["warnings"].is_array());

  r = ctl({"check-txt", "--json", "v=spf1 -all"});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  v = json_of(r);
  EXPECT_FALSE(v["valid"].boolean);
  EXPECT_FALSE(v.has("id"));

  r = ctl({"check-txt", "--json", "v=STSv1; id=a;", "v=STSv1; id=b;"});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_EQ(json_of(r)["errors"].array.size(), 1u);

  EXPECT_EQ(ctl({"check-txt", "v=STSv1; id=not-alnum;"}).exit_code, 1);
  EXPECT_EQ(ctl({"check-txt"}).exit_code, 2);
  // A record that looks like an option needs "--".
  EXPECT_EQ(ctl({"check-txt", "-x"}).exit_code, 2);
  EXPECT_EQ(ctl({"check-txt", "--", "-x", "v=STSv1; id=1;"}).exit_code, 0);
}

TEST_F(CtlOffline, Match) {
  EXPECT_EQ(ctl({"match", "mail.example.com", "MAIL.example.com."}).exit_code, 0);
  EXPECT_EQ(ctl({"match", "*.example.com", "mx1.example.com"}).exit_code, 0);
  EXPECT_EQ(ctl({"match", "*.example.com", "example.com"}).exit_code, 1);
  EXPECT_EQ(ctl({"match", "*.example.com", "a.b.example.com"}).exit_code, 1);
  RunResult r = ctl({"match", "mail.*.example.com", "mail.x.example.com"});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_FALSE(r.err.empty());
  EXPECT_EQ(ctl({"match", "mail.example.com"}).exit_code, 2);
  EXPECT_EQ(ctl({"match", "--json", "a.example", "a.example"}).exit_code, 2);
}

TEST_F(CtlOffline, GlobalOptions) {
  RunResult r = ctl({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, std::string("mta-sts-ctl ") + MTASTS_VERSION + "\n");
  EXPECT_EQ(ctl({"-V"}).exit_code, 0);

  r = ctl({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* s : {"lint", "check-txt", "match", "query", "cache", "--resolver", "--redis-address"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;

  EXPECT_EQ(ctl({}).exit_code, 2);
  EXPECT_EQ(ctl({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(ctl({"--no-such-option", "cache", "list"}).exit_code, 2);

  // -n checks the configuration: 0 valid, 2 with FILE:LINE otherwise.
  const std::string good = file("good.conf", "[ctl]\nfetch-timeout = 10s\n");
  const std::string bad = file("bad.conf", "[ctl]\nfetch-timeout = 10s\nno-such-key = 1\n");
  r = ctl({"-n", "-c", good});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  r = ctl({"--check", "--config", bad});
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_NE(r.err.find(bad + ":3:"), std::string::npos) << r.err;
  EXPECT_EQ(ctl({"-c", (dir / "none.conf").string(), "cache", "list"}).exit_code, 2);
  EXPECT_EQ(ctl({"--redis-db", "99", "cache", "list"}).exit_code, 2);
}

// ---- query against the loopback world ---------------------------------------------------------

class CtlQuery : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    world_ = new World();
    {
      auto batch = world_->batch();
      world_->add_domain("valid.ctl.test", {.txt = {{"v=STSv1; ", "id=ctl1;"}},
                                            .policy = World::policy("enforce", {"mail.valid.ctl.test", "*.mx.ctl.test"}, 86400),
                                            .mx = {"mail.valid.ctl.test", "a.mx.ctl.test", "b.c.mx.ctl.test", "mx.elsewhere.test"}});
      world_->add_domain("nomatch.ctl.test", {.txt = {"v=STSv1; id=nm1;"},
                                              .policy = World::policy("enforce", {"mx.nomatch.ctl.test"}, 86400),
                                              .mx = {"mx.old-provider.test"}});
      world_->add_domain("implicit.ctl.test", {.txt = {"v=STSv1; id=im1;"},
                                               .policy = World::policy("testing", {"implicit.ctl.test"}, 86400)});
      world_->dns().add_host("implicit.ctl.test", "192.0.2.25");  // exists, but has no MX
      world_->add_domain("nopolicy.ctl.test", {.policy_host = false});
      world_->add_domain("servfail.ctl.test", {.txt_failure = DnsFailure::servfail});
      world_->add_domain("notfound.ctl.test", {.txt = {"v=STSv1; id=nf1;"},
                                               .policy = World::policy("enforce", {"mail.notfound.ctl.test"}, 86400),
                                               .behaviour = Behaviour::not_found});
      world_->add_domain("badcert.ctl.test", {.txt = {"v=STSv1; id=bc1;"},
                                              .policy = World::policy("enforce", {"mail.badcert.ctl.test"}, 86400),
                                              .cert = CertKind::wrong_name});
      world_->add_domain("invalid.ctl.test", {.txt = {"v=STSv1; id=inv1;"}, .policy = "version: STSv1\r\nmode: strict\r\n"});
    }
    world_->start();
  }
  static void TearDownTestSuite() {
    delete world_;
    world_ = nullptr;
  }
  static RunResult query(const std::string& domain, bool json) {
    std::vector<std::string> args{"-c", "/dev/null", "query", "--resolver", world_->resolver(),
                                  "--ca-file", world_->ca_file().string(), "--dns-timeout", "1s",
                                  "--fetch-timeout", "10s"};
    if (json) args.push_back("--json");
    args.push_back(domain);
    return ctl(args);
  }
  static World* world_;
};
World* CtlQuery::world_ = nullptr;

TEST_F(CtlQuery, Valid) {
  RunResult r = query("valid.ctl.test", true);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  JsonValue v = json_of(r);
  EXPECT_EQ(v["domain"].string, "valid.ctl.test");
  EXPECT_EQ(v["status"].string, "valid");
  EXPECT_EQ(v["id"].string, "ctl1");
  EXPECT_EQ(v["mode"].string, "enforce");
  EXPECT_EQ(v["max_age"].number, 86400);
  ASSERT_EQ(v["mx"].array.size(), 2u);
  EXPECT_EQ(v["mx"].array[0].string, "mail.valid.ctl.test");
  EXPECT_EQ(v["mx"].array[1].string, "*.mx.ctl.test");
  EXPECT_EQ(v["fetch"]["result"].string, "ok");
  EXPECT_EQ(v["fetch"]["http_status"].number, 200);
  EXPECT_EQ(v["txt_records"].array.size(), 1u);

  // Human output shows the steps and ends with the verdict.
  r = query("VALID.ctl.test.", false);
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("ctl1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mail.valid.ctl.test"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("valid.ctl.test: valid"), std::string::npos) << r.out;
}

TEST_F(CtlQuery, ChecksTheMxHostsAgainstThePolicy) {
  // Preference order; the exact pattern, the one-label wildcard; two labels under "*." and a
  // host elsewhere match nothing (RFC 8461 section 4.1).
  RunResult r = query("valid.ctl.test", true);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  JsonValue mx = json_of(r)["mx_check"];
  EXPECT_EQ(mx["dns"].string, "ok");
  ASSERT_EQ(mx["hosts"].array.size(), 4u) << r.out;
  EXPECT_EQ(mx["hosts"].array[0]["host"].string, "mail.valid.ctl.test");
  EXPECT_EQ(mx["hosts"].array[0]["pattern"].string, "mail.valid.ctl.test");
  EXPECT_EQ(mx["hosts"].array[1]["host"].string, "a.mx.ctl.test");
  EXPECT_EQ(mx["hosts"].array[1]["pattern"].string, "*.mx.ctl.test");
  EXPECT_EQ(mx["hosts"].array[2]["host"].string, "b.c.mx.ctl.test");
  EXPECT_TRUE(mx["hosts"].array[2]["pattern"].is_null());
  EXPECT_TRUE(mx["hosts"].array[3]["pattern"].is_null());
  EXPECT_EQ(mx["matching"].number, 2);

  r = query("valid.ctl.test", false);
  EXPECT_NE(r.out.find("  20 a.mx.ctl.test: matches *.mx.ctl.test\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  30 b.c.mx.ctl.test: matches no mx pattern\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("delivery: delivered over verified TLS to the matching MX hosts only (2 of 4 MX hosts match)"),
            std::string::npos) << r.out;

  // An enforce policy that none of the MX hosts matches: mail is not delivered at all.
  r = query("nomatch.ctl.test", false);
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("  10 mx.old-provider.test: matches no mx pattern"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("delivery: NOT DELIVERED: no MX host matches the policy"), std::string::npos) << r.out;
  EXPECT_EQ(json_of(query("nomatch.ctl.test", true))["mx_check"]["matching"].number, 0);

  // No MX records: the domain itself is the mail host (RFC 5321 section 5.1).
  r = query("implicit.ctl.test", true);
  mx = json_of(r)["mx_check"];
  EXPECT_EQ(mx["dns"].string, "nodata");
  EXPECT_TRUE(mx["implicit"].boolean);
  ASSERT_EQ(mx["hosts"].array.size(), 1u) << r.out;
  EXPECT_EQ(mx["hosts"].array[0]["pattern"].string, "implicit.ctl.test");

  // No policy: no MX check.
  EXPECT_FALSE(json_of(query("nopolicy.ctl.test", true)).has("mx_check"));
}

TEST_F(CtlQuery, UsesTheFetchersResolverAndTrustStoreByDefault) {
  // Only [cached] names the resolver and CA (as on a fetcher host): query sees what the
  // fetcher sees, instead of "no-policy" from another resolver.
  TempDir dir("mtasts-ctl-query");
  write_file(dir / "c.conf", "[cached]\nresolver = " + world_->resolver() + "\nca-file = " + world_->ca_file().string() +
                                 "\ndns-timeout = 1s\n");
  RunResult r = ctl({"-c", (dir / "c.conf").string(), "query", "--json", "valid.ctl.test"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(json_of(r)["status"].string, "valid") << r.out;
}

TEST_F(CtlQuery, NoPolicy) {
  RunResult r = query("nopolicy.ctl.test", true);
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  JsonValue v = json_of(r);
  EXPECT_EQ(v["status"].string, "no-policy");
  EXPECT_TRUE(v["id"].is_null());
  EXPECT_FALSE(v.has("mode"));
}

TEST_F(CtlQuery, DnsError) {
  RunResult r = query("servfail.ctl.test", true);
  EXPECT_EQ(r.exit_code, 3) << describe(r);
  EXPECT_EQ(json_of(r)["status"].string, "dns-error");
  r = query("servfail.ctl.test", false);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.out.find("dns-error"), std::string::npos) << r.out;
}

TEST_F(CtlQuery, FetchError) {
  RunResult r = query("notfound.ctl.test", true);
  EXPECT_EQ(r.exit_code, 3) << describe(r);
  JsonValue v = json_of(r);
  EXPECT_EQ(v["status"].string, "fetch-error");
  EXPECT_EQ(v["id"].string, "nf1");
  EXPECT_EQ(v["fetch"]["http_status"].number, 404);
  EXPECT_EQ(v["fetch"]["result"].string, "http-status");

  r = query("badcert.ctl.test", true);
  EXPECT_EQ(r.exit_code, 3) << describe(r);
  v = json_of(r);
  EXPECT_EQ(v["status"].string, "fetch-error");
  EXPECT_EQ(v["fetch"]["result"].string, "certificate");
}

TEST_F(CtlQuery, PolicyInvalid) {
  RunResult r = query("invalid.ctl.test", true);
  EXPECT_EQ(r.exit_code, 3) << describe(r);
  JsonValue v = json_of(r);
  EXPECT_EQ(v["status"].string, "policy-invalid");
  EXPECT_FALSE(v["errors"].array.empty());
  EXPECT_FALSE(v.has("mode"));
}

TEST_F(CtlQuery, Usage) {
  EXPECT_EQ(query("not a domain", false).exit_code, 2);
  EXPECT_EQ(query("[192.0.2.1]", false).exit_code, 2);
  EXPECT_EQ(ctl({"-c", "/dev/null", "query"}).exit_code, 2);
  EXPECT_EQ(ctl({"-c", "/dev/null", "query", "a.test", "b.test"}).exit_code, 2);
  EXPECT_EQ(ctl({"-c", "/dev/null", "query", "--resolver", "not-an-ip", "a.test"}).exit_code, 2);
}

// ---- cache against a real Redis ---------------------------------------------------------------

class CtlCache : public ::testing::Test {
 protected:
  RedisServer redis;
  TempDir dir{"mtasts-ctl-cache"};
  std::string conf;
  const SysTime now = SystemClock().now();
  std::unique_ptr<Pool> pool;
  std::unique_ptr<PolicyStore> store;

  void SetUp() override {
    conf = (dir / "mta-sts.conf").string();
    write_file(conf, "[redis]\naddress = " + redis.address() + "\nprefix = ctltest:\n");
    RedisOptions ro;
    ro.address = redis.address();
    pool = std::make_unique<Pool>(ro);
    StoreOptions so;
    so.prefix = "ctltest:";
    store = std::make_unique<PolicyStore>(*pool, so);
  }
  RunResult cache(std::vector<std::string> args, const std::string& stdin_data = "") {
    args.insert(args.begin(), {"-c", conf, "cache"});
    return ctl(args, stdin_data);
  }
  static Domain dom(const std::string& s) { return *Domain::parse(s).domain; }

  // What a fetcher writes for a domain with a policy, and for one without.
  void put_policy(const std::string& domain, const std::string& id) {
    CacheEntry e;
    StoredPolicy sp;
    sp.policy = *parse_policy(kPolicy).policy;
    sp.raw = kPolicy;
    sp.id = id;
    sp.fetched_at = now - Seconds{60};
    sp.expires_at = now + Seconds{604800 - 60};
    e.policy = sp;
    e.checked_at = now - Seconds{60};
    e.next_refresh = now + Seconds{3600};
    store->put(dom(domain), e, now, true);
  }
  void put_negative(const std::string& domain) {
    CacheEntry e;
    e.no_policy_until = now + Seconds{3600};
    e.checked_at = now;
    e.next_refresh = now + Seconds{3600};
    store->put(dom(domain), e, now, true);
  }
};

TEST_F(CtlCache, Show) {
  put_policy("cached.example", "pol1");
  put_negative("negative.example");

  RunResult r = cache({"show", "cached.example"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("enforce"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("id=pol1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("version: STSv1"), std::string::npos) << r.out;  // raw policy shown

  r = cache({"show", "--json", "CACHED.example."});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  JsonValue v = json_of(r);
  EXPECT_EQ(v["domain"].string, "cached.example");
  EXPECT_EQ(v["verdict"].string, "enforce");
  EXPECT_EQ(v["policy"]["id"].string, "pol1");
  EXPECT_EQ(v["policy"]["max_age"].number, 604800);
  EXPECT_EQ(v["policy"]["mx"].array.size(), 2u);
  EXPECT_TRUE(v["policy"]["usable"].boolean);
  EXPECT_TRUE(v["failure"].is_null());

  r = cache({"show", "--json", "negative.example"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  v = json_of(r);
  EXPECT_EQ(v["verdict"].string, "no-policy");
  EXPECT_TRUE(v["policy"].is_null());
  EXPECT_TRUE(v["no_policy_until"].is_string());

  r = cache({"show", "absent.example"});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  r = cache({"show", "--json", "absent.example"});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_TRUE(json_of(r)["verdict"].is_null());

  EXPECT_EQ(cache({"show", "not a domain"}).exit_code, 2);
  EXPECT_EQ(cache({"show"}).exit_code, 2);
  EXPECT_EQ(cache({"show", "a.example", "b.example"}).exit_code, 2);

  // Another prefix is another deployment: nothing there.
  EXPECT_EQ(cache({"--redis-prefix", "other:", "show", "cached.example"}).exit_code, 1);
}

TEST_F(CtlCache, ListAndLimit) {
  put_policy("one.example", "id1");
  put_policy("two.example", "id2");
  put_negative("three.example");

  RunResult r = cache({"list"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  for (const char* d : {"one.example", "two.example", "three.example"}) EXPECT_NE(r.out.find(d), std::string::npos) << d;

  r = cache({"list", "--json"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  JsonValue v = json_of(r);
  EXPECT_EQ(v["count"].number, 3);
  ASSERT_EQ(v["domains"].array.size(), 3u);
  int with_mode = 0;
  for (const auto& d : v["domains"].array) {
    EXPECT_TRUE(d["domain"].is_string());
    EXPECT_TRUE(d["verdict"].is_string());
    with_mode += d.has("mode") ? 1 : 0;
  }
  EXPECT_EQ(with_mode, 2);

  r = cache({"list", "--limit", "1"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.err.find("--limit"), std::string::npos) << r.err;
  EXPECT_EQ(cache({"list", "--limit", "0"}).exit_code, 2);
  EXPECT_EQ(cache({"list", "--limit", "x"}).exit_code, 2);
  EXPECT_EQ(cache({"list", "extra"}).exit_code, 2);
}

TEST_F(CtlCache, Drop) {
  put_policy("drop.example", "d1");
  RunResult r = cache({"drop", "--json", "drop.example"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  JsonValue v = json_of(r);
  EXPECT_EQ(v["domain"].string, "drop.example");
  EXPECT_TRUE(v["dropped"].boolean);
  EXPECT_FALSE(store->get(dom("drop.example")).has_value());
  EXPECT_EQ(cache({"show", "drop.example"}).exit_code, 1);
  const std::string mark = redis.cli({"GET", "ctltest:v1:dropped:drop.example"});
  EXPECT_FALSE(mark.empty()) << "the drop mark every MTA host reads with the entry";
  r = cache({"drop", "drop.example"});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_NE(r.out.find("not cached (copies held by MTA hosts are dropped)"), std::string::npos) << r.out;
  EXPECT_NE(redis.cli({"GET", "ctltest:v1:dropped:drop.example"}), mark) << "moved again: held copies go";
  EXPECT_EQ(cache({"drop"}).exit_code, 2);
}

TEST_F(CtlCache, Warm) {
  const std::string list = (dir / "warm.txt").string();
  write_file(list, "# top destinations\nwarm1.example\n\nWARM2.example.  # comment\nnot a domain\n[192.0.2.1]\n");
  RunResult r = cache({"warm", list});
  EXPECT_EQ(r.exit_code, 1) << describe(r);  // bad lines reported, good ones scheduled
  EXPECT_NE(r.err.find(list + ":5:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(list + ":6:"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("scheduled 2 domains"), std::string::npos) << r.out;
  EXPECT_EQ(store->schedule_size(), 2u);
  // Scheduled for now: a fetcher takes them at once.
  auto due = store->due(now + Seconds{5}, 10);
  EXPECT_EQ(due.size(), 2u);

  r = cache({"warm", "--json", "-"}, "warm3.example\nwarm1.example\n");
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  JsonValue v = json_of(r);
  EXPECT_EQ(v["scheduled"].number, 2);
  EXPECT_TRUE(v["errors"].array.empty());
  EXPECT_EQ(store->schedule_size(), 3u);

  EXPECT_EQ(cache({"warm", (dir / "missing.txt").string()}).exit_code, 2);
  EXPECT_EQ(cache({"warm"}).exit_code, 2);
}

TEST_F(CtlCache, Stats) {
  store->signal_miss(dom("miss1.example"), now);
  store->signal_miss(dom("miss2.example"), now);
  put_policy("sched.example", "s1");
  store->write_stats("fetcher-a", {{"discoveries", 5}, {"failures_fetch", 1}}, Seconds{600});

  RunResult r = cache({"stats", "--json"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  JsonValue v = json_of(r);
  EXPECT_EQ(v["misses"].number, 2);
  EXPECT_EQ(v["scheduled"].number, 1);
  EXPECT_EQ(v["wanted"].number, 1) << "the written entry has a wanted record";
  EXPECT_EQ(v["fetchers"]["fetcher-a"]["discoveries"].number, 5);
  EXPECT_EQ(v["fetchers"]["fetcher-a"]["failures_fetch"].number, 1);

  r = cache({"stats"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("fetcher fetcher-a"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nwanted        1  (domains with a recorded lookup)\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fetcher fetcher-a  last report unknown"), std::string::npos) << r.out;  // an old fetcher
  EXPECT_EQ(cache({"stats", "extra"}).exit_code, 2);
}

TEST_F(CtlCache, StatsShowEachFetchersAgeAndMarkStaleOnes) {
  const SysTime real_now = SystemClock().now();
  const auto at = [](SysTime t) { return static_cast<long long>(t.time_since_epoch().count()); };
  // Reports every 5 minutes: one reported 10 s ago, one 20 minutes ago (it stopped).
  store->write_stats("alive", {{"discoveries", 3}, {"reported_at", at(real_now - Seconds{10})}, {"stats_interval", 300}},
                     Seconds{900});
  store->write_stats("gone", {{"discoveries", 7}, {"reported_at", at(real_now - Seconds{1200})}, {"stats_interval", 300}},
                     Seconds{900});

  RunResult r = cache({"stats"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  std::istringstream lines(r.out);
  std::string alive, gone;
  for (std::string l; std::getline(lines, l);) {
    if (l.rfind("fetcher alive", 0) == 0) alive = l;
    if (l.rfind("fetcher gone", 0) == 0) gone = l;
  }
  EXPECT_NE(alive.find("last report " + iso_time(real_now - Seconds{10})), std::string::npos) << r.out;
  EXPECT_EQ(alive.find("STALE"), std::string::npos) << r.out;
  EXPECT_NE(gone.find("last report " + iso_time(real_now - Seconds{1200})), std::string::npos) << r.out;
  EXPECT_NE(gone.find("(1200s ago)"), std::string::npos) << r.out;
  EXPECT_NE(gone.find("STALE"), std::string::npos) << r.out;

  r = cache({"stats", "--json"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  JsonValue v = json_of(r);
  EXPECT_FALSE(v["fetchers"]["alive"]["stale"].boolean);
  EXPECT_TRUE(v["fetchers"]["gone"]["stale"].boolean);
  EXPECT_GE(v["fetchers"]["gone"]["report_age"].number, 1200);
  EXPECT_EQ(v["fetchers"]["gone"]["stats_interval"].number, 300);
}

TEST_F(CtlCache, RedisDownIsExitThree) {
  put_policy("x.example", "x1");
  redis.kill();
  const std::string list = (dir / "warm.txt").string();
  write_file(list, "a.example\n");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"show", "x.example"}, {"list"}, {"drop", "x.example"}, {"warm", list}, {"stats"}}) {
    RunResult r = cache(args);
    EXPECT_EQ(r.exit_code, 3) << args[0] << ": " << describe(r);
    EXPECT_NE(r.err.find("mta-sts-ctl: redis: "), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("redis: redis:"), std::string::npos) << r.err;  // one prefix
  }
  // And back: the same commands work again without anything else being restarted.
  redis.start();
  EXPECT_EQ(cache({"show", "x.example"}).exit_code, 1);  // a fresh Redis is empty
}

TEST_F(CtlCache, Usage) {
  EXPECT_EQ(cache({}).exit_code, 2);
  EXPECT_EQ(cache({"frob"}).exit_code, 2);
  EXPECT_EQ(cache({"show", "--limit", "3", "a.example"}).exit_code, 2);
}

}  // namespace
}  // namespace mtasts::test
