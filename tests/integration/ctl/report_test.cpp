// `mta-sts-ctl report show|json` (issue 20): the real binary against a real redis-server that
// holds what two MTA hosts' batches made of a day. The counts per domain and result type,
// exit codes, JSON parsed back, and the RFC 8460 report: every field common parsers require,
// and valid against a JSON Schema written from the RFC (python3-jsonschema).
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "common/fleet/redis.hpp"
#include "common/fleet/report_store.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/unit/ctl/mini_json.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;
using tlsrpt::AppliedPolicy;
using tlsrpt::Batch;
using tlsrpt::Result;

RunResult ctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{MTASTS_CTL_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, 60s);
}

std::string describe(const RunResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "stderr:\n" + r.err;
}

// RFC 8460 section 4.4, as a JSON Schema: the required fields, their types, the registered
// values; no other top-level or policy fields are expected of us.
constexpr const char* kSchema = R"({
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["organization-name", "date-range", "contact-info", "report-id", "policies"],
  "properties": {
    "organization-name": {"type": "string"},
    "contact-info": {"type": "string"},
    "report-id": {"type": "string", "minLength": 1},
    "date-range": {
      "type": "object", "required": ["start-datetime", "end-datetime"],
      "properties": {
        "start-datetime": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T00:00:00Z$"},
        "end-datetime": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T23:59:59Z$"}}},
    "policies": {"type": "array", "minItems": 1, "items": {
      "type": "object", "required": ["policy", "summary"],
      "properties": {
        "policy": {"type": "object", "required": ["policy-type", "policy-domain"],
          "properties": {
            "policy-type": {"enum": ["sts", "tlsa", "no-policy-found"]},
            "policy-string": {"type": "array", "items": {"type": "string"}},
            "policy-domain": {"type": "string", "minLength": 1},
            "mx-host": {"type": "array", "items": {"type": "string"}}},
          "additionalProperties": false},
        "summary": {"type": "object",
          "required": ["total-successful-session-count", "total-failure-session-count"],
          "properties": {
            "total-successful-session-count": {"type": "integer", "minimum": 0},
            "total-failure-session-count": {"type": "integer", "minimum": 0}}},
        "failure-details": {"type": "array", "items": {
          "type": "object", "required": ["result-type", "failed-session-count"],
          "properties": {
            "result-type": {"enum": ["starttls-not-supported", "certificate-host-mismatch",
              "certificate-expired", "certificate-not-trusted", "validation-failure", "tlsa-invalid",
              "dnssec-invalid", "dane-required", "sts-policy-fetch-error", "sts-policy-invalid",
              "sts-webpki-invalid"]},
            "sending-mta-ip": {"type": "string"},
            "receiving-mx-hostname": {"type": "string"},
            "receiving-mx-helo": {"type": "string"},
            "receiving-ip": {"type": "string"},
            "failed-session-count": {"type": "integer", "minimum": 1},
            "additional-information": {"type": "string"},
            "failure-reason-code": {"type": "string"}},
          "additionalProperties": false}}}}}},
  "additionalProperties": false
})";

// Validates `json` with python3-jsonschema against `schema_file`; "" when valid, else why.
std::string validate(const std::filesystem::path& dir, const std::string& json, const std::string& schema_file) {
  write_file(dir / "report.json", json);
  const RunResult r = run({"python3", "-c",
                           "import json, sys, jsonschema\n"
                           "jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))\n",
                           (dir / "report.json").string(), schema_file},
                          60s);
  return r.exit_code == 0 ? std::string() : describe(r);
}

std::int64_t today_start() {
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  return now - now % 86400;
}

AppliedPolicy sts() {
  AppliedPolicy p;
  p.type = tlsrpt::PolicyType::sts;
  p.strings = {"version: STSv1", "mode: enforce", "mx: mx1.example.com", "max_age: 86400"};
  p.mx_hosts = {"mx1.example.com"};
  return p;
}

tlsrpt::Session session(std::int64_t day, const std::string& domain, Result r, const std::string& mx = "") {
  tlsrpt::Session s;
  s.time = day + 600;
  s.domain = domain;
  s.result = r;
  s.receiving_mx_hostname = mx;
  if (r != Result::success) {
    s.receiving_ip = "192.0.2.1";
    s.sending_mta_ip = "198.51.100.25";
  }
  return s;
}

class CtlReport : public ::testing::Test {
 protected:
  RedisServer redis;
  TempDir dir{"mtasts-ctl-report"};
  std::string conf;
  std::unique_ptr<Pool> pool;
  std::unique_ptr<ReportStore> store;
  std::int64_t yesterday = today_start() - 86400;
  std::string day = tlsrpt::day_of(yesterday);

  void SetUp() override {
    conf = (dir / "mta-sts.conf").string();
    write_file(conf, "[redis]\naddress = " + redis.address() +
                         "\nprefix = rpttest:\n[reportd]\norganization-name = Example Org\n"
                         "contact-info = tlsrpt@Sender.Example\n");
    RedisOptions ro;
    ro.address = redis.address();
    pool = std::make_unique<Pool>(ro);
    store = std::make_unique<ReportStore>(*pool, "rpttest:", ReportLimits{});
  }
  // Two hosts' batches of yesterday: example.com (sts) 5 successes, 2 expired, 1 mismatch;
  // example.org (no policy) 2 successes, 1 starttls-not-supported. And one success today.
  void fill() {
    Batch a, b;
    for (int i = 0; i < 3; ++i) a.add(session(yesterday, "example.com", Result::success), sts());
    a.add(session(yesterday, "example.com", Result::certificate_expired, "mx1.example.com"), sts());
    a.add(session(yesterday, "example.org", Result::success), AppliedPolicy{});
    for (int i = 0; i < 2; ++i) b.add(session(yesterday, "example.com", Result::success), sts());
    b.add(session(yesterday, "example.com", Result::certificate_expired, "mx1.example.com"), sts());
    b.add(session(yesterday, "example.com", Result::certificate_host_mismatch, "mx1.example.com"), sts());
    b.add(session(yesterday, "example.org", Result::success), AppliedPolicy{});
    b.add(session(yesterday, "example.org", Result::starttls_not_supported, "mx.example.org"), AppliedPolicy{});
    b.add(session(today_start(), "example.net", Result::success), AppliedPolicy{});
    ASSERT_EQ(store->apply("mta1.example.net", 1, a), ReportStore::Applied::applied);
    ASSERT_EQ(store->apply("mta2.example.net", 7, b), ReportStore::Applied::applied);
  }
  RunResult report(std::vector<std::string> args) {
    args.insert(args.begin(), {"-c", conf, "report"});
    return ctl(args);
  }
};

TEST_F(CtlReport, ShowCountsPerDomainAndResultType) {
  fill();
  RunResult r = report({"show", "--day", day});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("example.com: 8 sessions, 5 successful, 3 failed\n"
                       "  certificate-host-mismatch: 1\n"
                       "  certificate-expired: 2\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("example.org: 3 sessions, 2 successful, 1 failed\n  starttls-not-supported: 1\n"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("example.net"), std::string::npos) << "another day's domain: " << r.out;

  r = report({"show", "--json", "--day", day});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const JsonValue v = parse_json(r.out);
  ASSERT_TRUE(v.is_object()) << r.out;
  EXPECT_EQ(v["day"].string, day);
  ASSERT_EQ(v["domains"].array.size(), 2u);
  const JsonValue& com = v["domains"].array[0];
  EXPECT_EQ(com["domain"].string, "example.com");
  EXPECT_EQ(com["successful"].number, 5);
  EXPECT_EQ(com["failed"].number, 3);
  EXPECT_EQ(com["result-types"]["certificate-expired"].number, 2);
  EXPECT_EQ(com["result-types"]["certificate-host-mismatch"].number, 1);
  EXPECT_EQ(com["undetailed-failures"].number, 0);

  // One domain; and the default day is today (UTC).
  r = report({"show", "--json", "--day", day, "EXAMPLE.ORG."});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(parse_json(r.out)["domains"].array.at(0)["result-types"]["starttls-not-supported"].number, 1);
  r = report({"show"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("example.net: 1 session, 1 successful, 0 failed"), std::string::npos) << r.out;
  EXPECT_EQ(report({"show", "--day", day, "unknown.example"}).exit_code, 1);
}

TEST_F(CtlReport, JsonIsTheRfc8460Report) {
  fill();
  const RunResult r = report({"json", "--day", day, "example.com"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const JsonValue v = parse_json(r.out);
  ASSERT_TRUE(v.is_object()) << r.out;
  // The fields parsedmarc and the big receivers require.
  for (const char* k : {"organization-name", "date-range", "contact-info", "report-id", "policies"}) {
    EXPECT_TRUE(v.has(k)) << k;
  }
  // Who reports: [reportd] organization-name and contact-info; the submitter (for the
  // report-id) is the domain of contact-info, as reportd derives it.
  EXPECT_EQ(v["organization-name"].string, "Example Org");
  EXPECT_EQ(v["contact-info"].string, "tlsrpt@Sender.Example");
  EXPECT_EQ(v["report-id"].string, tlsrpt::report_id(day, "example.com", "sender.example"));
  EXPECT_EQ(v["date-range"]["start-datetime"].string, day + "T00:00:00Z");
  EXPECT_EQ(v["date-range"]["end-datetime"].string, day + "T23:59:59Z");
  ASSERT_EQ(v["policies"].array.size(), 1u);
  const JsonValue& p = v["policies"].array[0];
  EXPECT_EQ(p["policy"]["policy-type"].string, "sts");
  EXPECT_EQ(p["policy"]["policy-domain"].string, "example.com");
  EXPECT_EQ(p["policy"]["mx-host"].array.at(0).string, "mx1.example.com");
  EXPECT_EQ(p["summary"]["total-successful-session-count"].number, 5);
  EXPECT_EQ(p["summary"]["total-failure-session-count"].number, 3);
  ASSERT_EQ(p["failure-details"].array.size(), 2u);
  for (const auto& d : p["failure-details"].array) {
    EXPECT_TRUE(d.has("result-type"));
    EXPECT_TRUE(d.has("failed-session-count"));
    EXPECT_EQ(d["receiving-mx-hostname"].string, "mx1.example.com");
    EXPECT_FALSE(d.has("receiving-mx-helo")) << "empty optional fields are left out";
  }
  // The same report-id on every run (and on every host: it is a function of its inputs).
  EXPECT_EQ(parse_json(report({"json", "--day", day, "example.com"}).out)["report-id"].string, v["report-id"].string);

  // no-policy-found keeps its policy-domain (parsers reject a report without it).
  const RunResult org = report({"json", "--day", day, "example.org"});
  ASSERT_EQ(org.exit_code, 0) << describe(org);
  const JsonValue o = parse_json(org.out);
  EXPECT_EQ(o["policies"].array.at(0)["policy"]["policy-type"].string, "no-policy-found");
  EXPECT_EQ(o["policies"].array.at(0)["policy"]["policy-domain"].string, "example.org");

  if (run({"python3", "-c", "import jsonschema"}, 60s).exit_code != 0) {
    GTEST_SKIP() << "python3-jsonschema is not installed (scripts/install-deps.sh installs it)";
  }
  write_file(dir / "schema.json", kSchema);
  EXPECT_EQ(validate(dir.path(), r.out, (dir / "schema.json").string()), "");
  EXPECT_EQ(validate(dir.path(), org.out, (dir / "schema.json").string()), "");
  // The schema of the end-to-end tests, when it is there.
  const std::filesystem::path shared = std::filesystem::path(MTASTS_SOURCE_DIR) / "tests/fixtures/reportd/tlsrpt-report.schema.json";
  if (std::filesystem::exists(shared)) {
    EXPECT_EQ(validate(dir.path(), r.out, shared.string()), "");
    EXPECT_EQ(validate(dir.path(), org.out, shared.string()), "");
  }
  // And the check can fail: a report without policy-domain is refused.
  std::string broken = org.out;
  const std::string field = ",\"policy-domain\":\"example.org\"";
  ASSERT_NE(broken.find(field), std::string::npos) << broken;
  broken.erase(broken.find(field), field.size());
  EXPECT_NE(validate(dir.path(), broken, (dir / "schema.json").string()), "");
}

TEST_F(CtlReport, ExitCodes) {
  fill();
  EXPECT_EQ(report({"json", "--day", day, "unknown.example"}).exit_code, 1);
  EXPECT_EQ(report({"json", "example.com"}).exit_code, 2) << "json needs --day";
  EXPECT_EQ(report({"json", "--day", day}).exit_code, 2);
  EXPECT_EQ(report({"json", "--day", "2026-02-30", "example.com"}).exit_code, 2);
  EXPECT_EQ(report({"show", "--day", "yesterday"}).exit_code, 2);
  EXPECT_EQ(report({"show", "--day", day, "not a domain"}).exit_code, 2);
  EXPECT_EQ(report({"show", "a.example", "b.example"}).exit_code, 2);
  EXPECT_EQ(report({"frob"}).exit_code, 2);
  EXPECT_EQ(report({}).exit_code, 2);
  EXPECT_EQ(ctl({"-c", conf, "cache", "list", "--day", day}).exit_code, 2) << "--day is for report only";
  redis.kill();
  for (const auto& args : std::vector<std::vector<std::string>>{{"show"}, {"json", "--day", day, "example.com"}}) {
    const RunResult r = report(args);
    EXPECT_EQ(r.exit_code, 3) << describe(r);
    EXPECT_NE(r.err.find("mta-sts-ctl: redis: "), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace mtasts::test
