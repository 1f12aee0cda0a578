// The socketmap server: one event-loop thread (epoll) for every client connection, and two
// fixed pools of worker threads fed through bounded queues: lookup workers for the part of a
// lookup that may wait on Redis, DNS workers for the part that waits on DNS (the MX set and
// TLSA records), so that lookups answered from Redis never queue behind a slow domain's DNS.
// Promises:
// - Replies go out in request order on each connection, however requests are pipelined and
//   whichever worker finishes first.
// - A request is never buffered beyond kMaxRequest: a longer netstring, or anything that is
//   not a netstring, closes that connection (a protocol error; the client fails closed).
// - No client holds a connection slot it does not use: a request must arrive whole within
//   request_timeout of its first byte, and replies must be taken by the client within
//   request_timeout (else the connection is closed); a connection that makes no progress
//   (no request, no reply taken) for idle_timeout is closed. At most max_pipeline requests of
//   one connection are in flight and at most kMaxPendingOut bytes of its replies wait to be
//   sent (kMaxPendingOutTotal over all connections); beyond, it is not read until replies
//   have gone out.
// - A new connection always gets a slot unless every connection has a request at a worker:
//   at max_connections (or when descriptors run out) the connection that made progress least
//   recently among the others is closed to make room. The descriptor limit caps connections
//   (a reserve stays for Redis and DNS); accept failing for lack of descriptors never spins.
// - When a worker queue is full the request gets "TEMP" at once.
// - stop() is async-signal-safe (a write to an eventfd); run() then stops accepting, gives
//   requests in flight a bounded time (drain) to be answered, and returns.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "tlsmap/netstring.hpp"
#include "tlsmap/responder.hpp"

namespace mtasts::tlsmap {

// Owns a file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const noexcept { return fd_; }
  int release() noexcept {
    const int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1) noexcept;
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct ServerOptions {
  std::chrono::milliseconds idle_timeout{300000};
  // The longest a request may take to arrive once begun, and replies may wait for the client.
  std::chrono::milliseconds request_timeout{10000};
  unsigned workers = 8;      // lookup workers (Redis)
  unsigned dns_workers = 8;  // workers for the DNS part of lookups
  std::size_t queue_size = 4096;  // each pool's queue
  std::size_t max_connections = 4096;
  std::size_t max_pipeline = 64;
  std::chrono::milliseconds drain{5000};
};

struct ServerCounters {
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> refused{0};        // over max-connections
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> answered_inline{0};
  std::atomic<std::uint64_t> answered_by_worker{0};
  std::atomic<std::uint64_t> busy{0};           // TEMP because the worker queue was full
  std::atomic<std::uint64_t> protocol_errors{0};
  std::atomic<std::uint64_t> idle_closed{0};
  std::atomic<std::uint64_t> timed_out{0};      // a request or a reply took past request_timeout
  std::atomic<std::uint64_t> evicted{0};        // closed to make room for a new connection
  std::atomic<std::uint64_t> accept_paused{0};  // accept stopped for a moment: no descriptors
  std::atomic<std::uint64_t> open{0};           // connections open now
  std::string summary() const;
};

class Server {
 public:
  // `handler` must outlive the server. Throws std::runtime_error when epoll or the eventfd
  // cannot be made.
  Server(Handler& handler, ServerOptions opts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // A listening socket (already bound and listening); made non-blocking here.
  void add_listener(UniqueFd fd);
  // Serves until stop(). Starts and joins the workers.
  void run();
  // Async-signal-safe.
  void stop() noexcept;
  const ServerCounters& counters() const noexcept { return counters_; }

 private:
  struct Conn;
  struct Job {
    std::uint64_t conn;
    std::uint64_t seq;
    std::string request;
  };
  struct DnsJob {
    std::uint64_t conn;
    std::uint64_t seq;
    std::function<std::string()> rest;
  };
  struct Done {
    std::uint64_t conn;
    std::uint64_t seq;
    std::string reply;
  };

  void accept_all(int listener);
  std::optional<std::uint64_t> victim() const;  // the connection to give up for a new one
  bool make_room();                             // closes victim(), if any
  void pause_accepting();
  void resume_accepting();
  void on_readable(Conn& c);
  void process_input(Conn& c);
  void flush(Conn& c);
  bool can_take(const Conn& c) const;  // may more requests of `c` be taken in now?
  void update_interest(Conn& c);
  void close_conn(std::uint64_t id);
  void drain_done();
  void sweep(std::chrono::steady_clock::time_point now);
  bool enqueue(Job job);
  void worker_loop();
  void dns_worker_loop();
  void finished(std::uint64_t conn, std::uint64_t seq, std::string reply);
  void wake() noexcept;

  Handler& handler_;
  ServerOptions opts_;
  ServerCounters counters_;
  UniqueFd epoll_;
  UniqueFd event_;  // eventfd: worker completions and stop()
  std::vector<UniqueFd> listeners_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Conn>> conns_;
  std::unordered_map<int, std::uint64_t> by_fd_;
  std::uint64_t next_id_ = 1;
  std::atomic<bool> stopping_{false};
  std::size_t conn_limit_ = 0;  // max_connections, capped by the descriptor limit
  std::size_t pending_out_total_ = 0;  // replies waiting to be sent, all connections
  std::optional<std::chrono::steady_clock::time_point> accept_paused_until_;

  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<Job> jobs_;
  bool workers_stop_ = false;
  std::vector<std::thread> workers_;

  std::mutex dns_mu_;
  std::condition_variable dns_cv_;
  std::deque<DnsJob> dns_jobs_;
  bool dns_stop_ = false;
  std::vector<std::thread> dns_workers_;

  std::mutex done_mu_;
  std::vector<Done> done_;
};

}  // namespace mtasts::tlsmap
