// The metrics endpoint (libmicrohttpd) on loopback, asked by curl as a scraper would: only
// GET/HEAD of /metrics answer 200 with the registry's text; an address in use is a clear
// start-up error; and a daemon whose metrics-listen cannot be bound refuses to start.
#include "common/daemon/metrics_http.hpp"

#include <gtest/gtest.h>

#include "tests/support/process.hpp"

namespace mtasts::metrics {
namespace {

using namespace std::chrono_literals;
using test::run;
using test::RunResult;

// "CODE\nCONTENT-TYPE\nBODY" from curl.
RunResult curl(const std::vector<std::string>& extra, const std::string& url) {
  std::vector<std::string> argv = {"curl", "-s", "--max-time", "10", "-w", "\n%{http_code} %{content_type}"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  return run(argv, 20s);
}

TEST(MetricsHttp, ServesTheRegistryAtSlashMetricsOnly) {
  Registry r;
  r.counter("x_requests_total", "Requests.", {{"kind", "a"}}).inc(5);
  HttpServer s("127.0.0.1:0", r);
  ASSERT_NE(s.port(), 0);
  const std::string base = "http://127.0.0.1:" + std::to_string(s.port());

  RunResult ok = curl({}, base + "/metrics");
  EXPECT_EQ(ok.exit_code, 0);
  EXPECT_NE(ok.out.find("x_requests_total{kind=\"a\"} 5\n"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("\n200 text/plain; version=0.0.4; charset=utf-8"), std::string::npos) << ok.out;

  // Recorded after the first scrape: the next one sees it.
  r.counter("x_requests_total", "Requests.", {{"kind", "a"}}).inc();
  EXPECT_NE(curl({}, base + "/metrics").out.find("x_requests_total{kind=\"a\"} 6\n"), std::string::npos);

  EXPECT_NE(curl({"-I"}, base + "/metrics").out.find("HTTP/1.1 200"), std::string::npos);
  EXPECT_NE(curl({}, base + "/").out.find("\n404 "), std::string::npos);
  EXPECT_NE(curl({}, base + "/metrics/x").out.find("\n404 "), std::string::npos);
  EXPECT_NE(curl({"-X", "POST", "-d", "a=b"}, base + "/metrics").out.find("\n405 "), std::string::npos);
  EXPECT_NE(curl({"-X", "DELETE"}, base + "/metrics").out.find("\n405 "), std::string::npos);
}

TEST(MetricsHttp, ServesOnIpv6Loopback) {
  Registry r;
  r.gauge("x_up", "Up.").set(1);
  HttpServer s("[::1]:0", r);
  const RunResult ok = curl({}, "http://[::1]:" + std::to_string(s.port()) + "/metrics");
  EXPECT_NE(ok.out.find("\nx_up 1\n"), std::string::npos) << ok.out << ok.err;
}

TEST(MetricsHttp, AnAddressInUseIsAClearError) {
  Registry r;
  HttpServer first("127.0.0.1:0", r);
  const std::string taken = "127.0.0.1:" + std::to_string(first.port());
  try {
    HttpServer second(taken, r);
    FAIL() << "bound an address in use";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(taken), std::string::npos) << e.what();
  }
  EXPECT_EQ(serve(""), nullptr);  // empty: off
}

// A daemon with a metrics-listen it cannot bind exits with "cannot start" instead of running
// without the endpoint its monitoring expects.
TEST(MetricsHttp, DaemonRefusesToStartWithoutItsEndpoint) {
  Registry r;
  HttpServer holder("127.0.0.1:0", r);
  test::TempDir dir("metrics-http");
  test::write_file(dir / "c.conf", "[redis]\naddress = unix:" + (dir / "none.sock").string() +
                                       "\n[tlsmap]\nlog = stderr\nlisten = unix:" + (dir / "t.sock").string() +
                                       "\nmetrics-listen = 127.0.0.1:" + std::to_string(holder.port()) + "\n");
  const RunResult t = run({MTASTS_TLSMAP_BIN, "--config=" + (dir / "c.conf").string()}, 30s);
  EXPECT_EQ(t.exit_code, 1) << t.out << t.err;
  EXPECT_NE(t.err.find("cannot start"), std::string::npos) << t.err;
  EXPECT_NE(t.err.find("metrics-listen 127.0.0.1:" + std::to_string(holder.port())), std::string::npos) << t.err;
}

}  // namespace
}  // namespace mtasts::metrics
