// bench_tlsmap: socketmap lookup speed of mta-sts-tlsmap next to Debian's
// postfix-mta-sts-resolver (mta-sts-daemon, the reference peer), in one run on this machine.
// Not a test: nothing is asserted.
//
// Both servers answer the same D enforce domains ("dN.bench.test", one exact MX pattern
// each, so that neither does DNS), asked by the same client of our own: C connections (1 and
// 8), each a thread sending one request and waiting for its reply, as Postfix's smtp
// processes do, for T seconds over a random order of the domains; lookups/s and the p50/p99
// of the round trip. Four servers:
//   tlsmap, local-cache hits   every domain read once first, then answered from its
//                              in-process cache (local-cache-ttl 1h)
//   tlsmap, Redis hits         local-cache-ttl = 0: every lookup is one Redis GET
//   peer, internal cache       its in-process LRU cache, filled through its own cache class
//   peer, Redis cache          its Redis cache, filled likewise (a ZSET per domain)
// (bench/tlsmap/peer_daemon.py fills the peer's cache: there is no internet to fetch from;
// cache_grace is raised so that it looks nothing up again during the run.)
// Then the peak RSS (VmHWM) of each with R domains (default 100,000) held in its in-process
// cache: every domain asked once.
//
//   bench_tlsmap [--domains D] [--seconds T] [--rss-domains R] [--no-peer]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/sts/cache_entry.hpp"
#include "common/sts/domain.hpp"
#include "common/fleet/redis.hpp"
#include "common/fleet/store.hpp"
#include "tests/fakes/cache_entries.hpp"
#include "tests/integration/tlsmap/harness.hpp"
#include "tests/support/redis_server.hpp"

namespace {

using namespace mtasts;
using namespace mtasts::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct Args {
  int domains = 1000;
  double seconds = 3;
  int rss_domains = 100000;
  bool peer = true;
};

std::string domain_name(int i) { return "d" + std::to_string(i) + ".bench.test"; }
std::string mx_name(int i) { return "mx.d" + std::to_string(i) + ".bench.test"; }

// Our cache, as the fetchers write it: one encoded entry per domain, pipelined.
void fill_ours(const std::string& redis_address, int n) {
  RedisOptions ro;
  ro.address = redis_address;
  ro.command_timeout = 10s;
  Pool pool(ro);
  PolicyStore store(pool, StoreOptions{});
  const SysTime now = SystemClock().now();
  auto lease = pool.lease();
  constexpr int kBatch = 2000;
  for (int start = 0; start < n; start += kBatch) {
    std::vector<std::string> keys, values;
    for (int i = start; i < std::min(n, start + kBatch); ++i) {
      keys.push_back(store.entry_key(*Domain::parse(domain_name(i)).domain));
      values.push_back(encode(policy_entry(Mode::enforce, "bench1", {mx_name(i)}, now)));
    }
    std::vector<std::vector<std::string_view>> cmds;
    for (std::size_t k = 0; k < keys.size(); ++k) cmds.push_back({"SET", keys[k], values[k], "EX", "86400"});
    lease->pipeline(cmds);
  }
}

struct Figures {
  double per_second = 0;
  double p50_us = 0;
  double p99_us = 0;
  long errors = 0;
};

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// C connections, each a thread asking in turn, for `seconds`.
Figures measure(const std::string& address, int connections, int domains, double seconds, const std::string& map,
                const std::string& expect_prefix) {
  std::vector<std::vector<double>> lat(connections);
  std::atomic<long> errors{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  const auto duration = std::chrono::duration<double>(seconds);
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      SocketmapClient client(address);
      std::mt19937 rng(static_cast<unsigned>(c + 1));
      std::uniform_int_distribution<int> pick(0, domains - 1);
      while (!go.load()) std::this_thread::yield();
      const auto end = std::chrono::steady_clock::now() + duration;
      auto& mine = lat[c];
      mine.reserve(200000);
      for (;;) {
        const auto t0 = std::chrono::steady_clock::now();
        if (t0 >= end) break;
        const std::string r = client.query(map + " " + domain_name(pick(rng)));
        const auto t1 = std::chrono::steady_clock::now();
        if (r.rfind(expect_prefix, 0) != 0) errors.fetch_add(1);
        mine.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      }
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  Figures f;
  f.per_second = static_cast<double>(all.size()) / seconds;
  f.p50_us = percentile(all, 0.50);
  f.p99_us = percentile(all, 0.99);
  f.errors = errors.load();
  return f;
}

// Asks every domain once (fills an in-process cache), over 8 connections.
void ask_all(const std::string& address, int n, const std::string& map) {
  std::vector<std::thread> threads;
  for (int c = 0; c < 8; ++c) {
    threads.emplace_back([&, c] {
      SocketmapClient client(address);
      for (int i = c; i < n; i += 8) client.query(map + " " + domain_name(i));
    });
  }
  for (auto& t : threads) t.join();
}

long status_kib(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string want = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.rfind(want, 0) == 0) return std::stol(line.substr(want.size()));
  return -1;
}

bool accepts(unsigned port) {
  try {
    SocketmapClient c("inet:127.0.0.1:" + std::to_string(port));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// The peer with its cache filled; stopped by the destructor.
class Peer {
 public:
  Peer(const fs::path& dir, const std::string& name, const std::string& cache_yaml, int domains) {
    port_ = free_tcp_port();
    const fs::path conf = dir / (name + ".yml");
    write_file(conf, "host: 127.0.0.1\nport: " + std::to_string(port_) +
                         "\nreuse_port: true\ncache_grace: 1000000000\ndefault_zone:\n  strict_testing: false\n"
                         "  timeout: 4\ncache:\n" + cache_yaml);
    const fs::path list = dir / (name + ".domains");
    std::string text;
    for (int i = 0; i < domains; ++i) text += domain_name(i) + " " + mx_name(i) + "\n";
    write_file(list, text);
    log_ = dir / (name + ".log");
    proc_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/bin/python3", MTASTS_PEER_DAEMON, conf.string(), list.string()}, log_);
    if (!wait_until([&] { return accepts(port_) || !proc_->running(); }, 600s) || !proc_->running())
      throw std::runtime_error("mta-sts-daemon did not start: " + read_file(log_));
  }
  ~Peer() { proc_->stop(5s); }
  std::string address() const { return "inet:127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return proc_->pid(); }

 private:
  unsigned port_ = 0;
  fs::path log_;
  std::unique_ptr<Process> proc_;
};

void row(const char* what, int conns, const Figures& f) {
  std::printf("| %-32s | %2d | %10.0f | %8.1f | %8.1f |%s\n", what, conns, f.per_second, f.p50_us, f.p99_us,
              f.errors ? (" errors=" + std::to_string(f.errors)).c_str() : "");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(k + " needs a value");
      return argv[++i];
    };
    if (k == "--domains") a.domains = std::stoi(next());
    else if (k == "--seconds") a.seconds = std::stod(next());
    else if (k == "--rss-domains") a.rss_domains = std::stoi(next());
    else if (k == "--no-peer") a.peer = false;
    else {
      std::fprintf(stderr, "usage: bench_tlsmap [--domains D] [--seconds T] [--rss-domains R] [--no-peer]\n");
      return 2;
    }
  }
  try {
    TempDir dir("mtasts-bench-tlsmap");
    RedisServer redis;
    const int filled = std::max(a.domains, a.rss_domains);
    std::printf("bench_tlsmap: %d domains asked, %.0f s per figure; RSS with %d domains cached; %u CPUs\n",
                a.domains, a.seconds, a.rss_domains, std::thread::hardware_concurrency());
    fill_ours(redis.address(), filled);

    const std::string ok = "OK secure match=mx.d";
    std::printf("\n| server | conns | lookups/s | p50 us | p99 us |\n|---|---|---|---|---|\n");
    const std::vector<std::string> common{"dane = no", "log-level = notice", "workers = 8",
                                          "local-cache-size = " + std::to_string(filled + 1000)};
    {
      TlsmapOptions o;
      o.redis_address = redis.address();
      o.tlsmap_lines = common;
      o.tlsmap_lines.push_back("local-cache-ttl = 1h");
      const fs::path d = dir / "tlsmap-local";
      fs::create_directories(d);
      TlsmapDaemon t(d, o);
      ask_all(t.listen(), a.domains, "postfix");
      for (int c : {1, 8}) row("mta-sts-tlsmap, local-cache hits", c, measure(t.listen(), c, a.domains, a.seconds, "postfix", ok));
    }
    {
      TlsmapOptions o;
      o.redis_address = redis.address();
      o.tlsmap_lines = common;
      o.tlsmap_lines.push_back("local-cache-ttl = 0");
      const fs::path d = dir / "tlsmap-redis";
      fs::create_directories(d);
      TlsmapDaemon t(d, o);
      for (int c : {1, 8}) row("mta-sts-tlsmap, Redis hits", c, measure(t.listen(), c, a.domains, a.seconds, "postfix", ok));
    }
    if (a.peer) {
      {
        Peer p(dir.path(), "peer-internal", "  type: internal\n  options:\n    cache_size: " + std::to_string(a.domains + 10) + "\n",
               a.domains);
        for (int c : {1, 8}) row("peer, internal cache", c, measure(p.address(), c, a.domains, a.seconds, "postfix", ok));
      }
      {
        Peer p(dir.path(), "peer-redis",
               "  type: redis\n  options:\n    url: \"unix://" + redis.socket_path() + "?db=1\"\n", a.domains);
        for (int c : {1, 8}) row("peer, Redis cache", c, measure(p.address(), c, a.domains, a.seconds, "postfix", ok));
      }
    }

    // Peak RSS with R domains held in the in-process cache.
    std::printf("\n| server | domains cached | peak RSS (VmHWM) |\n|---|---|---|\n");
    {
      TlsmapOptions o;
      o.redis_address = redis.address();
      o.tlsmap_lines = common;
      o.tlsmap_lines.push_back("local-cache-ttl = 1h");
      const fs::path d = dir / "tlsmap-rss";
      fs::create_directories(d);
      TlsmapDaemon t(d, o);
      ask_all(t.listen(), a.rss_domains, "postfix");
      SocketmapClient c(t.listen());
      const bool hit = c.query("postfix " + domain_name(a.rss_domains - 1)).rfind(ok, 0) == 0;
      std::printf("| mta-sts-tlsmap | %d%s | %.1f MiB |\n", a.rss_domains, hit ? "" : " (last lookup failed)",
                  static_cast<double>(status_kib(t.process().pid(), "VmHWM")) / 1024.0);
    }
    if (a.peer) {
      Peer p(dir.path(), "peer-rss",
             "  type: internal\n  options:\n    cache_size: " + std::to_string(a.rss_domains + 10) + "\n", a.rss_domains);
      ask_all(p.address(), a.rss_domains, "postfix");
      std::printf("| peer (internal cache) | %d | %.1f MiB |\n", a.rss_domains,
                  static_cast<double>(status_kib(p.pid(), "VmHWM")) / 1024.0);
    }
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tlsmap: %s\n", e.what());
    return 1;
  }
  return 0;
}
