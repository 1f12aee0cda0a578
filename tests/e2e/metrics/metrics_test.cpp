// The metrics of every daemon, as a real Prometheus server sees them: the fetcher fills Redis
// from the loopback DNS and HTTPS world, mail flows through a real Postfix with the milter,
// Postfix's own socketmap client asks mta-sts-tlsmap, and Prometheus (Debian's package, on
// loopback, scraping every second into its own storage under the test's directory) is asked
// through its HTTP API whether the counters moved as the traffic implies. Each daemon's
// output also passes `promtool check metrics`.
#include <gtest/gtest.h>

#include <csignal>
#include <regex>
#include <thread>

#include "tests/e2e/milter/mail_env.hpp"
#include "tests/integration/tlsmap/harness.hpp"

namespace mtasts::test::e2e {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kServfail = "servfail.e2e.test";

std::string get(const std::string& url) {
  const RunResult r = run({"curl", "-sf", "--max-time", "10", url}, 20s);
  return r.exit_code == 0 ? r.out : std::string();
}

class PrometheusServer {
 public:
  PrometheusServer(const fs::path& dir, const std::vector<std::pair<std::string, unsigned>>& jobs) : port_(free_tcp_port()) {
    fs::create_directories(dir / "data");
    std::string cfg = "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nscrape_configs:\n";
    for (const auto& [job, port] : jobs)
      cfg += "  - job_name: " + job + "\n    static_configs:\n      - targets: ['127.0.0.1:" + std::to_string(port) +
             "']\n";
    write_file(dir / "prometheus.yml", cfg);
    proc_ = std::make_unique<Process>(
        std::vector<std::string>{"prometheus", "--config.file=" + (dir / "prometheus.yml").string(),
                                 "--storage.tsdb.path=" + (dir / "data").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"},
        dir / "prometheus.log");
    log_ = dir / "prometheus.log";
    if (!wait_until([&] { return !get(url("/-/ready")).empty(); }, 60s))
      throw std::runtime_error("prometheus did not become ready:\n" + read_file(log_));
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  // The value of an instant query that returns one sample; nullopt when it returns none.
  std::optional<double> query(const std::string& promql) const {
    const RunResult r = run({"curl", "-sf", "--max-time", "10", "--get", "--data-urlencode", "query=" + promql,
                             url("/api/v1/query")},
                            20s);
    static const std::regex value(R"re("value":\[[0-9.e+]+,"([^"]+)"\])re");
    std::smatch m;
    if (r.exit_code != 0 || !std::regex_search(r.out, m, value)) return std::nullopt;
    return std::stod(m[1].str());
  }
  // Polls until the query gives `want` (scrapes are a second apart); returns the last value.
  std::optional<double> wait_for(const std::string& promql, double want, std::chrono::seconds timeout = 30s) const {
    std::optional<double> v;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      v = query(promql);
      if (v && *v == want) break;
      std::this_thread::sleep_for(250ms);
    }
    return v;
  }
  std::string log() const { return read_file(log_); }

 private:
  unsigned port_;
  fs::path log_;
  std::unique_ptr<Process> proc_;
};

TEST(MetricsE2e, PrometheusSeesWhatTheTrafficDid) {
  const unsigned cached_port = free_tcp_port(), milter_port = free_tcp_port(), tlsmap_port = free_tcp_port();
  const auto listen = [](unsigned p) { return "metrics-listen = 127.0.0.1:" + std::to_string(p); };

  MtaStsStack stack(StackOptions{.milter_lines = {listen(milter_port)}, .cached_lines = {listen(cached_port)}});
  Sink sink(stack.dir());
  Postfix postfix(stack.dir(), PostfixOptions{.relay_port = sink.port(), .milter = stack.milter().socket()});
  fs::create_directories(stack.dir() / "tlsmap");
  TlsmapOptions to;
  to.redis_address = stack.redis().address();
  to.tlsmap_lines = {listen(tlsmap_port), "resolver = " + stack.world().resolver()};
  TlsmapDaemon tlsmap(stack.dir() / "tlsmap", to);
  PrometheusServer prom(stack.dir() / "prometheus", {{"mta-sts-cached", cached_port},
                                                     {"mta-sts-milter", milter_port},
                                                     {"mta-sts-tlsmap", tlsmap_port}});
  const auto diag = [&] {
    return stack.logs() + "--- maillog:\n" + postfix.maillog() + "--- tlsmap:\n" + tlsmap.log() +
           "--- prometheus:\n" + prom.log();
  };

  // Every daemon's own output is valid for Prometheus's own checker (before and after the
  // traffic: every series exists from the start, with zeros).
  // And every metric a daemon shows is described in its manual (section METRICS).
  const auto check_metrics = [&] {
    const std::vector<std::pair<unsigned, std::string>> daemons{
        {cached_port, "man/mta-sts-cached.8"}, {milter_port, "man/mta-sts-milter.8"}, {tlsmap_port, "man/mta-sts-tlsmap.8"}};
    for (const auto& [port, manual] : daemons) {
      const std::string text = get("http://127.0.0.1:" + std::to_string(port) + "/metrics");
      ASSERT_FALSE(text.empty()) << port << diag();
      const RunResult check = run({"promtool", "check", "metrics"}, 30s, text);
      EXPECT_EQ(check.exit_code, 0) << port << ":\n" << check.out << check.err << text;
      EXPECT_EQ(text.find(".e2e.test"), std::string::npos) << "a domain in a label:\n" << text;
      const std::string man = read_file(source_dir() / manual);
      for (const std::string& line : lines_of(text)) {
        if (!line.starts_with("# TYPE ")) continue;
        const std::string name = line.substr(7, line.find(' ', 7) - 7);
        EXPECT_NE(man.find(name), std::string::npos) << name << " is not in " << manual;
      }
    }
  };
  check_metrics();

  // Mail: three messages to an enforce domain, one to a domain without a policy, one to a
  // domain whose _mta-sts TXT lookup fails with SERVFAIL (unknown to the cache: the milter
  // signals a miss and lets it through; the fetcher then records a DNS error).
  const auto send = [&](const std::string& token, const std::string& rcpt) {
    const RunResult r = swaks(postfix.smtp_port(), "sender@sender.e2e.test", {rcpt}, make_message(token, {rcpt}));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << diag();
    ASSERT_TRUE(sink.wait_message(token, 30s)) << token << " not delivered\n" << diag();
  };
  for (int i = 0; i < 3; ++i) send("enf" + std::to_string(i), "user" + std::to_string(i) + "@" + kEnforce);
  send("nopol", "someone@" + kNoPolicy);
  stack.world().add_domain(kServfail, DomainSpec{.txt_failure = DnsFailure::servfail});
  send("servfail", "someone@" + kServfail);

  // Delivery: Postfix's socketmap client asks mta-sts-tlsmap.
  const fs::path pfconf = stack.dir() / "postmap";
  fs::create_directories(pfconf);
  write_file(pfconf / "main.cf", "compatibility_level = 3.6\nmaillog_file = /dev/stdout\n");
  const auto postmap = [&](const std::string& key) {
    return run({"postmap", "-c", pfconf.string(), "-q", key, "socketmap:" + tlsmap.postfix_address() + ":postfix"},
               30s);
  };
  const RunResult secure = postmap(kEnforce);
  EXPECT_EQ(secure.out.rfind("secure match=", 0), 0u) << secure.out << secure.err << diag();
  const RunResult notfound = postmap(kNoPolicy);
  EXPECT_EQ(notfound.exit_code, 1) << notfound.out << notfound.err;  // postmap: not found

  // All three targets up.
  for (const char* job : {"mta-sts-cached", "mta-sts-milter", "mta-sts-tlsmap"}) {
    EXPECT_EQ(prom.wait_for("up{job=\"" + std::string(job) + "\"}", 1), 1) << job << diag();
    EXPECT_EQ(prom.wait_for("mta_sts_build_info{job=\"" + std::string(job) + "\",version=\"" MTASTS_VERSION "\"}", 1), 1)
        << job;
  }

  // The milter: N messages to an enforce domain = N tagged messages and N enforce decisions.
  EXPECT_EQ(prom.wait_for(R"(mta_sts_milter_messages_total{result="tagged"})", 3), 3) << diag();
  EXPECT_EQ(prom.wait_for(R"(mta_sts_milter_recipient_domains_total{decision="enforce",action="tag"})", 3), 3);
  EXPECT_EQ(prom.wait_for(R"(mta_sts_milter_messages_total{result="untagged"})", 2), 2);
  EXPECT_EQ(prom.wait_for(R"(mta_sts_milter_recipient_domains_total{decision="no-policy",action="pass"})", 1), 1);
  EXPECT_EQ(prom.wait_for(R"(mta_sts_milter_recipient_domains_total{decision="unknown",action="pass"})", 1), 1);
  EXPECT_EQ(prom.wait_for(R"(sum(mta_sts_milter_recipient_domains_total{decision=~"testing|none|redis-error"}))", 0), 0);
  EXPECT_EQ(prom.wait_for("mta_sts_milter_misses_signalled_total", 1), 1);
  EXPECT_EQ(prom.wait_for("mta_sts_milter_redis_errors_total", 0), 0);
  // Five lookups, each answered by Redis or the local cache.
  EXPECT_EQ(prom.wait_for(R"(sum(mta_sts_milter_lookup_duration_seconds_count{source=~"local|redis"}))", 5), 5);

  // The fetcher: the warm list (enforce, testing, none: valid; nopolicy: no-policy) and the
  // SERVFAIL domain's miss (dns-error), with the HTTPS fetches timed.
  EXPECT_EQ(prom.wait_for(R"(mta_sts_cached_discoveries_total{outcome="dns-error"})", 1), 1) << diag();
  EXPECT_GE(prom.query(R"(mta_sts_cached_discoveries_total{outcome="valid"})").value_or(0), 3);
  EXPECT_GE(prom.query(R"(mta_sts_cached_discoveries_total{outcome="no-policy"})").value_or(0), 1);
  EXPECT_GE(prom.query("mta_sts_cached_fetch_duration_seconds_count").value_or(0), 3);
  EXPECT_GE(prom.query(R"(mta_sts_cached_dns_duration_seconds_count{type="TXT"})").value_or(0), 5);
  EXPECT_EQ(prom.wait_for("mta_sts_cached_misses_waiting", 0), 0);
  EXPECT_EQ(prom.wait_for("mta_sts_cached_in_flight", 0), 0);
  EXPECT_EQ(prom.query("mta_sts_cached_downgrades_total{to=\"testing\"}"), 0);
  EXPECT_GE(prom.query("mta_sts_cached_domains_scheduled").value_or(0), 5);
  // A working fetcher polled its queues within the last few seconds.
  EXPECT_LT(prom.query("time() - mta_sts_cached_last_poll_timestamp_seconds").value_or(1e9), 10);

  // tlsmap: one secure and one notfound reply in Postfix's dialect, over two connections.
  EXPECT_EQ(prom.wait_for(R"(mta_sts_tlsmap_replies_total{kind="secure",dialect="postfix"})", 1), 1) << diag();
  EXPECT_EQ(prom.wait_for(R"(mta_sts_tlsmap_replies_total{kind="notfound",dialect="postfix"})", 1), 1);
  EXPECT_EQ(prom.wait_for(R"(sum(mta_sts_tlsmap_replies_total))", 2), 2);
  EXPECT_EQ(prom.wait_for("mta_sts_tlsmap_connections_total", 2), 2);

  check_metrics();

  // A reload is counted (SIGHUP to the fetcher).
  stack.fetcher().signal(SIGHUP);
  EXPECT_EQ(prom.wait_for(R"(mta_sts_config_reloads_total{job="mta-sts-cached",result="success"})", 1), 1) << diag();
}

}  // namespace
}  // namespace mtasts::test::e2e
