// The socketmap server; see server.hpp.
#include "tlsmap/server.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "common/util/log.hpp"

namespace mtasts::tlsmap {

using SteadyClock = std::chrono::steady_clock;

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::string ServerCounters::summary() const {
  return "accepted=" + std::to_string(accepted.load()) + " refused=" + std::to_string(refused.load()) +
         " requests=" + std::to_string(requests.load()) + " inline=" + std::to_string(answered_inline.load()) +
         " worker=" + std::to_string(answered_by_worker.load()) + " busy=" + std::to_string(busy.load()) +
         " protocol_errors=" + std::to_string(protocol_errors.load()) +
         " idle_closed=" + std::to_string(idle_closed.load()) + " open=" + std::to_string(open.load());
}

namespace {

constexpr std::uint64_t kEventToken = 0;
constexpr std::uint64_t kListenerBit = std::uint64_t{1} << 63;
constexpr std::size_t kReadChunk = 16384;
// Replies waiting for a client that does not read them: past this, its requests are not read
// either, so that a client cannot make the server buffer without bound.
constexpr std::size_t kMaxPendingOut = 256 * 1024;

std::runtime_error sys_error(const char* what) { return std::runtime_error(std::string(what) + ": " + std::strerror(errno)); }

}  // namespace

struct Server::Conn {
  std::uint64_t id = 0;
  UniqueFd fd;
  NetstringReader reader;
  std::string in;                // bytes read and not yet given to the reader
  std::size_t in_off = 0;
  // Replies in request order; a slot is empty until its reply is known.
  std::deque<std::optional<std::string>> slots;
  std::uint64_t first_seq = 0;   // sequence number of slots.front()
  std::uint64_t next_seq = 0;
  std::string out;
  std::size_t out_off = 0;
  bool eof = false;              // the client closed its side: close once replies are out
  std::uint32_t events = 0;      // epoll interest now
  SteadyClock::time_point last_active;
};

Server::Server(Handler& handler, ServerOptions opts) : handler_(handler), opts_(opts) {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw sys_error("epoll_create1");
  event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event_) throw sys_error("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kEventToken;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, event_.get(), &ev) != 0) throw sys_error("epoll_ctl");
}

Server::~Server() {
  {
    std::lock_guard lk(jobs_mu_);
    workers_stop_ = true;
  }
  jobs_cv_.notify_all();
  for (auto& t : workers_)
    if (t.joinable()) t.join();
}

void Server::add_listener(UniqueFd fd) {
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) throw sys_error("fcntl");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenerBit | listeners_.size();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) throw sys_error("epoll_ctl");
  listeners_.push_back(std::move(fd));
}

void Server::wake() noexcept {
  const std::uint64_t one = 1;
  // A full counter still wakes the loop; nothing to do on failure.
  [[maybe_unused]] const ssize_t n = ::write(event_.get(), &one, sizeof one);
}

void Server::stop() noexcept {
  stopping_.store(true);
  wake();
}

// ---- workers ------------------------------------------------------------------------------

bool Server::enqueue(Job job) {
  {
    std::lock_guard lk(jobs_mu_);
    if (jobs_.size() >= opts_.queue_size) return false;
    jobs_.push_back(std::move(job));
  }
  jobs_cv_.notify_one();
  return true;
}

void Server::worker_loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock lk(jobs_mu_);
      jobs_cv_.wait(lk, [&] { return workers_stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping and nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    std::string reply;
    try {
      reply = handler_.answer(job.request);
    } catch (const std::exception& e) {
      // Fails closed: Postfix and Sendmail defer on TEMP.
      log::error("lookup failed", {{"error", e.what()}});
      reply = "TEMP internal error";
    }
    {
      std::lock_guard lk(done_mu_);
      done_.push_back(Done{job.conn, job.seq, std::move(reply)});
    }
    wake();
  }
}

void Server::drain_done() {
  std::vector<Done> done;
  {
    std::lock_guard lk(done_mu_);
    done.swap(done_);
  }
  for (Done& d : done) {
    auto it = conns_.find(d.conn);
    if (it == conns_.end()) continue;  // the client went away meanwhile
    Conn& c = *it->second;
    if (d.seq < c.first_seq || d.seq - c.first_seq >= c.slots.size()) continue;
    c.slots[d.seq - c.first_seq] = std::move(d.reply);
    flush(c);
  }
}

// ---- connections --------------------------------------------------------------------------

void Server::accept_all(int listener) {
  for (;;) {
    UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) log::warning("accept failed", {{"error", std::strerror(errno)}});
      return;
    }
    if (conns_.size() >= opts_.max_connections) {
      // Closing at once makes the client fail closed (Postfix defers), which is better
      // than a connection that is never served.
      if (counters_.refused.fetch_add(1) % 1000 == 0)
        log::warning("max-connections reached, refusing", {{"max", std::to_string(opts_.max_connections)}});
      continue;
    }
    auto c = std::make_unique<Conn>();
    c->id = next_id_++;
    c->fd = std::move(fd);
    c->last_active = SteadyClock::now();
    c->events = EPOLLIN;
    epoll_event ev{};
    ev.events = c->events;
    ev.data.u64 = c->id;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, c->fd.get(), &ev) != 0) {
      log::warning("epoll_ctl failed", {{"error", std::strerror(errno)}});
      continue;
    }
    counters_.accepted.fetch_add(1);
    counters_.open.fetch_add(1);
    conns_.emplace(c->id, std::move(c));
  }
}

void Server::close_conn(std::uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  // Closing the descriptor removes it from the epoll set.
  conns_.erase(it);
  counters_.open.fetch_sub(1);
}

bool Server::can_take(const Conn& c) const {
  return c.slots.size() < opts_.max_pipeline && c.out.size() - c.out_off < kMaxPendingOut;
}

void Server::update_interest(Conn& c) {
  std::uint32_t want = 0;
  if (!c.eof && can_take(c)) want |= EPOLLIN;
  if (c.out_off < c.out.size()) want |= EPOLLOUT;
  if (want == c.events) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = c.id;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev) == 0) c.events = want;
}

void Server::on_readable(Conn& c) {
  // process_input() may close (and free) the connection: remember how to look it up.
  const std::uint64_t id = c.id;
  char buf[kReadChunk];
  // Read only what can be taken in: at most one chunk waits unparsed.
  while (!c.eof && can_take(c) && c.in.size() - c.in_off < kReadChunk) {
    const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      if (c.in_off == c.in.size()) {
        c.in.clear();
        c.in_off = 0;
      }
      c.in.append(buf, static_cast<std::size_t>(n));
      c.last_active = SteadyClock::now();
      process_input(c);
      if (!conns_.count(id)) return;
      // A short read drained the socket: skip the recv() that would say EAGAIN (epoll is
      // level-triggered and reports anything that arrives later).
      if (static_cast<std::size_t>(n) < sizeof buf) break;
      continue;
    }
    if (n == 0) {
      c.eof = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      close_conn(c.id);
      return;
    }
    break;
  }
  if (c.eof) {
    if (!c.reader.idle() && c.in_off == c.in.size()) {
      close_conn(c.id);  // a request cut short: nobody to answer
      return;
    }
    if (c.slots.empty() && c.out_off == c.out.size() && c.in_off == c.in.size()) {
      close_conn(c.id);
      return;
    }
  }
  update_interest(c);
}

void Server::process_input(Conn& c) {
  while (c.in_off < c.in.size() && can_take(c)) {
    c.in_off += c.reader.feed(std::string_view(c.in).substr(c.in_off));
    if (c.reader.state() == NetstringReader::State::error) {
      counters_.protocol_errors.fetch_add(1);
      log::notice("socketmap protocol error, connection closed", {{"error", c.reader.error()}});
      // Replies already known for earlier requests go out first (best effort, no waiting).
      while (!c.slots.empty() && c.slots.front()) {
        c.out += netstring(*c.slots.front());
        c.slots.pop_front();
      }
      if (c.out_off < c.out.size())
        [[maybe_unused]] const ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_off, c.out.size() - c.out_off,
                                                  MSG_NOSIGNAL | MSG_DONTWAIT);
      close_conn(c.id);
      return;
    }
    if (c.reader.state() != NetstringReader::State::complete) break;
    std::string request = c.reader.take();
    counters_.requests.fetch_add(1);
    const std::uint64_t seq = c.next_seq++;
    c.slots.emplace_back();
    std::optional<std::string> fast;
    try {
      fast = handler_.answer_fast(request);
    } catch (const std::exception& e) {
      log::error("lookup failed", {{"error", e.what()}});
      fast = "TEMP internal error";
    }
    if (fast) {
      counters_.answered_inline.fetch_add(1);
      c.slots.back() = std::move(*fast);
    } else if (enqueue(Job{c.id, seq, std::move(request)})) {
      counters_.answered_by_worker.fetch_add(1);
    } else {
      counters_.busy.fetch_add(1);
      c.slots.back() = std::string("TEMP server busy");
    }
  }
  if (c.in_off == c.in.size()) {
    c.in.clear();
    c.in_off = 0;
  }
  flush(c);
}

void Server::flush(Conn& c) {
  // Ready replies at the front, in order.
  while (!c.slots.empty() && c.slots.front()) {
    if (c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
    }
    c.out += netstring(*c.slots.front());
    c.slots.pop_front();
    ++c.first_seq;
  }
  while (c.out_off < c.out.size()) {
    const ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    close_conn(c.id);
    return;
  }
  if (c.out_off == c.out.size()) {
    c.out.clear();
    c.out_off = 0;
  }
  c.last_active = SteadyClock::now();
  if (c.eof && c.slots.empty() && c.out.empty() && c.in_off == c.in.size()) {
    close_conn(c.id);
    return;
  }
  // Room in the pipeline again: bytes already read may hold the next requests.
  if (c.in_off < c.in.size() && can_take(c)) {
    process_input(c);
    return;
  }
  update_interest(c);
}

void Server::sweep_idle(SteadyClock::time_point now) {
  std::vector<std::uint64_t> idle;
  for (const auto& [id, c] : conns_)
    if (c->slots.empty() && c->out.empty() && now - c->last_active >= opts_.idle_timeout) idle.push_back(id);
  for (std::uint64_t id : idle) {
    counters_.idle_closed.fetch_add(1);
    close_conn(id);
  }
}

void Server::run() {
  workers_.reserve(opts_.workers);
  for (unsigned i = 0; i < opts_.workers; ++i) workers_.emplace_back([this] { worker_loop(); });

  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  auto last_sweep = SteadyClock::now();
  const auto sweep_every = std::min<std::chrono::milliseconds>(opts_.idle_timeout / 4 + std::chrono::milliseconds(1),
                                                                std::chrono::milliseconds(1000));
  std::optional<SteadyClock::time_point> drain_deadline;

  for (;;) {
    if (stopping_.load() && !drain_deadline) {
      // Stop accepting; answer what is in flight, within the drain time.
      for (auto& l : listeners_) l.reset();
      listeners_.clear();
      drain_deadline = SteadyClock::now() + opts_.drain;
    }
    if (drain_deadline) {
      bool pending = false;
      for (const auto& [id, c] : conns_) pending = pending || !c->slots.empty() || !c->out.empty();
      if (!pending || SteadyClock::now() >= *drain_deadline) break;
    }
    const int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, static_cast<int>(sweep_every.count()));
    if (n < 0 && errno != EINTR) throw sys_error("epoll_wait");
    for (int i = 0; i < n; ++i) {
      const std::uint64_t token = events[i].data.u64;
      if (token == kEventToken) {
        std::uint64_t count = 0;
        [[maybe_unused]] const ssize_t r = ::read(event_.get(), &count, sizeof count);
        continue;
      }
      if (token & kListenerBit) {
        const std::size_t index = token & ~kListenerBit;
        if (index < listeners_.size() && listeners_[index]) accept_all(listeners_[index].get());
        continue;
      }
      auto it = conns_.find(token);
      if (it == conns_.end()) continue;
      Conn& c = *it->second;
      const std::uint32_t ev = events[i].events;
      if (ev & (EPOLLERR | EPOLLHUP)) {  // reset or gone both ways: nobody to answer
        close_conn(c.id);
        continue;
      }
      if (ev & EPOLLOUT) {
        flush(c);
        if (!conns_.count(token)) continue;
      }
      if (ev & EPOLLIN) on_readable(c);
    }
    drain_done();
    const auto now = SteadyClock::now();
    if (now - last_sweep >= sweep_every) {
      sweep_idle(now);
      last_sweep = now;
    }
  }

  conns_.clear();
  counters_.open.store(0);
  {
    std::lock_guard lk(jobs_mu_);
    workers_stop_ = true;
    jobs_.clear();
  }
  jobs_cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

}  // namespace mtasts::tlsmap
