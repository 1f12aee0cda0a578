// Unit tests of the report sender (reportd/send/): message, transports, sending rules.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <map>
#include <mutex>

#include "common/tlsrpt/model.hpp"
#include "reportd/send/message.hpp"
#include "reportd/send/send_store.hpp"
#include "reportd/send/sender.hpp"
#include "reportd/send/transport.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/fake_resolver.hpp"
#include "tests/support/process.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/report_mail.hpp"

namespace mtasts::reportd {
namespace {

using namespace std::chrono_literals;

const std::string kJson =
    R"({"organization-name":"Example Org","date-range":{"start-datetime":"2026-04-23T00:00:00Z","end-datetime":"2026-04-23T23:59:59Z"},"contact-info":"tlsrpt@sender.example","report-id":"2026-04-23.example.com@sender.example","policies":[]})";

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

ReportMail sample_mail() {
  ReportMail m;
  m.from = "tlsrpt-noreply@sender.example";
  m.to = "reports@example.com";
  m.submitter = "sender.example";
  m.policy_domain = "example.com";
  m.report_id = "2026-04-23.example.com@sender.example";
  m.day = "2026-04-23";
  m.organization = "Example Org";
  m.gz = gzip(kJson);
  m.date = test::FakeClock::kStart;
  return m;
}

TEST(ReportMessage, FileNameFollowsRfc8460) {
  EXPECT_EQ(report_filename("mail.sender.example", "example.com", "2026-12-07", "001"),
            "mail.sender.example!example.com!1796601600!1796687999!001.json.gz");
  EXPECT_EQ(report_filename("s.example", "example.com", "2026-12-07", ""),
            "s.example!example.com!1796601600!1796687999.json.gz");
  EXPECT_THROW(report_filename("s.example", "example.com", "2026-13-07", ""), std::invalid_argument);
  EXPECT_THROW(report_filename("s.example", "example.com", "2026-12-07", "a!b"), std::invalid_argument);
  EXPECT_TRUE(is_report_id("20261207.example.com.0123456789abcdef"));  // tlsrpt::report_id's form
  EXPECT_TRUE(is_report_id("735ff.e317+bf22029@example.net"));         // RFC 8460's example
  EXPECT_FALSE(is_report_id("x>\r\nBcc: y"));
  const std::string id = unique_id_of("x@y");
  EXPECT_EQ(id, unique_id_of("x@y"));
  EXPECT_NE(id, unique_id_of("x@z"));
}

TEST(ReportMessage, GzipAndBase64) {
  EXPECT_EQ(gunzip(gzip(kJson)), kJson);
  EXPECT_EQ(gunzip(gzip("")), "");
  const std::string gz = gzip(kJson);
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);  // gzip magic, not a zlib header
  EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
  EXPECT_EQ(base64_lines("Man"), "TWFu\n");
  EXPECT_EQ(base64_lines("Ma"), "TWE=\n");
  EXPECT_EQ(base64_lines("M"), "TQ==\n");
  EXPECT_EQ(base64_lines(""), "");
  for (const auto& line : test::lines_of(base64_lines(std::string(1000, 'x')))) EXPECT_LE(line.size(), 76u);
  EXPECT_EQ(rfc5322_date(test::FakeClock::kStart), "Fri, 24 Apr 2026 12:00:00 +0000");
}

TEST(ReportMessage, ParsesBackAsRfc8460Report) {
  const std::string msg = build_report_mail(sample_mail());
  const test::ParsedReportMail p = test::parse_report_mail(msg);
  EXPECT_EQ(p.get("defects"), "0") << msg;
  EXPECT_EQ(p.get("header:From"), "tlsrpt-noreply@sender.example");
  EXPECT_EQ(p.get("header:To"), "reports@example.com");
  EXPECT_EQ(p.get("header:Subject"),
            "Report Domain: example.com Submitter: sender.example Report-ID: <2026-04-23.example.com@sender.example>");
  EXPECT_EQ(p.get("header:TLS-Report-Domain"), "example.com");
  EXPECT_EQ(p.get("header:TLS-Report-Submitter"), "sender.example");
  EXPECT_EQ(p.get("header:TLS-Required"), "No");
  EXPECT_EQ(p.get("header:Auto-Submitted"), "auto-generated");
  EXPECT_EQ(p.get("header:MIME-Version"), "1.0");
  EXPECT_EQ(p.get("header:Date"), "Fri, 24 Apr 2026 12:00:00 +0000");
  EXPECT_NE(p.get("header:Message-ID").find("@sender.example>"), std::string::npos);
  EXPECT_EQ(p.get("content_type"), "multipart/report");
  EXPECT_EQ(p.get("report_type"), "tlsrpt");
  EXPECT_EQ(p.get("parts"), "2");
  EXPECT_EQ(p.get("part0.content_type"), "text/plain");
  EXPECT_NE(p.get("part0.text").find("example.com"), std::string::npos);
  EXPECT_EQ(p.get("part1.content_type"), "application/tlsrpt+gzip");
  EXPECT_EQ(p.get("part1.cte"), "base64");
  EXPECT_EQ(p.get("part1.disposition"), "attachment");
  EXPECT_EQ(p.get("part1.filename"), "sender.example!example.com!1776902400!1776988799!" +
                                         unique_id_of("2026-04-23.example.com@sender.example") + ".json.gz");
  EXPECT_EQ(p.json, kJson);
  // RFC 5322 section 2.1.1: at most 998; only the filename parameter's line passes 78 (it
  // is not folded inside the quoted name, which some report parsers would not unfold).
  EXPECT_LE(std::stoi(p.get("max_line")), 998);
  for (const auto& line : test::lines_of(msg)) {
    if (line.size() > 78) {
      EXPECT_EQ(line.rfind(" filename=\"", 0), 0u) << line;
    }
  }
  // Every header exactly once.
  for (const char* h : {"header:From", "header:To", "header:Subject", "header:Date", "header:Message-ID",
                        "header:TLS-Report-Domain", "header:TLS-Report-Submitter", "header:Content-Type"})
    EXPECT_EQ(p.count(h), 1u) << h;
}

TEST(ReportMessage, RefusesWhatCouldInjectAHeader) {
  auto with = [](auto change) {
    ReportMail m = sample_mail();
    change(m);
    return m;
  };
  const ReportMail bad[] = {
      with([](ReportMail& m) { m.to = "a@example.com\r\nBcc: x@evil.example"; }),
      with([](ReportMail& m) { m.to = "a@example.com, x@evil.example"; }),
      with([](ReportMail& m) { m.to = "<a@example.com>"; }),
      with([](ReportMail& m) { m.to = "-oQ@example.com"; }),
      with([](ReportMail& m) { m.from = "a@example.com\nX: y"; }),
      with([](ReportMail& m) { m.report_id = "x>\nBcc: y@z.example"; }),
      with([](ReportMail& m) { m.report_id = "a b"; }),
      with([](ReportMail& m) { m.report_id = ".x"; }),
      with([](ReportMail& m) { m.report_id = ""; }),
      with([](ReportMail& m) { m.policy_domain = "example.com\nX: y"; }),
      with([](ReportMail& m) { m.submitter = "Sender.Example"; }),
  };
  for (const auto& m : bad) EXPECT_THROW(build_report_mail(m), std::invalid_argument) << m.to << m.report_id;
  // An organization name with a line break is left out of the text, not written.
  const std::string msg = build_report_mail(with([](ReportMail& m) { m.organization = "Evil\n\n--x"; }));
  EXPECT_EQ(msg.find("Evil"), std::string::npos);
}

TEST(SendmailTransport, SplitCommand) {
  EXPECT_EQ(split_command("/usr/sbin/sendmail -i"), (std::vector<std::string>{"/usr/sbin/sendmail", "-i"}));
  EXPECT_EQ(split_command("  a \t b  "), (std::vector<std::string>{"a", "b"}));
  EXPECT_THROW(split_command(""), std::invalid_argument);
  EXPECT_THROW(split_command("   "), std::invalid_argument);
  // No shell: a ";" is an argument like any other; quotes would mean something else to a
  // shell, so they are refused rather than misread.
  EXPECT_EQ(split_command("sendmail -i;"), (std::vector<std::string>{"sendmail", "-i;"}));
  EXPECT_THROW(split_command("sendmail -F \"Report Robot\""), std::invalid_argument);
  EXPECT_THROW(split_command("sendmail -i\n"), std::invalid_argument);
}

class SendmailScript : public ::testing::Test {
 protected:
  SendmailScript() {
    test::write_file(dir / "sendmail.sh",
                     "#!/bin/sh\n"
                     "out=\"$1\"; shift\n"
                     "printf '%s\\n' \"$@\" > \"$out/argv\"\n"
                     "cat > \"$out/stdin\"\n"
                     "if [ -e \"$out/fail\" ]; then echo 'no queue space' >&2; exit 75; fi\n"
                     "if [ -e \"$out/hang\" ]; then sleep 30; fi\n"
                     "exit 0\n");
    std::filesystem::permissions(dir / "sendmail.sh", std::filesystem::perms::owner_all);
  }
  std::unique_ptr<MailSubmitter> submitter(std::chrono::milliseconds timeout = 10s) {
    return make_sendmail({(dir / "sendmail.sh").string() + " " + dir.path().string() + " -i", timeout});
  }
  test::TempDir dir{"mtasts-sendmail"};
};

TEST_F(SendmailScript, MessageOnStdinAddressesAfterDoubleDash) {
  const std::string msg = build_report_mail(sample_mail()) + std::string(300000, 'x') + "\n";
  Delivery d = submitter()->submit("tlsrpt-noreply@sender.example", "reports@example.com", msg);
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(test::read_file(dir / "stdin"), msg);
  EXPECT_EQ(test::lines_of(test::read_file(dir / "argv")),
            (std::vector<std::string>{"-i", "-f", "tlsrpt-noreply@sender.example", "--", "reports@example.com"}));
}

TEST_F(SendmailScript, ExitStatusAndStderrAreReported) {
  test::write_file(dir / "fail", "");
  Delivery d = submitter()->submit("a@sender.example", "b@example.com", "Subject: x\n\nbody\n");
  EXPECT_FALSE(d.ok);
  EXPECT_NE(d.error.find("status 75"), std::string::npos) << d.error;
  EXPECT_NE(d.error.find("no queue space"), std::string::npos) << d.error;
}

TEST_F(SendmailScript, HangingCommandIsKilledAtTheTimeout) {
  test::write_file(dir / "hang", "");
  Delivery d = submitter(300ms)->submit("a@sender.example", "b@example.com", "Subject: x\n\nbody\n");
  EXPECT_FALSE(d.ok);
  EXPECT_NE(d.error.find("did not finish"), std::string::npos) << d.error;
}

TEST_F(SendmailScript, MissingCommandIsAnError) {
  auto s = make_sendmail({(dir / "nonexistent").string(), 10s});
  Delivery d = s->submit("a@sender.example", "b@example.com", "x\n");
  EXPECT_FALSE(d.ok);
  EXPECT_FALSE(d.error.empty());
}

// ---- the sending rules ----

class FakeSource final : public ReportSource {
 public:
  std::map<std::string, std::map<std::string, ReportText>> days;
  std::vector<std::string> domains(std::string_view day) override {
    std::vector<std::string> out;
    auto it = days.find(std::string(day));
    if (it != days.end())
      for (const auto& [d, r] : it->second) out.push_back(d);
    return out;
  }
  std::optional<ReportText> report(std::string_view day, std::string_view domain) override {
    auto it = days.find(std::string(day));
    if (it == days.end()) return std::nullopt;
    auto jt = it->second.find(std::string(domain));
    if (jt == it->second.end()) return std::nullopt;
    return jt->second;
  }
};

struct Sent {
  std::string sender, recipient, message;
};

class FakeMail final : public MailSubmitter {
 public:
  Delivery submit(const std::string& sender, const std::string& recipient, const std::string& message) override {
    if (hook) hook();
    std::lock_guard lock(mu);
    sent.push_back({sender, recipient, message});
    if (fail) return {false, "fake: 451 try later"};
    return {true, {}};
  }
  std::function<void()> hook;
  std::mutex mu;
  std::vector<Sent> sent;  // every attempt
  bool fail = false;
};

class FakePoster final : public HttpsPoster {
 public:
  Delivery post(const std::string& url, const std::string& body) override {
    posts.push_back({url, body});
    if (fail) return {false, "fake: HTTP status 503"};
    return {true, {}};
  }
  std::vector<std::pair<std::string, std::string>> posts;
  bool fail = false;
};

const std::string kDay = "2026-04-23";  // the day before FakeClock::kStart

class SenderTest : public ::testing::Test {
 protected:
  SenderTest() {
    RedisOptions ro;
    ro.address = redis.address();
    ro.command_timeout = 1000ms;
    pool = std::make_unique<Pool>(ro);
    store = std::make_unique<SendStore>(*pool, "t:");
    opts.organization_name = "Example Org";
    opts.contact_info = "tlsrpt@sender.example";
    opts.sender_address = "tlsrpt-noreply@sender.example";
    source.days[kDay]["example.com"] = {kJson, "2026-04-23.example.com@sender.example", 3};
    dns.set_txt("_smtp._tls.example.com", {"v=TLSRPTv1; rua=mailto:reports@example.com,https://r.example.com/tlsrpt"});
  }
  std::unique_ptr<Sender> sender() {
    return std::make_unique<Sender>(opts, source, dns, mail, poster, *store, clock);
  }
  static std::map<std::string, SendOutcome> by_rua(const std::vector<SendResult>& rs) {
    std::map<std::string, SendOutcome> m;
    for (const auto& r : rs) m[r.rua] = r.outcome;
    return m;
  }

  test::RedisServer redis;
  std::unique_ptr<Pool> pool;
  std::unique_ptr<SendStore> store;
  SendOptions opts;
  FakeSource source;
  test::FakeResolver dns;
  FakeMail mail;
  FakePoster poster;
  test::FakeClock clock;
};

TEST_F(SenderTest, OneReportPerRua) {
  SendSummary s = sender()->send_day(kDay);
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(by_rua(s.results), (std::map<std::string, SendOutcome>{{"mailto:reports@example.com", SendOutcome::sent},
                                                               {"https://r.example.com/tlsrpt", SendOutcome::sent}}));
  ASSERT_EQ(mail.sent.size(), 1u);
  EXPECT_EQ(mail.sent[0].sender, "tlsrpt-noreply@sender.example");
  EXPECT_EQ(mail.sent[0].recipient, "reports@example.com");
  const test::ParsedReportMail p = test::parse_report_mail(mail.sent[0].message);
  EXPECT_EQ(p.json, kJson);
  EXPECT_EQ(p.get("header:TLS-Report-Submitter"), "sender.example");  // from contact-info
  ASSERT_EQ(poster.posts.size(), 1u);
  EXPECT_EQ(poster.posts[0].first, "https://r.example.com/tlsrpt");
  EXPECT_EQ(gunzip(poster.posts[0].second), kJson);
  EXPECT_EQ(store->read(kDay, "example.com").status, "done");
}

TEST_F(SenderTest, RestartDoesNotResend) {
  ASSERT_TRUE(sender()->send_day(kDay).ok());
  // A new process (a new Sender), the scheduler and the one-shot: nothing goes out again.
  SendSummary again = sender()->send_day(kDay);
  EXPECT_TRUE(again.ok());
  for (const auto& r : again.results) EXPECT_EQ(r.outcome, SendOutcome::already_sent) << r.rua;
  SendSummary tick = sender()->tick();
  EXPECT_EQ(mail.sent.size(), 1u);
  EXPECT_EQ(poster.posts.size(), 1u);
}

TEST_F(SenderTest, ClaimHeldByAnotherSenderSendsNothing) {
  ASSERT_TRUE(store->claim(kDay, "example.com", "other-host-token", 60s));
  SendSummary s = sender()->send_day(kDay);
  EXPECT_FALSE(s.ok());
  ASSERT_EQ(s.results.size(), 1u);
  EXPECT_EQ(s.results[0].outcome, SendOutcome::busy);
  EXPECT_TRUE(mail.sent.empty());
  EXPECT_TRUE(poster.posts.empty());
}

TEST_F(SenderTest, ClaimLostMidWayRecordsNothing) {
  // Another sender takes the claim over while the mail is being submitted (ours expired).
  mail.hook = [&] {
    redis.cli({"SET", store->claim_key(kDay, "example.com"), "usurper"});
  };
  SendSummary s = sender()->send_day(kDay);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(store->read(kDay, "example.com").rua.size(), 0u);
  EXPECT_TRUE(poster.posts.empty()) << "nothing more is done without the claim";
}

TEST_F(SenderTest, NoUsableRecordMeansNoReport) {
  const std::vector<std::vector<std::string>> cases = {
      {},                                                         // NODATA
      {"v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1; rua=mailto:b@example.com"},  // two
      {"v=TLSRPTv1; rua=reports@example.com"},                    // no scheme
      {"v=TLSRPTv1; rua=mailto:a@example.com%0D%0ABcc:victim@evil.example"},  // injection
  };
  int n = 0;
  for (const auto& txts : cases) {
    const std::string day = "2026-04-" + std::to_string(10 + n++);
    source.days[day]["example.com"] = {kJson, "x@sender.example", 1};
    dns.set_txt("_smtp._tls.example.com", txts);
    SendSummary s = sender()->send_day(day);
    EXPECT_TRUE(s.ok()) << "nowhere to go is not a failure";
    ASSERT_EQ(s.results.size(), 1u);
    EXPECT_EQ(s.results[0].outcome, SendOutcome::nowhere) << s.results[0].detail;
  }
  dns.erase("_smtp._tls.example.com");  // NXDOMAIN
  source.days["2026-04-20"]["example.com"] = {kJson, "x@sender.example", 1};
  EXPECT_EQ(sender()->send_day("2026-04-20").results.at(0).outcome, SendOutcome::nowhere);
  EXPECT_TRUE(mail.sent.empty());
  EXPECT_TRUE(poster.posts.empty());
}

TEST_F(SenderTest, DnsFailureIsRetriedThenGivenUp) {
  dns.set_txt_failure("_smtp._tls.example.com", dns::Status::servfail);
  auto s = sender();
  SendSummary first = s->send_day(kDay);
  EXPECT_FALSE(first.ok());
  EXPECT_EQ(first.results.at(0).outcome, SendOutcome::retry);
  // Within the backoff, the scheduler does not even claim it.
  EXPECT_EQ(s->send_domain(kDay, "example.com", false).at(0).outcome, SendOutcome::not_due);
  clock.advance(Seconds{301});
  EXPECT_EQ(s->send_domain(kDay, "example.com", false).at(0).outcome, SendOutcome::retry);
  clock.advance(Seconds{86400});
  EXPECT_EQ(s->send_domain(kDay, "example.com", false).at(0).outcome, SendOutcome::gave_up);
  EXPECT_EQ(s->send_domain(kDay, "example.com", false).at(0).outcome, SendOutcome::gave_up);
  EXPECT_TRUE(mail.sent.empty());
}

TEST_F(SenderTest, FailingRuaIsRetriedWithBackoffOthersAreNotResent) {
  mail.fail = true;
  auto s = sender();
  auto r = by_rua(s->send_domain(kDay, "example.com", false));
  EXPECT_EQ(r["mailto:reports@example.com"], SendOutcome::retry);
  EXPECT_EQ(r["https://r.example.com/tlsrpt"], SendOutcome::sent);
  // Backoff: 5 min, 10 min, 20 min...
  const std::vector<int> waits = {300, 600, 1200, 2400};
  for (int w : waits) {
    const std::size_t before = mail.sent.size();
    clock.advance(Seconds{w - 1});
    r = by_rua(s->send_domain(kDay, "example.com", false));
    EXPECT_EQ(mail.sent.size(), before) << "not before " << w << " s";
    clock.advance(Seconds{1});
    r = by_rua(s->send_domain(kDay, "example.com", false));
    EXPECT_EQ(mail.sent.size(), before + 1) << "at " << w << " s";
    EXPECT_EQ(r["mailto:reports@example.com"], SendOutcome::retry);
  }
  EXPECT_EQ(store->read(kDay, "example.com").rua["mailto:reports@example.com"].attempts, 5u);
  mail.fail = false;
  clock.advance(Seconds{4800});
  r = by_rua(s->send_domain(kDay, "example.com", false));
  EXPECT_EQ(r["mailto:reports@example.com"], SendOutcome::sent);
  EXPECT_EQ(poster.posts.size(), 1u) << "the https: rua went out once";
  EXPECT_EQ(store->read(kDay, "example.com").status, "done");
}

TEST_F(SenderTest, BackoffIsCappedAndGivesUpAfter24Hours) {
  mail.fail = true;
  auto s = sender();
  s->send_domain(kDay, "example.com", false);
  std::int64_t last_gap = 0;
  for (int i = 0; i < 40; ++i) {
    const auto st = store->read(kDay, "example.com").rua["mailto:reports@example.com"];
    if (st.kind != RuaState::Kind::failed) break;
    const std::int64_t now = clock.now().time_since_epoch().count();
    last_gap = st.next - now;
    EXPECT_LE(last_gap, 7200);
    clock.set(SysTime{Seconds{st.next}});
    s->send_domain(kDay, "example.com", false);
  }
  EXPECT_EQ(last_gap, 7200);
  const auto st = store->read(kDay, "example.com");
  EXPECT_EQ(st.rua.at("mailto:reports@example.com").kind, RuaState::Kind::gave_up);
  EXPECT_EQ(st.status, "done");
  EXPECT_GE(clock.now() - test::FakeClock::kStart, 24h);
  EXPECT_LT(clock.now() - test::FakeClock::kStart, 26h);
}

TEST_F(SenderTest, ExcludeAndOnlyFailures) {
  source.days[kDay]["quiet.example"] = {kJson, "q@sender.example", 0};
  source.days[kDay]["excluded.example"] = {kJson, "e@sender.example", 5};
  dns.set_txt("_smtp._tls.quiet.example", {"v=TLSRPTv1; rua=mailto:q@quiet.example"});
  dns.set_txt("_smtp._tls.excluded.example", {"v=TLSRPTv1; rua=mailto:e@excluded.example"});
  opts.only_failures = true;
  opts.exclude = {"Excluded.Example."};
  SendSummary s = sender()->send_day(kDay);
  EXPECT_TRUE(s.ok());
  std::map<std::string, SendOutcome> by_domain;
  for (const auto& r : s.results) if (r.rua.empty()) by_domain[r.domain] = r.outcome;
  EXPECT_EQ(by_domain["quiet.example"], SendOutcome::no_failures);
  EXPECT_EQ(by_domain["excluded.example"], SendOutcome::excluded);
  ASSERT_EQ(mail.sent.size(), 1u);
  EXPECT_EQ(mail.sent[0].recipient, "reports@example.com");
  EXPECT_EQ(dns.txt_queries("_smtp._tls.excluded.example"), 0);
}

TEST_F(SenderTest, ScheduleWaitsForTheNextDayAndTheSpread) {
  opts.settle = 900s;
  opts.send_delay_max = 3600s;
  // 23:59:59 on the day itself: the day is not over.
  clock.set(SysTime{Seconds{*mtasts::tlsrpt::day_start(kDay) + 86399}});
  auto s = sender();
  EXPECT_TRUE(s->tick().results.empty());
  // 00:14 the next day: still settling.
  clock.advance(Seconds{1 + 14 * 60});
  EXPECT_TRUE(s->tick().results.empty());
  const SysTime due = s->due_at(kDay);
  EXPECT_GE(due, SysTime{Seconds{*mtasts::tlsrpt::day_start(kDay) + 86400 + 900}});
  EXPECT_LE(due, SysTime{Seconds{*mtasts::tlsrpt::day_start(kDay) + 86400 + 3600}});
  clock.set(due - Seconds{1});
  EXPECT_TRUE(s->tick().results.empty());
  EXPECT_TRUE(mail.sent.empty());
  clock.set(due);
  EXPECT_EQ(s->tick().results.size(), 2u);
  EXPECT_EQ(mail.sent.size(), 1u);
  EXPECT_TRUE(s->tick().results.empty()) << "finished domains are not looked at again";
}

TEST_F(SenderTest, ShortSpreadCapsTheSettleTime) {
  opts.send_delay_max = 0s;
  EXPECT_EQ(sender()->due_at(kDay), SysTime{Seconds{*mtasts::tlsrpt::day_start(kDay) + 86400}});
  opts.send_delay_max = 600s;
  const SysTime due = sender()->due_at(kDay);
  EXPECT_GE(due, SysTime{Seconds{*mtasts::tlsrpt::day_start(kDay) + 86400}});
  EXPECT_LE(due, SysTime{Seconds{*mtasts::tlsrpt::day_start(kDay) + 86400 + 600}});
}

TEST_F(SenderTest, CountersByOutcomeWithoutDomains) {
  metrics::Registry registry;
  mail.fail = true;
  source.days[kDay]["norecord.example"] = {kJson, "n@sender.example", 1};
  auto s = sender();
  s->set_metrics(registry);
  s->send_day(kDay);
  const std::string text = registry.render();
  EXPECT_NE(text.find(R"(mta_sts_reportd_report_deliveries_total{scheme="https",outcome="sent"} 1)"), std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(mta_sts_reportd_report_deliveries_total{scheme="mailto",outcome="retry"} 1)"), std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(mta_sts_reportd_reports_not_sent_total{reason="nowhere"} 1)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(mta_sts_reportd_tlsrpt_records_total{result="valid"} 1)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(mta_sts_reportd_tlsrpt_records_total{result="none"} 1)"), std::string::npos) << text;
  // A hostile record: counted as invalid, its URIs as skipped.
  source.days["2026-04-22"]["example.com"] = {kJson, "x@sender.example", 1};
  dns.set_txt("_smtp._tls.example.com", {"v=TLSRPTv1; rua=mailto:a@example.com%0D%0ABcc:x@evil.example,x,y"});
  s->send_day("2026-04-22");
  const std::string after = registry.render();
  EXPECT_NE(after.find(R"(mta_sts_reportd_tlsrpt_records_total{result="invalid"} 1)"), std::string::npos) << after;
  EXPECT_NE(after.find("mta_sts_reportd_report_uris_skipped_total 3"), std::string::npos) << after;
  EXPECT_EQ(text.find("example"), std::string::npos) << "no domain in a label";
}

TEST_F(SenderTest, LoopRunsARoundAtOnceAndStops) {
  auto s = sender();
  {
    SendLoop loop(*s, 3600s);
    EXPECT_TRUE(test::wait_until(
        [&] {
          std::lock_guard lock(mail.mu);
          return mail.sent.size() == 1;
        },
        10s));
  }  // the destructor stops the thread without waiting for the period
  EXPECT_EQ(poster.posts.size(), 1u);
}

TEST_F(SenderTest, SendNoNeverSendsOnSchedule) {
  opts.send = false;
  clock.advance(Seconds{86400});
  auto s = sender();
  EXPECT_TRUE(s->tick().results.empty());
  EXPECT_TRUE(mail.sent.empty());
}

TEST_F(SenderTest, UnreadableStateIsUntrusted) {
  redis.cli({"HSET", store->state_key(kDay, "example.com"), "status", "bogus", "rua:mailto:reports@example.com",
             "sent notanumber", "next", "99999999999999999999999"});
  SendSummary s = sender()->send_day(kDay);
  EXPECT_EQ(mail.sent.size(), 1u);
  EXPECT_TRUE(s.ok());
}

TEST_F(SenderTest, CheckRedisProbesRunAndLeaveNothing) {
  for (const auto& p : send_store_probes("t:")) {
    std::vector<std::string_view> argv(p.argv.begin(), p.argv.end());
    EXPECT_NO_THROW(pool->lease()->command(argv)) << p.argv[0];
  }
  EXPECT_EQ(redis.cli({"EXISTS", store->claim_key("0000-00-00", "check-redis.invalid")}), "0");
  EXPECT_EQ(redis.cli({"HGET", store->state_key("0000-00-00", "check-redis.invalid"), "status"}), "probe");
  EXPECT_NE(redis.cli({"TTL", store->state_key("0000-00-00", "check-redis.invalid")}), "-1");
}

TEST(SendOptions, DefaultSubmitter) {
  EXPECT_EQ(default_submitter("tlsrpt@Sender.Example"), "sender.example");
  EXPECT_EQ(default_submitter("mailto:tlsrpt@sender.example"), "sender.example");
  EXPECT_EQ(default_submitter("https://tlsrpt.sender.example/contact"), "tlsrpt.sender.example");
  EXPECT_EQ(default_submitter("call us"), "");
}

}  // namespace
}  // namespace mtasts::reportd

namespace mtasts::reportd {
namespace {

TEST(HttpsTransport, UrlHostAndPort) {
  std::string host;
  unsigned port = 0;
  ASSERT_TRUE(url_host_port("https://R.Example.com/v1/tlsrpt", &host, &port));
  EXPECT_EQ(host, "r.example.com");
  EXPECT_EQ(port, 443u);
  ASSERT_TRUE(url_host_port("https://r.example.com:8443?x", &host, &port));
  EXPECT_EQ(port, 8443u);
  ASSERT_TRUE(url_host_port("https://[2001:db8::1]:444/", &host, &port));
  EXPECT_EQ(host, "2001:db8::1");
  EXPECT_EQ(port, 444u);
  for (const char* bad : {"http://r.example.com/", "https://", "https:///x", "https://r.example.com:0/",
                          "https://r.example.com:70000/", "https://r.example.com:8x/", "https://u@r.example.com/",
                          "https://[2001:db8::1/"})
    EXPECT_FALSE(url_host_port(bad, &host, &port)) << bad;
}

}  // namespace
}  // namespace mtasts::reportd
