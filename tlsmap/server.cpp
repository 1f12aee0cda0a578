// The socketmap server; see server.hpp.
#include "tlsmap/server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
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
         " idle_closed=" + std::to_string(idle_closed.load()) + " timed_out=" + std::to_string(timed_out.load()) +
         " evicted=" + std::to_string(evicted.load()) + " open=" + std::to_string(open.load());
}

namespace {

constexpr std::uint64_t kEventToken = 0;
constexpr std::uint64_t kListenerBit = std::uint64_t{1} << 63;
constexpr std::size_t kReadChunk = 16384;
// Replies waiting for a client that does not read them: past this, its requests are not read
// either, so that a client cannot make the server buffer without bound. Postfix reads each
// reply at once: its replies never wait here.
constexpr std::size_t kMaxPendingOut = 64 * 1024;
// The same over every connection: past it, no connection with replies waiting is read.
constexpr std::size_t kMaxPendingOutTotal = 16u << 20;
// Descriptors kept for what is not a client connection (Redis pools and the change
// subscriber, DNS queries, the metrics endpoint, the log).
constexpr rlim_t kReservedFds = 32;
// How long accepting stops when a connection cannot be accepted for lack of descriptors and
// no connection can be given up.
constexpr std::chrono::milliseconds kAcceptPause{100};

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
  std::size_t at_workers = 0;    // requests whose reply a worker is making
  std::size_t pending_out = 0;   // out.size() - out_off, as counted in pending_out_total_
  // Accepted, or a whole request taken, or every reply taken by the client: what eviction
  // and idle-timeout look at (bytes that do not complete a request are no progress).
  SteadyClock::time_point progress;
  std::optional<SteadyClock::time_point> partial_since;  // a request begun, not yet whole
  std::optional<SteadyClock::time_point> unread_since;   // replies waiting for the client
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
  // More connections than descriptors would end in accept() failing: cap at the limit, less a
  // reserve for Redis and DNS.
  conn_limit_ = std::max<std::size_t>(opts_.max_connections, 1);
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    const rlim_t room = rl.rlim_cur > 2 * kReservedFds ? rl.rlim_cur - kReservedFds : rl.rlim_cur / 2;
    if (room < conn_limit_) {
      conn_limit_ = std::max<std::size_t>(static_cast<std::size_t>(room), 1);
      log::warning("descriptor limit below max-connections: fewer connections at once",
                   {{"max_connections", std::to_string(opts_.max_connections)}, {"connections", std::to_string(conn_limit_)}});
    }
  }
}

Server::~Server() {
  {
    std::lock_guard lk(jobs_mu_);
    workers_stop_ = true;
  }
  jobs_cv_.notify_all();
  {
    std::lock_guard lk(dns_mu_);
    dns_stop_ = true;
  }
  dns_cv_.notify_all();
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  for (auto& t : dns_workers_)
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

void Server::finished(std::uint64_t conn, std::uint64_t seq, std::string reply) {
  {
    std::lock_guard lk(done_mu_);
    done_.push_back(Done{conn, seq, std::move(reply)});
  }
  wake();
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
    StagedAnswer a;
    try {
      a = handler_.answer_staged(job.request);
    } catch (const std::exception& e) {
      // Fails closed: Postfix and Sendmail defer on TEMP.
      log::error("lookup failed", {{"error", e.what()}});
      a = StagedAnswer{"TEMP internal error", {}};
    }
    if (a.dns) {
      // The DNS part waits on a DNS worker: this one goes on with the next lookup.
      bool queued = false;
      {
        std::lock_guard lk(dns_mu_);
        if (!dns_stop_ && dns_jobs_.size() < opts_.queue_size) {
          dns_jobs_.push_back(DnsJob{job.conn, job.seq, std::move(a.dns)});
          queued = true;
        }
      }
      if (queued) {
        dns_cv_.notify_one();
        continue;
      }
      counters_.busy.fetch_add(1);
      a.reply = "TEMP server busy";
    }
    finished(job.conn, job.seq, std::move(a.reply));
  }
}

void Server::dns_worker_loop() {
  for (;;) {
    DnsJob job;
    {
      std::unique_lock lk(dns_mu_);
      dns_cv_.wait(lk, [&] { return dns_stop_ || !dns_jobs_.empty(); });
      if (dns_jobs_.empty()) return;
      job = std::move(dns_jobs_.front());
      dns_jobs_.pop_front();
    }
    std::string reply;
    try {
      reply = job.rest();
    } catch (const std::exception& e) {
      log::error("lookup failed", {{"error", e.what()}});
      reply = "TEMP internal error";
    }
    job.rest = nullptr;  // what it holds is released here, not on the event loop
    finished(job.conn, job.seq, std::move(reply));
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
    if (c.at_workers > 0) --c.at_workers;
    flush(c);
  }
}

// ---- connections --------------------------------------------------------------------------

void Server::accept_all(int listener) {
  const auto now = SteadyClock::now();
  for (int made_room = 0;;) {
    UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // accept() wants a descriptor before it looks for a connection: is one waiting?
        const int err = errno;
        pollfd p{listener, POLLIN, 0};
        if (::poll(&p, 1, 0) != 1) return;
        errno = err;
        // The listener stays readable (level-triggered): retrying at once would spin. Give
        // up a connection for the waiting one, a few times per round; else stop accepting
        // for a moment.
        if (made_room++ < 8 && make_room()) continue;
        pause_accepting();
        return;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) log::warning("accept failed", {{"error", std::strerror(errno)}});
      return;
    }
    if (conns_.size() >= conn_limit_ && !make_room()) {
      // Every connection has a request at a worker (each is answered within the lookup's
      // bounds). Closing at once makes the client fail closed (Postfix defers), which is
      // better than a connection that is never served.
      if (counters_.refused.fetch_add(1) % 1000 == 0)
        log::warning("max-connections reached, every connection busy, refusing",
                     {{"max", std::to_string(conn_limit_)}});
      continue;
    }
    auto c = std::make_unique<Conn>();
    c->id = next_id_++;
    c->fd = std::move(fd);
    c->progress = now;
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

std::optional<std::uint64_t> Server::victim() const {
  // A connection with a request at a worker is about to be answered: never given up. Of the
  // others, the one whose last progress is oldest: a client dribbling a request or not
  // reading its replies makes none, an idle one none since its last request. A client that
  // only opens connections pushes out the oldest of its own first.
  std::optional<std::uint64_t> best;
  SteadyClock::time_point oldest{};
  for (const auto& [id, c] : conns_) {
    if (c->at_workers > 0) continue;
    if (!best || c->progress < oldest) {
      best = id;
      oldest = c->progress;
    }
  }
  return best;
}

bool Server::make_room() {
  const std::optional<std::uint64_t> v = victim();
  if (!v) return false;
  if (counters_.evicted.fetch_add(1) % 1000 == 0)
    log::notice("connection slots full: the least active connection closed for a new one",
                {{"max", std::to_string(conn_limit_)}});
  close_conn(*v);
  return true;
}

void Server::pause_accepting() {
  if (accept_paused_until_) return;
  if (counters_.accept_paused.fetch_add(1) % 100 == 0)
    log::warning("cannot accept: out of descriptors and every connection busy; pausing", {{"error", std::strerror(errno)}});
  for (auto& l : listeners_)
    if (l) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, l.get(), nullptr);
  accept_paused_until_ = SteadyClock::now() + kAcceptPause;
}

void Server::resume_accepting() {
  accept_paused_until_.reset();
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    if (!listeners_[i]) continue;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerBit | i;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listeners_[i].get(), &ev);
  }
}

void Server::close_conn(std::uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  pending_out_total_ -= it->second->pending_out;
  // Closing the descriptor removes it from the epoll set.
  conns_.erase(it);
  counters_.open.fetch_sub(1);
}

bool Server::can_take(const Conn& c) const {
  const std::size_t waiting = c.out.size() - c.out_off;
  return c.slots.size() < opts_.max_pipeline && waiting < kMaxPendingOut &&
         (waiting == 0 || pending_out_total_ < kMaxPendingOutTotal);
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
    c.progress = SteadyClock::now();
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
      ++c.at_workers;
    } else {
      counters_.busy.fetch_add(1);
      c.slots.back() = std::string("TEMP server busy");
    }
  }
  if (c.in_off == c.in.size()) {
    c.in.clear();
    c.in_off = 0;
  }
  // A request begun and not whole has request_timeout to arrive (see sweep()).
  if (c.reader.idle())
    c.partial_since.reset();
  else if (!c.partial_since)
    c.partial_since = SteadyClock::now();
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
  const auto now = SteadyClock::now();
  if (c.out_off == c.out.size()) {
    if (!c.out.empty()) c.progress = now;  // every reply taken
    c.out.clear();
    c.out_off = 0;
    c.unread_since.reset();
  } else if (!c.unread_since) {
    c.unread_since = now;  // the client has request_timeout to take its replies
  }
  pending_out_total_ = pending_out_total_ - c.pending_out + (c.out.size() - c.out_off);
  c.pending_out = c.out.size() - c.out_off;
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

void Server::sweep(SteadyClock::time_point now) {
  std::vector<std::uint64_t> idle, slow;
  for (const auto& [id, c] : conns_) {
    if ((c->partial_since && now - *c->partial_since >= opts_.request_timeout) ||
        (c->unread_since && now - *c->unread_since >= opts_.request_timeout))
      slow.push_back(id);
    else if (c->slots.empty() && c->out.empty() && now - c->progress >= opts_.idle_timeout)
      idle.push_back(id);
  }
  for (std::uint64_t id : idle) {
    counters_.idle_closed.fetch_add(1);
    close_conn(id);
  }
  if (!slow.empty())
    log::notice("connections closed: a request or its reply took past request-timeout",
                {{"connections", std::to_string(slow.size())}});
  for (std::uint64_t id : slow) {
    counters_.timed_out.fetch_add(1);
    close_conn(id);
  }
}

void Server::run() {
  workers_.reserve(opts_.workers);
  for (unsigned i = 0; i < opts_.workers; ++i) workers_.emplace_back([this] { worker_loop(); });
  dns_workers_.reserve(opts_.dns_workers);
  for (unsigned i = 0; i < std::max(opts_.dns_workers, 1u); ++i) dns_workers_.emplace_back([this] { dns_worker_loop(); });

  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  auto last_sweep = SteadyClock::now();
  const auto sweep_every = std::min({opts_.idle_timeout / 4 + std::chrono::milliseconds(1),
                                     opts_.request_timeout / 4 + std::chrono::milliseconds(1),
                                     std::chrono::milliseconds(1000)});
  std::optional<SteadyClock::time_point> drain_deadline;

  for (;;) {
    if (stopping_.load() && !drain_deadline) {
      // Stop accepting; answer what is in flight, within the drain time.
      accept_paused_until_.reset();
      for (auto& l : listeners_) l.reset();
      listeners_.clear();
      drain_deadline = SteadyClock::now() + opts_.drain;
    }
    if (drain_deadline) {
      bool pending = false;
      for (const auto& [id, c] : conns_) pending = pending || !c->slots.empty() || !c->out.empty();
      if (!pending || SteadyClock::now() >= *drain_deadline) break;
    }
    if (accept_paused_until_ && SteadyClock::now() >= *accept_paused_until_) resume_accepting();
    auto timeout = sweep_every;
    if (accept_paused_until_)
      timeout = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(*accept_paused_until_ - SteadyClock::now()),
                           std::chrono::milliseconds(1), sweep_every);
    const int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, static_cast<int>(timeout.count()));
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
      sweep(now);
      last_sweep = now;
    }
  }

  conns_.clear();
  pending_out_total_ = 0;
  counters_.open.store(0);
  {
    std::lock_guard lk(jobs_mu_);
    workers_stop_ = true;
    jobs_.clear();
  }
  jobs_cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  {
    std::lock_guard lk(dns_mu_);
    dns_stop_ = true;
    dns_jobs_.clear();
  }
  dns_cv_.notify_all();
  for (auto& t : dns_workers_) t.join();
  dns_workers_.clear();
}

}  // namespace mtasts::tlsmap
