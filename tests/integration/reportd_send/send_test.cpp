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
#include "reportd/send/sender.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/report_mail.hpp"
#include "tests/support/world.hpp"

namespace mtasts::reportd {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kDay = "2026-04-23";
const std::string kJson =
    R"({"organization-name":"Sender Org","date-range":{"start-datetime":"2026-04-23T00:00:00Z","end-datetime":"2026-04-24T00:00:00Z"},"contact-info":"tlsrpt@sender.test","report-id":"2026-04-23.rcpt.test@sender.test","policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx.rcpt.test","max_age: 86400"],"policy-domain":"rcpt.test","mx-host":["mx.rcpt.test"]},"summary":{"total-successful-session-count":5,"total-failure-session-count":1},"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1","receiving-ip":"192.0.2.2","receiving-mx-hostname":"mx.rcpt.test","failed-session-count":1}]}]})";

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

// A real TLS server storing POSTs (tests/integration/reportd_send/post_sink.py).
class PostSink {
 public:
  PostSink(const std::string& host, const std::string& ip, test::TestCa& ca) {
    const test::CertFiles cert = ca.leaf(host, test::CertKind::valid);
    proc_ = std::make_unique<test::Process>(
        std::vector<std::string>{"python3", (test::source_dir() / "tests/integration/reportd_send/post_sink.py").string(),
                                 ip, cert.cert.string(), cert.key.string(), dir_.path().string()},
        dir_ / "sink.log");
    if (!test::wait_until([&] { return port() != 0; }, 10s)) throw std::runtime_error("post_sink.py did not start");
  }
  unsigned port() const {
    std::ifstream in(dir_ / "sink.log");
    std::string word;
    unsigned p = 0;
    in >> word >> p;
    return word == "port" ? p : 0;
  }
  void set_status(int code) { test::write_file(dir_ / "status", std::to_string(code)); }
  // Requests received (whatever the reply), and the bodies accepted.
  std::size_t requests() const {
    return fs::exists(dir_ / "requests.log") ? test::lines_of(test::read_file(dir_ / "requests.log")).size() : 0;
  }
  std::vector<std::pair<std::string, std::string>> accepted() const {  // (content type, body)
    std::vector<std::pair<std::string, std::string>> out;
    for (int n = 0; n < 1000; ++n) {
      if (!fs::exists(dir_ / (std::to_string(n) + ".body"))) continue;
      out.emplace_back(test::read_file(dir_ / (std::to_string(n) + ".type")),
                       test::read_file(dir_ / (std::to_string(n) + ".body")));
    }
    return out;
  }

 private:
  test::TempDir dir_{"mtasts-post-sink"};
  std::unique_ptr<test::Process> proc_;
};

class ReportdSend : public ::testing::Test {
 protected:
  ReportdSend() {
    world.start();
    sink = std::make_unique<PostSink>("tlsrpt.collector.test", world.ip(), world.ca());
    world.dns().add_host("tlsrpt.collector.test", world.ip());
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
  std::string https_rua() const {
    return "https://tlsrpt.collector.test:" + std::to_string(sink->port()) + "/v1/tlsrpt";
  }
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
  EXPECT_EQ(m.get("part1.filename").rfind("sender.test!rcpt.test!1776902400!1776988800!", 0), 0u)
      << m.get("part1.filename");
  EXPECT_EQ(m.json, kJson);

  // https: one POST of the gzipped JSON.
  const auto posts = sink->accepted();
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].first, "application/tlsrpt+gzip");
  EXPECT_EQ(gunzip(posts[0].second), kJson);
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

}  // namespace
}  // namespace mtasts::reportd
