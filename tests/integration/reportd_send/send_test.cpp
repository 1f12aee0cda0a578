// The report sender (reportd/send) with the real resolver, transports and Redis: one report
// per rua, the message as parsed by Python's email package, the POST as received by a TLS
// server, no header from a hostile record, one send for two racing senders, none after a
// restart, and backoff for a failing rua.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/dns/dns.hpp"
#include "common/fleet/report_store.hpp"
#include "common/tlsrpt/report.hpp"
#include "reportd/send/sender.hpp"
#include "reportd/send/store_source.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/support/https_sink.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_acl.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/report_mail.hpp"
#include "tests/support/world.hpp"

namespace mtasts::reportd {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kDay = "2026-04-23";
const std::string kJson =
    R"({"organization-name":"Sender Org","date-range":{"start-datetime":"2026-04-23T00:00:00Z","end-datetime":"2026-04-23T23:59:59Z"},"contact-info":"tlsrpt@sender.test","report-id":"2026-04-23.rcpt.test@sender.test","policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx.rcpt.test","max_age: 86400"],"policy-domain":"rcpt.test","mx-host":["mx.rcpt.test"]},"summary":{"total-successful-session-count":5,"total-failure-session-count":1},"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1","receiving-ip":"192.0.2.2","receiving-mx-hostname":"mx.rcpt.test","failed-session-count":1}]}]})";

std::string gunzip(const std::string& gz) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return "<inflateInit2>";
  std::string out(1 << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_FINISH);
  out.resize(z.total_out);
  inflateEnd(&z);
  return rc == Z_STREAM_END ? out : "<inflate " + std::to_string(rc) + ">";
}

class FixedSource final : public ReportSource {
 public:
  std::vector<std::string> domains(std::string_view day) override {
    return day == kDay ? std::vector<std::string>{"rcpt.test"} : std::vector<std::string>{};
  }
  std::optional<ReportText> report(std::string_view day, std::string_view domain) override {
    if (day != kDay || domain != "rcpt.test") return std::nullopt;
    return ReportText{kJson, "2026-04-23.rcpt.test@sender.test", 1};
  }
};

// The https: rua: tests/support's HttpsSink (a real TLS server keeping each accepted POST) on
// a loopback address of its own, at port 443 as a report URI usually is.
class PostSink {
 public:
  PostSink(const std::string& host, test::TestCa& ca)
      : ip_(test::World::unique_loopback_ip()), sink_(host, ip_, ca, dir_ / "sink") {}
  const std::string& ip() const { return ip_; }
  std::string url(const std::string& path) const { return sink_.url(path); }
  void set_status(int code) { sink_.set_status(code); }
  // Requests received, whatever the reply (from the server's request log).
  std::size_t requests() const {
    std::size_t n = 0;
    for (const auto& line : test::lines_of(sink_.log()))
      if (line.find("\"POST ") != std::string::npos) ++n;
    return n;
  }
  // The requests accepted (2xx): (Content-Type, body).
  std::vector<std::pair<std::string, std::string>> accepted() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& r : sink_.requests()) {
      auto it = r.headers.find("content-type");
      out.emplace_back(it == r.headers.end() ? std::string() : it->second, r.body);
    }
    return out;
  }

 private:
  test::TempDir dir_{"mtasts-post-sink"};
  std::string ip_;
  test::HttpsSink sink_;
};

class ReportdSend : public ::testing::Test {
 protected:
  ReportdSend() {
    world.start();
    sink = std::make_unique<PostSink>("tlsrpt.collector.test", world.ca());
    world.dns().add_host("tlsrpt.collector.test", sink->ip());
    publish({"v=TLSRPTv1; rua=mailto:tlsrpt@rcpt.test," + https_rua()});

    dns::ResolverOptions ro;
    ro.servers = {dns::parse_server(world.resolver())};
    ro.timeout = 500ms;
    ro.retries = 1;
    resolver = dns::make_resolver(ro);
    opts.organization_name = "Sender Org";
    opts.contact_info = "tlsrpt@sender.test";
    opts.sender_address = "tlsrpt-noreply@sender.test";
    opts.sendmail_command = "python3 " + (test::source_dir() / "tests/support/fake_sendmail.py").string() + " " +
                            mail_dir.path().string() + " -i";
    opts.ca_file = world.ca_file().string();
    opts.https_timeout = 10s;
  }
  std::string https_rua() const { return sink->url("/v1/tlsrpt"); }
  void publish(const std::vector<test::TxtRecord>& txt) {
    world.dns().set_txt("_smtp._tls.rcpt.test", txt);
    world.dns().apply();
  }

  // One sender "host": its own Redis pool, store and transports.
  struct Host {
    Host(ReportdSend& t) {
      RedisOptions ro;
      ro.address = t.redis.address();
      ro.command_timeout = 2s;
      pool = std::make_unique<Pool>(ro);
      store = std::make_unique<SendStore>(*pool, "mta-sts:");
      mail = make_sendmail({t.opts.sendmail_command, 30s});
      https = make_https_poster({t.opts.ca_file, t.opts.https_timeout, 5s, "mta-sts-reportd"}, *t.resolver);
      sender = std::make_unique<Sender>(t.opts, t.source, *t.resolver, *mail, *https, *store, t.clock);
    }
    std::unique_ptr<Pool> pool;
    std::unique_ptr<SendStore> store;
    std::unique_ptr<MailSubmitter> mail;
    std::unique_ptr<HttpsPoster> https;
    std::unique_ptr<Sender> sender;
  };

  std::vector<fs::path> mails() const {
    std::vector<fs::path> out;
    for (int n = 0; n < 1000; ++n)
      if (fs::exists(mail_dir / (std::to_string(n) + ".eml"))) out.push_back(mail_dir / (std::to_string(n) + ".eml"));
    return out;
  }

  test::World world;
  test::RedisServer redis;
  std::unique_ptr<PostSink> sink;
  test::TempDir mail_dir{"mtasts-sendmail-out"};
  std::unique_ptr<dns::Resolver> resolver;
  SendOptions opts;
  FixedSource source;
  test::FakeClock clock;
};

TEST_F(ReportdSend, OneReportPerRuaOverRealTransports) {
  Host host(*this);
  SendSummary s = host.sender->send_day(kDay);
  for (const auto& r : s.results) std::printf("  | %s %s %s\n", r.rua.c_str(), to_string(r.outcome), r.detail.c_str());
  EXPECT_TRUE(s.ok());
  ASSERT_EQ(s.results.size(), 2u);

  // mailto: one message, handed to sendmail-command with the envelope after "--".
  const auto eml = mails();
  ASSERT_EQ(eml.size(), 1u);
  const std::string argv = test::read_file(fs::path(eml[0]).replace_extension(".argv"));
  EXPECT_EQ(argv, R"(["-i", "-f", "tlsrpt-noreply@sender.test", "--", "tlsrpt@rcpt.test"])");
  const test::ParsedReportMail m = test::parse_report_mail(test::read_file(eml[0]));
  EXPECT_EQ(m.get("defects"), "0");
  EXPECT_EQ(m.get("header:To"), "tlsrpt@rcpt.test");
  EXPECT_EQ(m.get("header:From"), "tlsrpt-noreply@sender.test");
  EXPECT_EQ(m.get("header:Subject"),
            "Report Domain: rcpt.test Submitter: sender.test Report-ID: <2026-04-23.rcpt.test@sender.test>");
  EXPECT_EQ(m.get("header:TLS-Report-Domain"), "rcpt.test");
  EXPECT_EQ(m.get("header:TLS-Report-Submitter"), "sender.test");
  EXPECT_EQ(m.get("header:TLS-Required"), "No");
  EXPECT_EQ(m.get("header:Auto-Submitted"), "auto-generated");
  EXPECT_EQ(m.get("content_type"), "multipart/report");
  EXPECT_EQ(m.get("report_type"), "tlsrpt");
  EXPECT_EQ(m.get("part1.content_type"), "application/tlsrpt+gzip");
  EXPECT_EQ(m.get("part1.filename").rfind("sender.test!rcpt.test!1776902400!1776988799!", 0), 0u)
      << m.get("part1.filename");
  EXPECT_EQ(m.json, kJson);

  // https: one POST of the gzipped JSON.
  const auto posts = sink->accepted();
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].first, "application/tlsrpt+gzip");
  EXPECT_EQ(gunzip(posts[0].second), kJson);
}

// The daemon's source: the fleet's aggregates (two hosts' batches) sent as exactly the JSON
// `mta-sts-ctl report json` prints (report_meta + report_json over ReportStore::read).
TEST_F(ReportdSend, FleetAggregatesAreSentAsCtlPrintsThem) {
  RedisOptions ro;
  ro.address = redis.address();
  ro.command_timeout = 2s;
  Pool pool(ro);
  ReportStore aggregates(pool, "mta-sts:", ReportLimits{});
  // Yesterday by the wall clock: the aggregates expire `keep` after their day.
  clock.set(SystemClock().now());
  const std::string day = tlsrpt::day_of(clock.now().time_since_epoch().count() - 86400);
  tlsrpt::AppliedPolicy policy;
  policy.type = tlsrpt::PolicyType::sts;
  policy.strings = {"version: STSv1", "mode: enforce", "mx: mx.rcpt.test", "max_age: 86400"};
  policy.mx_hosts = {"mx.rcpt.test"};
  const std::int64_t noon = *tlsrpt::day_start(day) + 43200;
  for (int host = 0; host < 2; ++host) {
    tlsrpt::Batch b;
    tlsrpt::Session ok;
    ok.time = noon;
    ok.domain = "rcpt.test";
    ok.receiving_mx_hostname = "mx.rcpt.test";
    ok.receiving_ip = "192.0.2.25";
    for (int i = 0; i < 3; ++i) b.add(ok, policy);
    tlsrpt::Session bad = ok;
    bad.result = tlsrpt::Result::certificate_expired;
    bad.sending_mta_ip = "192.0.2.1";
    b.add(bad, policy);
    ASSERT_EQ(aggregates.apply("host-" + std::to_string(host), 1, b), ReportStore::Applied::applied);
  }
  StoreReportSource fleet(aggregates, opts.organization_name, opts.contact_info, "");
  SendStore sends(pool, "mta-sts:");
  auto mail = make_sendmail({opts.sendmail_command, 30s});
  auto https = make_https_poster({opts.ca_file, opts.https_timeout, 5s, "mta-sts-reportd"}, *resolver);
  Sender sender(opts, fleet, *resolver, *mail, *https, sends, clock);
  SendSummary s = sender.send_day(day);
  EXPECT_TRUE(s.ok());

  const tlsrpt::ReportMeta meta =
      tlsrpt::report_meta({opts.organization_name, opts.contact_info, ""}, day, "rcpt.test");
  const std::string expected = tlsrpt::report_json(meta, aggregates.read(day, "rcpt.test").policies);
  EXPECT_NE(expected.find("\"total-successful-session-count\":6"), std::string::npos) << expected;
  const auto eml = mails();
  ASSERT_EQ(eml.size(), 1u);
  const test::ParsedReportMail m = test::parse_report_mail(test::read_file(eml[0]));
  EXPECT_EQ(m.json, expected);
  EXPECT_EQ(m.get("header:Subject"),
            "Report Domain: rcpt.test Submitter: sender.test Report-ID: <" + meta.report_id + ">");
  const auto posts = sink->accepted();
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(gunzip(posts[0].second), expected);
  // The mail as a whole against the RFC 8460 schema and mail checks (tests/support).
  const test::RunResult v =
      test::run({"python3", (test::source_dir() / "tests/support/validate_tlsrpt.py").string(), eml[0].string()});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

TEST_F(ReportdSend, InjectionInTheRecordNeverReachesAHeader) {
  publish({"v=TLSRPTv1; rua=mailto:tlsrpt@rcpt.test%0D%0ABcc:victim@evil.test,"
           "mailto:x@rcpt.test%0ABcc%3A%20victim@evil.test,mailto:-oQ/tmp@rcpt.test,mailto:ok@rcpt.test"});
  Host host(*this);
  SendSummary s = host.sender->send_day(kDay);
  EXPECT_TRUE(s.ok());
  const auto eml = mails();
  ASSERT_EQ(eml.size(), 1u);
  const std::string text = test::read_file(eml[0]);
  EXPECT_EQ(text.find("victim"), std::string::npos);
  EXPECT_EQ(text.find("Bcc"), std::string::npos);
  const test::ParsedReportMail m = test::parse_report_mail(text);
  EXPECT_EQ(m.get("header:To"), "ok@rcpt.test");
  EXPECT_EQ(m.count("header:Bcc"), 0u);
  EXPECT_EQ(test::read_file(fs::path(eml[0]).replace_extension(".argv")),
            R"(["-i", "-f", "tlsrpt-noreply@sender.test", "--", "ok@rcpt.test"])");
}

TEST_F(ReportdSend, TwoSendersRacingSendOnce) {
  Host a(*this), b(*this);
  SendSummary ra, rb;
  std::thread ta([&] { ra = a.sender->send_day(kDay); });
  std::thread tb([&] { rb = b.sender->send_day(kDay); });
  ta.join();
  tb.join();
  // The loser found the claim held (busy) or the work done; a second round settles it.
  SendSummary again = (ra.ok() ? b : a).sender->send_day(kDay);
  EXPECT_TRUE(again.ok());
  for (const auto& r : again.results) EXPECT_EQ(r.outcome, SendOutcome::already_sent);
  EXPECT_EQ(mails().size(), 1u);
  EXPECT_EQ(sink->accepted().size(), 1u);
  EXPECT_EQ(sink->requests(), 1u);
}

TEST_F(ReportdSend, RestartAfterSendingDoesNotResend) {
  { Host first(*this); ASSERT_TRUE(first.sender->send_day(kDay).ok()); }
  Host restarted(*this);
  clock.advance(Seconds{3600});
  SendSummary s = restarted.sender->send_day(kDay);
  EXPECT_TRUE(s.ok());
  for (const auto& r : s.results) EXPECT_EQ(r.outcome, SendOutcome::already_sent) << r.rua;
  EXPECT_TRUE(restarted.sender->tick().results.empty() || restarted.sender->tick().ok());
  EXPECT_EQ(mails().size(), 1u);
  EXPECT_EQ(sink->requests(), 1u);
}

TEST_F(ReportdSend, FailingRuaIsRetriedWithBackoff) {
  sink->set_status(503);
  test::write_file(mail_dir / "fail", "");
  Host host(*this);
  auto outcomes = [&] {
    std::map<std::string, SendOutcome> m;
    for (const auto& r : host.sender->send_domain(kDay, "rcpt.test", false)) m[r.rua] = r.outcome;
    return m;
  };
  auto o = outcomes();
  EXPECT_EQ(o["mailto:tlsrpt@rcpt.test"], SendOutcome::retry);
  EXPECT_EQ(o[https_rua()], SendOutcome::retry);
  EXPECT_EQ(sink->requests(), 1u);
  clock.advance(Seconds{299});
  o = outcomes();
  EXPECT_EQ(sink->requests(), 1u) << "not before 5 minutes";
  clock.advance(Seconds{1});
  o = outcomes();
  EXPECT_EQ(sink->requests(), 2u);
  EXPECT_EQ(o[https_rua()], SendOutcome::retry);
  // Both come back; the next try is 10 minutes later.
  sink->set_status(200);
  fs::remove(mail_dir / "fail");
  clock.advance(Seconds{599});
  o = outcomes();
  EXPECT_EQ(sink->requests(), 2u);
  clock.advance(Seconds{1});
  o = outcomes();
  EXPECT_EQ(o["mailto:tlsrpt@rcpt.test"], SendOutcome::sent);
  EXPECT_EQ(o[https_rua()], SendOutcome::sent);
  EXPECT_EQ(mails().size(), 1u);
  EXPECT_EQ(sink->accepted().size(), 1u);
  EXPECT_EQ(sink->requests(), 3u);
}

TEST_F(ReportdSend, RedirectIsNotFollowed) {
  sink->set_status(308);
  Host host(*this);
  std::map<std::string, SendResult> m;
  for (const auto& r : host.sender->send_day(kDay).results) m[r.rua] = r;
  EXPECT_EQ(m[https_rua()].outcome, SendOutcome::retry);
  EXPECT_NE(m[https_rua()].detail.find("redirect"), std::string::npos) << m[https_rua()].detail;
  EXPECT_EQ(sink->requests(), 1u);
}

TEST_F(ReportdSend, UnreadableCaFileIsSaidAtStart) {
  EXPECT_THROW(make_https_poster({(mail_dir / "missing.pem").string(), 10s, 5s, "x"}, *resolver), std::runtime_error);
}

TEST_F(ReportdSend, HttpsRuaWithAnUntrustedCertificateIsNotSentTo) {
  opts.ca_file = world.ca().untrusted_ca_file().string();
  Host host(*this);
  std::map<std::string, SendOutcome> m;
  for (const auto& r : host.sender->send_day(kDay).results) {
    m[r.rua] = r.outcome;
    std::printf("  | %s %s %s\n", r.rua.c_str(), to_string(r.outcome), r.detail.c_str());
  }
  EXPECT_EQ(m[https_rua()], SendOutcome::retry);
  EXPECT_EQ(sink->requests(), 0u);
}

// The shipped ACL (etc/redis-acl.conf) gives the mta-sts-reportd user all that sending takes:
// the --check-redis probes and every SendStore operation, as that user.
TEST(ReportdSendAcl, ShippedAclAllowsSending) {
  test::RedisServer redis(test::acl_user_lines(test::source_dir() / "etc/redis-acl.conf",
                                               [](const std::string& who) { return "pw-" + who; }, false));
  RedisOptions ro;
  ro.address = redis.address();
  ro.user = "mta-sts-reportd";
  ro.password = "pw-reportd";
  Pool pool(ro);
  for (const auto& p : send_store_probes("mta-sts:")) {
    std::vector<std::string_view> argv(p.argv.begin(), p.argv.end());
    EXPECT_NO_THROW(pool.lease()->command(argv)) << p.argv[0] << " " << p.argv[1];
  }
  SendStore store(pool, "mta-sts:");
  ASSERT_TRUE(store.claim(kDay, "rcpt.test", "tok", 60s));
  EXPECT_TRUE(store.renew(kDay, "rcpt.test", "tok", 60s));
  EXPECT_TRUE(store.write(kDay, "rcpt.test", "tok", {{"rua:mailto:a@rcpt.test", "sent 1"}, {"status", "done"}}));
  EXPECT_EQ(store.read(kDay, "rcpt.test").status, "done");
  store.release(kDay, "rcpt.test", "tok");
  EXPECT_FALSE(store.write(kDay, "rcpt.test", "tok", {{"status", "done"}})) << "released: fenced";
}

}  // namespace
}  // namespace mtasts::reportd
