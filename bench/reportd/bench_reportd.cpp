// Postfix log lines per second through mta-sts-reportd's parser (issue 20: >= 200,000 on one
// core). The input is a real Postfix 3.7 maillog_file (the world's fixture, or the copy beside
// the unit tests) replicated with a distinct PID and queue id per copy, so that correlation
// state is exercised as in a busy log. Not a test: it prints its figures.
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <filesystem>
#include <unistd.h>

#include "reportd/collect/collector.hpp"
#include "reportd/collect/postfix.hpp"

namespace {

// The whole collector: the file follower, the parser, the policy attach (a view that knows
// no policy, as the local cache answers) and the batch; one checkpoint at the end.
class NoPolicy final : public mtasts::reportd::PolicyView {
 public:
  std::optional<mtasts::CacheEntry> entry(const mtasts::Domain&) override { return std::nullopt; }
};

}  // namespace

namespace {

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Replaces every "[PID]:" of smtp/qmgr lines and every hex queue id with per-copy values.
std::string vary(const std::string& line, int copy) {
  std::string out = line;
  const auto lb = out.find("]: ");
  const auto pb = out.rfind('[', lb);
  if (lb != std::string::npos && pb != std::string::npos) {
    const long pid = std::strtol(out.c_str() + pb + 1, nullptr, 10);
    out.replace(pb + 1, lb - pb - 1, std::to_string(pid * 1000 + copy % 1000));
  }
  const auto q = out.find("]: ");
  if (q != std::string::npos) {
    std::size_t s = q + 3, e = s;
    while (e < out.size() && std::isxdigit(static_cast<unsigned char>(out[e]))) ++e;
    if (e - s >= 10 && e < out.size() && out[e] == ':') {
      char buf[16];
      std::snprintf(buf, sizeof buf, "%05X", copy & 0xfffff);
      out.replace(s, 5, buf);
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t want = 2000000;
  std::string path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--lines" && i + 1 < argc) want = std::strtoul(argv[++i], nullptr, 10);
    else path = a;
  }
  std::string text;
  if (!path.empty()) {
    text = read(path);
  } else {
    std::string candidates = MTASTS_BENCH_LOGS;
    while (text.empty() && !candidates.empty()) {
      const auto colon = candidates.find(':');
      path = candidates.substr(0, colon);
      text = read(path);
      candidates = colon == std::string::npos ? "" : candidates.substr(colon + 1);
    }
  }
  std::vector<std::string> base;
  {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) base.push_back(line);
  }
  if (base.empty()) {
    std::fprintf(stderr, "bench_reportd: no log lines (give a Postfix log file)\n");
    return 1;
  }
  std::vector<std::string> lines;
  lines.reserve(want);
  for (int copy = 0; lines.size() < want; ++copy) {
    for (const auto& l : base) {
      if (lines.size() >= want) break;
      lines.push_back(vary(l, copy));
    }
  }
  mtasts::reportd::ParserOptions o;
  o.sender_address = "tlsrpt-reports@example.net";
  mtasts::reportd::PostfixParser parser(o);
  std::vector<mtasts::reportd::Outcome> out;
  out.reserve(lines.size() / 4);
  const auto start = std::chrono::steady_clock::now();
  for (const auto& l : lines) {
    parser.feed(l, out);
    if (out.size() > 100000) out.clear();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto& st = parser.stats();
  std::printf("input: %s (%zu lines replicated to %zu)\n", path.c_str(), base.size(), lines.size());
  std::printf("parsed %zu lines in %.3f s on one core: %.0f lines/s (%llu sessions, %llu malformed)\n", lines.size(),
              secs, static_cast<double>(lines.size()) / secs, static_cast<unsigned long long>(st.sessions),
              static_cast<unsigned long long>(st.malformed));

  // End to end through a file and the collector.
  char tmpl[] = "/tmp/bench-reportd-XXXXXX";
  const std::filesystem::path dir = ::mkdtemp(tmpl);
  {
    std::ofstream f(dir / "mail.log", std::ios::binary);
    for (const auto& l : lines) f << l << '\n';
  }
  NoPolicy view;
  std::vector<std::unique_ptr<mtasts::reportd::Source>> sources;
  mtasts::reportd::SourceOptions so;
  std::string err;
  sources.push_back(mtasts::reportd::make_source("postfix-log:" + (dir / "mail.log").string(), so, &err));
  mtasts::reportd::CollectorOptions co;
  co.state_dir = dir;
  mtasts::reportd::Collector collector(std::move(sources), view, co);
  collector.load();
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t read = 0;
  while (true) {
    const std::size_t n = collector.poll();
    read += n;
    if (n == 0 && read >= lines.size()) break;
    if (n == 0 && std::chrono::steady_clock::now() - t0 > std::chrono::seconds(120)) break;
  }
  const auto t1 = std::chrono::steady_clock::now();
  const auto pending = collector.checkpoint();
  const auto t2 = std::chrono::steady_clock::now();
  const double s1 = std::chrono::duration<double>(t1 - t0).count();
  std::printf("collector (file follower + parser + policy attach + batch): %zu lines in %.3f s: %.0f lines/s, "
              "%llu sessions\n",
              read, s1, static_cast<double>(read) / s1,
              static_cast<unsigned long long>(collector.current().sessions() +
                                              (pending.empty() ? 0 : pending.back().second.sessions())));
  std::printf("checkpoint (one atomic spool write with the batch): %.1f ms\n",
              std::chrono::duration<double, std::milli>(t2 - t1).count());
  std::filesystem::remove_all(dir);
  return 0;
}
