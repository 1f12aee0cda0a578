// The `metrics-listen` endpoint of every daemon: `GET /metrics` answered with the process's
// Registry in the Prometheus text format, by libmicrohttpd on its own thread (the daemon's
// mail path never waits for a scrape; a scrape only reads atomics).
//
// Promises: one listening address (numeric IPv4 or [IPv6], no name: what is bound must not
// depend on DNS); at most a few connections at once, each with a short timeout, so that a
// stuck scraper cannot pile up threads or memory; anything but GET or HEAD of /metrics gets
// 404 or 405. No exception crosses libmicrohttpd's C callbacks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/util/metrics.hpp"

struct MHD_Daemon;

namespace mtasts::metrics {

class HttpServer {
 public:
  // Binds `listen` (HOST:PORT as parse_listen accepts) and starts serving `registry`.
  // Throws std::runtime_error naming the address when it cannot listen.
  HttpServer(const std::string& listen, const Registry& registry);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::uint16_t port() const noexcept { return port_; }  // the bound port

 private:
  struct Stop {
    void operator()(MHD_Daemon* d) const noexcept;
  };
  std::unique_ptr<MHD_Daemon, Stop> daemon_;
  std::uint16_t port_ = 0;
};

// Starts the server when `listen` is set (logs where it listens); nullptr when empty.
std::unique_ptr<HttpServer> serve(const std::string& listen, const Registry& from = metrics::registry());

}  // namespace mtasts::metrics
