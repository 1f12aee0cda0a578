// The metrics registry: what a scrape reads (exact text format), histogram bucket edges,
// escaping, recording from many threads at once, and the metrics-listen option.
#include "common/util/metrics.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "common/daemon/config.hpp"
#include "tests/support/process.hpp"

namespace mtasts::metrics {
namespace {

using namespace std::chrono_literals;

TEST(MetricsRegistry, RendersCountersAndGaugesInTheTextFormat) {
  Registry r;
  Counter& ok = r.counter("x_replies_total", "Replies by kind.", {{"kind", "ok"}});
  Counter& bad = r.counter("x_replies_total", "Replies by kind.", {{"kind", "bad"}});
  Gauge& g = r.gauge("x_queue_length", "Items waiting.");
  ok.inc();
  ok.inc(2);
  bad.inc();
  g.set(7);
  g.add(-2.5);
  EXPECT_EQ(r.render(),
            "# HELP x_replies_total Replies by kind.\n"
            "# TYPE x_replies_total counter\n"
            "x_replies_total{kind=\"ok\"} 3\n"
            "x_replies_total{kind=\"bad\"} 1\n"
            "# HELP x_queue_length Items waiting.\n"
            "# TYPE x_queue_length gauge\n"
            "x_queue_length 4.5\n");
}

TEST(MetricsRegistry, SameNameAndLabelsGiveTheSameSeries) {
  Registry r;
  Counter& a = r.counter("x_total", "h", {{"k", "v"}});
  Counter& b = r.counter("x_total", "h", {{"k", "v"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &r.counter("x_total", "h", {{"k", "w"}}));
}

TEST(MetricsRegistry, RefusesNamesAgainstTheConventions) {
  Registry r;
  EXPECT_THROW(r.counter("x_replies", "a counter without _total"), std::logic_error);
  EXPECT_THROW(r.gauge("0x", "starts with a digit"), std::logic_error);
  EXPECT_THROW(r.gauge("x-y", "dash"), std::logic_error);
  EXPECT_THROW(r.gauge("x", "reserved label", {{"__name", "v"}}), std::logic_error);
  EXPECT_THROW(r.gauge("x", "le is the histogram's", {{"le", "1"}}), std::logic_error);
  r.gauge("x_same", "h");
  EXPECT_THROW(r.counter("x_same", "h"), std::logic_error);  // one type per name
}

TEST(MetricsHistogram, BucketsAreCumulativeWithTheBoundInclusive) {
  Registry r;
  Histogram& h = r.histogram("x_duration_seconds", "Latency.", {{"source", "local"}}, {0.001, 0.01, 1});
  h.observe(500us);   // <= 0.001
  h.observe(1ms);     // exactly on the bound: still le="0.001"
  h.observe(2ms);     // <= 0.01
  h.observe(5s);      // +Inf only
  EXPECT_EQ(r.render(),
            "# HELP x_duration_seconds Latency.\n"
            "# TYPE x_duration_seconds histogram\n"
            "x_duration_seconds_bucket{source=\"local\",le=\"0.001\"} 2\n"
            "x_duration_seconds_bucket{source=\"local\",le=\"0.01\"} 3\n"
            "x_duration_seconds_bucket{source=\"local\",le=\"1\"} 3\n"
            "x_duration_seconds_bucket{source=\"local\",le=\"+Inf\"} 4\n"
            "x_duration_seconds_sum{source=\"local\"} 5.0035\n"
            "x_duration_seconds_count{source=\"local\"} 4\n");
}

TEST(MetricsHistogram, DefaultLatencyBucketsSpanMicrosecondsToAMinute) {
  const auto b = latency_buckets();
  ASSERT_FALSE(b.empty());
  EXPECT_LE(b.front(), 0.0001);
  EXPECT_GE(b.back(), 60);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
  EXPECT_THROW(Histogram({1, 0.5}), std::logic_error);
}

TEST(MetricsRegistry, CallbacksAreReadAtScrapeAndAThrowLeavesTheSeriesOut) {
  Registry r;
  int calls = 0;
  r.gauge_fn("x_cache_entries", "Entries.", {}, [&] { return static_cast<double>(++calls * 10); });
  r.counter_fn("x_accepted_total", "Accepted.", {}, [] { return std::uint64_t{42}; });
  r.gauge_fn("x_broken", "Throws.", {}, []() -> double { throw std::runtime_error("down"); });
  const std::string first = r.render();
  EXPECT_NE(first.find("\nx_cache_entries 10\n"), std::string::npos) << first;
  EXPECT_NE(first.find("\nx_accepted_total 42\n"), std::string::npos) << first;
  EXPECT_EQ(first.find("\nx_broken "), std::string::npos) << first;
  EXPECT_NE(r.render().find("\nx_cache_entries 20\n"), std::string::npos);
}

TEST(MetricsText, EscapesLabelValuesAndHelp) {
  Registry r;
  r.counter("x_total", "line one\nback\\slash", {{"v", "a\"b\\c\nd"}}).inc();
  EXPECT_EQ(r.render(),
            "# HELP x_total line one\\nback\\\\slash\n"
            "# TYPE x_total counter\n"
            "x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsText, NumbersAsPrometheusWritesThem) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(12), "12");
  EXPECT_EQ(format_value(0.005), "0.005");
  EXPECT_EQ(format_value(0.00025), "0.00025");
  EXPECT_EQ(format_value(1796004443.356), "1796004443.356");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
}

// Recording from many threads while scrapes run: nothing is lost, no scrape blocks it.
TEST(MetricsRegistry, ConcurrentRecordingLosesNothing) {
  Registry r;
  Counter& c = r.counter("x_total", "h");
  Histogram& h = r.histogram("x_seconds", "h");
  constexpr int kThreads = 4, kEach = 20000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        c.inc();
        h.observe(std::chrono::microseconds(i % 2000));
      }
    });
  for (int i = 0; i < 20; ++i) (void)r.render();
  for (auto& t : ts) t.join();
  EXPECT_EQ(c.value(), std::uint64_t{kThreads} * kEach);
  const std::string text = r.render();
  EXPECT_NE(text.find("x_seconds_count " + std::to_string(kThreads * kEach) + "\n"), std::string::npos);
}

struct ListenCase {
  const char* text;
  bool ok;
  const char* host;
  unsigned port;
  bool v6;
};

TEST(MetricsListen, ParsesNumericAddressesOnly) {
  const ListenCase cases[] = {
      {"127.0.0.1:9462", true, "127.0.0.1", 9462, false},
      {"0.0.0.0:1", true, "0.0.0.0", 1, false},
      {"[::1]:9463", true, "::1", 9463, true},
      {"[2001:db8::5]:65535", true, "2001:db8::5", 65535, true},
      {"localhost:9462", false, "", 0, false},   // no names: binding must not depend on DNS
      {"127.0.0.1", false, "", 0, false},
      {"127.0.0.1:", false, "", 0, false},
      {"127.0.0.1:0", false, "", 0, false},
      {"127.0.0.1:65536", false, "", 0, false},
      {"127.0.0.1:9x", false, "", 0, false},
      {"::1:9462", false, "", 0, false},
      {"[::1]9462", false, "", 0, false},
      {"[::1", false, "", 0, false},
      {"[127.0.0.1]:80", false, "", 0, false},
  };
  for (const auto& c : cases) {
    ListenAddress a;
    std::string why;
    EXPECT_EQ(parse_listen(c.text, &a, &why), c.ok) << c.text << ": " << why;
    if (c.ok) {
      EXPECT_EQ(a.host, c.host) << c.text;
      EXPECT_EQ(a.port, c.port) << c.text;
      EXPECT_EQ(a.v6, c.v6) << c.text;
    } else {
      EXPECT_FALSE(why.empty()) << c.text;
    }
  }
  EXPECT_TRUE(parse_listen("127.0.0.1:0", nullptr, nullptr, true));  // tests: any free port
}

TEST(MetricsListen, IsAnOptionOfEveryDaemonAndOffByDefault) {
  test::TempDir dir("metrics-config");
  test::write_file(dir / "empty.conf", "");
  const Config d = load_config_file((dir / "empty.conf").string());
  EXPECT_EQ(d.milter.daemon.metrics_listen, "");
  EXPECT_EQ(d.cached.daemon.metrics_listen, "");
  EXPECT_EQ(d.tlsmap.daemon.metrics_listen, "");

  test::write_file(dir / "set.conf",
                   "[milter]\nmetrics-listen = 127.0.0.1:9462\n[cached]\nmetrics-listen = [::1]:9461\n"
                   "[tlsmap]\nmetrics-listen = 127.0.0.2:9463\n");
  const Config c = load_config_file((dir / "set.conf").string());
  EXPECT_EQ(c.milter.daemon.metrics_listen, "127.0.0.1:9462");
  EXPECT_EQ(c.cached.daemon.metrics_listen, "[::1]:9461");
  EXPECT_EQ(c.tlsmap.daemon.metrics_listen, "127.0.0.2:9463");

  test::write_file(dir / "bad.conf", "[cached]\nmetrics-listen = metrics.example:9461\n");
  try {
    load_config_file((dir / "bad.conf").string());
    FAIL() << "a host name was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(":2:"), std::string::npos) << e.what();  // names the line
    EXPECT_NE(std::string(e.what()).find("metrics-listen"), std::string::npos) << e.what();
  }
  for (Program p : {Program::milter, Program::cached, Program::tlsmap}) {
    EXPECT_NE(usage(p).find("--metrics-listen"), std::string::npos) << to_string(p);
  }
  const auto ctl = option_names(Program::ctl);
  EXPECT_EQ(std::find(ctl.begin(), ctl.end(), "--metrics-listen"), ctl.end());
}

TEST(MetricsProcess, BuildInfoStartTimeAndReloads) {
  register_process("mta-sts-test");
  count_reload(true);
  count_reload(true);
  count_reload(false);
  const std::string text = registry().render();
  EXPECT_NE(text.find("mta_sts_build_info{program=\"mta-sts-test\",version=\"" MTASTS_VERSION "\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("mta_sts_config_reloads_total{result=\"success\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mta_sts_config_reloads_total{result=\"failure\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nmta_sts_start_time_seconds 1"), std::string::npos) << text;
}

}  // namespace
}  // namespace mtasts::metrics
