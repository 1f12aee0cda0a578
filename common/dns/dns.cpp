// The production Resolver: DNS over UDP with TCP fallback, ldns for the wire format only.
// The socket I/O is our own so that every query has a hard deadline, a timeout is told
// apart from a network error, answers are matched against the question (id, name, type), and
// the resolver object is safe to share between threads (no state besides options).
//
// This is the only translation unit that includes ldns (see DESIGN.md): <stdbool.h> must
// come first, or ldns/common.h defines `true` and `false` as macros.
#include <stdbool.h>
#include <ldns/ldns.h>

#include "common/dns/dns.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <netinet/in.h>
#include <poll.h>
#include <random>
#include <sstream>
#include <sys/socket.h>
#include <unistd.h>

namespace mtasts::dns {

const char* to_string(Status s) noexcept {
  switch (s) {
    case Status::ok: return "ok";
    case Status::nxdomain: return "nxdomain";
    case Status::nodata: return "nodata";
    case Status::servfail: return "servfail";
    case Status::timeout: return "timeout";
    case Status::error: return "error";
  }
  return "error";
}

// ---- server addresses ------------------------------------------------------------------

namespace {

bool numeric_v4(const std::string& s) {
  in_addr a{};
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}
bool numeric_v6(const std::string& s) {
  in6_addr a{};
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

unsigned short parse_port(const std::string& text, const std::string& whole) {
  if (text.empty() || text.size() > 5 ||
      text.find_first_not_of("0123456789") != std::string::npos)
    throw std::invalid_argument("bad port in resolver address: " + whole);
  const unsigned long v = std::stoul(text);
  if (v == 0 || v > 65535) throw std::invalid_argument("port out of range in resolver address: " + whole);
  return static_cast<unsigned short>(v);
}

}  // namespace

Server parse_server(const std::string& text) {
  Server s;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos) throw std::invalid_argument("missing ']' in resolver address: " + text);
    s.address = text.substr(1, close - 1);
    const std::string rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') throw std::invalid_argument("junk after ']' in resolver address: " + text);
      s.port = parse_port(rest.substr(1), text);
    }
    if (!numeric_v6(s.address)) throw std::invalid_argument("not an IPv6 address: " + text);
    return s;
  }
  const auto colons = std::count(text.begin(), text.end(), ':');
  if (colons > 1) {  // bare IPv6 address
    s.address = text;
    if (!numeric_v6(s.address)) throw std::invalid_argument("not an IP address: " + text);
    return s;
  }
  if (colons == 1) {
    const auto c = text.find(':');
    s.address = text.substr(0, c);
    s.port = parse_port(text.substr(c + 1), text);
  } else {
    s.address = text;
  }
  if (!numeric_v4(s.address)) throw std::invalid_argument("not an IP address: " + text);
  return s;
}

bool is_loopback(const Server& s) noexcept {
  in_addr v4{};
  if (inet_pton(AF_INET, s.address.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.address.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

std::vector<Server> servers_from_resolv_conf(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<Server> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, value;
    if (!(words >> key >> value) || key != "nameserver") continue;
    if (const auto pct = value.find('%'); pct != std::string::npos) value.resize(pct);
    Server s;
    s.address = value;
    if (numeric_v4(value) || numeric_v6(value)) out.push_back(s);
  }
  if (out.empty()) throw std::runtime_error("no nameserver in " + path);
  return out;
}

// ---- one query -------------------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;

struct PktFree { void operator()(ldns_pkt* p) const noexcept { ldns_pkt_free(p); } };
struct RdfFree { void operator()(ldns_rdf* r) const noexcept { ldns_rdf_deep_free(r); } };
struct CharFree { void operator()(void* p) const noexcept { std::free(p); } };
using PktPtr = std::unique_ptr<ldns_pkt, PktFree>;
using RdfPtr = std::unique_ptr<ldns_rdf, RdfFree>;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { if (fd_ >= 0) ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return fd_; }
 private:
  int fd_;
};

struct Outcome {
  Status status = Status::error;
  PktPtr pkt;
  std::string error;
};

std::string dname_text(const ldns_rdf* d) {
  std::unique_ptr<char, CharFree> s(ldns_rdf2str(d));
  if (!s) return "?";
  std::string out(s.get());
  if (out.size() > 1 && out.back() == '.') out.pop_back();
  return out;
}

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

// Fills a sockaddr for the server. False for an address that is not numeric.
bool make_sockaddr(const Server& s, sockaddr_storage* ss, socklen_t* len) {
  std::memset(ss, 0, sizeof *ss);
  sockaddr_in v4{};
  if (inet_pton(AF_INET, s.address.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(s.port);
    std::memcpy(ss, &v4, sizeof v4);
    *len = sizeof v4;
    return true;
  }
  sockaddr_in6 v6{};
  if (inet_pton(AF_INET6, s.address.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(s.port);
    std::memcpy(ss, &v6, sizeof v6);
    *len = sizeof v6;
    return true;
  }
  return false;
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(left.count());
}

// Waits for `events` on fd until the deadline. 1 ready, 0 timeout, -1 error (errno set).
int wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int ms = remaining_ms(deadline);
    if (ms == 0) return 0;
    const int r = ::poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r;
    return 1;
  }
}

// True when `answer` is a response to our question (same id, name, type, class).
bool matches_question(const ldns_pkt* answer, uint16_t id, const ldns_rdf* qname, ldns_rr_type type) {
  if (ldns_pkt_id(answer) != id || !ldns_pkt_qr(answer)) return false;
  const ldns_rr_list* q = ldns_pkt_question(answer);
  if (q == nullptr || ldns_rr_list_rr_count(q) != 1) return false;
  const ldns_rr* rr = ldns_rr_list_rr(q, 0);
  return ldns_rr_get_type(rr) == type && ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN &&
         ldns_dname_compare(ldns_rr_owner(rr), qname) == 0;
}

Outcome over_tcp(const sockaddr_storage& sa, socklen_t salen, const std::vector<uint8_t>& wire,
                 uint16_t id, const ldns_rdf* qname, ldns_rr_type type, Clock::time_point deadline) {
  Fd fd(::socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return {Status::error, nullptr, errno_text("socket")};
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), salen) < 0 && errno != EINPROGRESS)
    return {Status::error, nullptr, errno_text("tcp connect")};
  int w = wait_fd(fd.get(), POLLOUT, deadline);
  if (w == 0) return {Status::timeout, nullptr, "tcp connect timed out"};
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &sl);
  if (w < 0 || soerr != 0) {
    errno = soerr != 0 ? soerr : errno;
    return {Status::error, nullptr, errno_text("tcp connect")};
  }
  std::vector<uint8_t> framed;
  framed.reserve(wire.size() + 2);
  framed.push_back(static_cast<uint8_t>(wire.size() >> 8));
  framed.push_back(static_cast<uint8_t>(wire.size() & 0xff));
  framed.insert(framed.end(), wire.begin(), wire.end());
  std::size_t sent = 0;
  while (sent < framed.size()) {
    const ssize_t n = ::send(fd.get(), framed.data() + sent, framed.size() - sent, MSG_NOSIGNAL);
    if (n > 0) { sent += static_cast<std::size_t>(n); continue; }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return {Status::error, nullptr, errno_text("tcp send")};
    if (wait_fd(fd.get(), POLLOUT, deadline) == 0) return {Status::timeout, nullptr, "tcp send timed out"};
  }
  std::vector<uint8_t> buf;
  std::size_t want = 2;
  while (buf.size() < want) {
    uint8_t chunk[4096];
    const ssize_t n = ::recv(fd.get(), chunk, std::min(sizeof chunk, want - buf.size()), 0);
    if (n > 0) {
      buf.insert(buf.end(), chunk, chunk + n);
      if (want == 2 && buf.size() == 2) {
        want = 2 + ((std::size_t{buf[0]} << 8) | buf[1]);
        if (want == 2) return {Status::error, nullptr, "empty tcp answer"};
      }
      continue;
    }
    if (n == 0) return {Status::error, nullptr, "tcp connection closed by the server"};
    if (errno != EAGAIN && errno != EINTR) return {Status::error, nullptr, errno_text("tcp recv")};
    const int r = wait_fd(fd.get(), POLLIN, deadline);
    if (r == 0) return {Status::timeout, nullptr, "tcp answer timed out"};
    if (r < 0) return {Status::error, nullptr, errno_text("poll")};
  }
  ldns_pkt* raw = nullptr;
  if (ldns_wire2pkt(&raw, buf.data() + 2, buf.size() - 2) != LDNS_STATUS_OK)
    return {Status::error, nullptr, "malformed tcp answer"};
  PktPtr pkt(raw);
  if (!matches_question(pkt.get(), id, qname, type)) return {Status::error, nullptr, "tcp answer does not match the question"};
  return {Status::ok, std::move(pkt), {}};
}

// One attempt against one server: UDP, then TCP when the answer is truncated. `ok` here
// means "a matching answer arrived" (its rcode is interpreted by the caller).
Outcome query_server(const Server& server, const ldns_rdf* qname, ldns_rr_type type,
                     std::chrono::milliseconds timeout, bool want_ad) {
  sockaddr_storage sa{};
  socklen_t salen = 0;
  if (!make_sockaddr(server, &sa, &salen)) return {Status::error, nullptr, "bad server address " + server.address};

  thread_local std::mt19937 rng{std::random_device{}()};
  const auto id = static_cast<uint16_t>(std::uniform_int_distribution<unsigned>(0, 0xffff)(rng));

  RdfPtr name(ldns_rdf_clone(qname));
  PktPtr query(ldns_pkt_query_new(name.release(), type, LDNS_RR_CLASS_IN, LDNS_RD));
  if (!query) return {Status::error, nullptr, "cannot build query"};
  ldns_pkt_set_id(query.get(), id);
  ldns_pkt_set_edns_udp_size(query.get(), 1232);
  if (want_ad) ldns_pkt_set_ad(query.get(), true);
  uint8_t* wire_raw = nullptr;
  std::size_t wire_len = 0;
  if (ldns_pkt2wire(&wire_raw, query.get(), &wire_len) != LDNS_STATUS_OK)
    return {Status::error, nullptr, "cannot encode query"};
  std::unique_ptr<uint8_t, CharFree> wire_owner(wire_raw);
  const std::vector<uint8_t> wire(wire_raw, wire_raw + wire_len);

  const auto deadline = Clock::now() + timeout;
  Fd fd(::socket(sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return {Status::error, nullptr, errno_text("socket")};
  // A connected UDP socket only accepts datagrams from the server, and reports ICMP
  // port-unreachable as ECONNREFUSED instead of a silent timeout.
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), salen) < 0)
    return {Status::error, nullptr, errno_text("connect")};
  if (::send(fd.get(), wire.data(), wire.size(), 0) < 0) return {Status::error, nullptr, errno_text("send")};

  std::vector<uint8_t> buf(65535);
  for (;;) {
    const int r = wait_fd(fd.get(), POLLIN, deadline);
    if (r == 0) return {Status::timeout, nullptr, "no answer from " + server.address + " within " +
                                                      std::to_string(timeout.count()) + " ms"};
    if (r < 0) return {Status::error, nullptr, errno_text("poll")};
    const ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return {Status::error, nullptr, errno_text(("recv from " + server.address).c_str())};
    }
    ldns_pkt* raw = nullptr;
    if (ldns_wire2pkt(&raw, buf.data(), static_cast<std::size_t>(n)) != LDNS_STATUS_OK) continue;
    PktPtr pkt(raw);
    // Anything that does not answer our question is ignored (stale or spoofed datagram).
    if (!matches_question(pkt.get(), id, qname, type)) continue;
    if (ldns_pkt_tc(pkt.get())) return over_tcp(sa, salen, wire, id, qname, type, deadline);
    return {Status::ok, std::move(pkt), {}};
  }
}

const char* rcode_text(ldns_pkt_rcode rc) {
  switch (rc) {
    case LDNS_RCODE_FORMERR: return "FORMERR";
    case LDNS_RCODE_SERVFAIL: return "SERVFAIL";
    case LDNS_RCODE_NOTIMPL: return "NOTIMPL";
    case LDNS_RCODE_REFUSED: return "REFUSED";
    default: return "error rcode";
  }
}

// The records of one type at the end of the CNAME chain that starts at qname.
struct Extracted {
  Status status = Status::error;
  std::vector<const ldns_rr*> rrs;
  std::vector<std::string> chain;
  RdfPtr end;   // owner name at the end of the chain
  std::string error;
};

constexpr int kMaxChain = 12;

Extracted extract(const ldns_pkt* pkt, const ldns_rdf* qname, ldns_rr_type type) {
  Extracted x;
  const ldns_rr_list* ans = ldns_pkt_answer(pkt);
  const std::size_t count = ans ? ldns_rr_list_rr_count(ans) : 0;
  const ldns_rdf* current = qname;
  for (int hop = 0;; ++hop) {
    const ldns_rr* next = nullptr;
    for (std::size_t i = 0; i < count; ++i) {
      const ldns_rr* rr = ldns_rr_list_rr(ans, i);
      if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && ldns_rr_rd_count(rr) == 1 &&
          ldns_dname_compare(ldns_rr_owner(rr), current) == 0) {
        next = rr;
        break;
      }
    }
    if (next == nullptr || type == LDNS_RR_TYPE_CNAME) break;
    if (hop >= kMaxChain) {
      x.error = "CNAME chain too long or looping";
      return x;
    }
    current = ldns_rr_rdf(next, 0);
    x.chain.push_back(dname_text(current));
  }
  for (std::size_t i = 0; i < count; ++i) {
    const ldns_rr* rr = ldns_rr_list_rr(ans, i);
    if (ldns_rr_get_type(rr) == type && ldns_dname_compare(ldns_rr_owner(rr), current) == 0)
      x.rrs.push_back(rr);
  }
  x.end.reset(ldns_rdf_clone(current));
  const auto rc = ldns_pkt_get_rcode(pkt);
  if (rc == LDNS_RCODE_NXDOMAIN) x.status = Status::nxdomain;
  else if (rc != LDNS_RCODE_NOERROR) {
    x.status = Status::servfail;
    x.error = std::string("resolver answered ") + rcode_text(rc);
  } else if (x.rrs.empty() && x.chain.empty() && !ldns_pkt_ra(pkt)) {
    // NOERROR, no answer and no recursion-available bit: a referral or the "I do not recurse"
    // answer of a non-recursive or mis-pointed server, not a statement that the name has no
    // such record. Taken as "no policy" it would silently switch MTA-STS off: a failure.
    x.status = Status::servfail;
    x.error = "the server does not recurse (NOERROR without records and without the RA bit)";
  } else {
    x.status = x.rrs.empty() ? Status::nodata : Status::ok;
  }
  return x;
}

class LdnsResolver final : public Resolver {
 public:
  explicit LdnsResolver(ResolverOptions o) : opts_(std::move(o)) {
    if (opts_.servers.empty()) opts_.servers = servers_from_resolv_conf();
  }

  TxtAnswer txt(const std::string& name) override {
    TxtAnswer out;
    resolve(name, LDNS_RR_TYPE_TXT, &out.status, &out.cname_chain, &out.error,
            [&](const ldns_rr* rr) {
              std::vector<std::string> strings;
              for (std::size_t i = 0; i < ldns_rr_rd_count(rr); ++i) {
                const ldns_rdf* rd = ldns_rr_rdf(rr, i);
                const std::size_t size = ldns_rdf_size(rd);
                const uint8_t* data = ldns_rdf_data(rd);
                // A character-string: one length octet, then the bytes.
                if (size == 0) continue;
                const std::size_t len = std::min<std::size_t>(data[0], size - 1);
                strings.emplace_back(reinterpret_cast<const char*>(data + 1), len);
              }
              out.records.push_back(std::move(strings));
            });
    return out;
  }

  MxAnswer mx(const std::string& name) override {
    MxAnswer out;
    Meta meta;
    std::vector<std::string> chain;
    resolve(name, LDNS_RR_TYPE_MX, &out.status, &chain, &out.error,
            [&](const ldns_rr* rr) {
              if (ldns_rr_rd_count(rr) != 2) return;
              const ldns_rdf* pref = ldns_rr_rdf(rr, 0);
              const ldns_rdf* host = ldns_rr_rdf(rr, 1);
              if (ldns_rdf_get_type(pref) != LDNS_RDF_TYPE_INT16 || ldns_rdf_get_type(host) != LDNS_RDF_TYPE_DNAME) return;
              MxRecord r;
              r.preference = ldns_rdf2native_int16(pref);
              r.exchange = dname_text(host);
              if (r.exchange == ".") r.exchange.clear();
              for (char& c : r.exchange)
                if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
              out.records.push_back(std::move(r));
            },
            true, &meta);
    out.authenticated = meta.ad;
    out.ttl = meta.ttl;
    return out;
  }

  TlsaAnswer tlsa(const std::string& name) override {
    TlsaAnswer out;
    Meta meta;
    std::vector<std::string> chain;
    resolve(name, LDNS_RR_TYPE_TLSA, &out.status, &chain, &out.error,
            [&](const ldns_rr* rr) {
              // usage, selector, matching type, data (RFC 6698 section 2.1); ldns gives the
              // first three as 8-bit fields and the data as hex.
              if (ldns_rr_rd_count(rr) != 4) return;
              TlsaRecord t;
              std::uint8_t* fields[] = {&t.usage, &t.selector, &t.mtype};
              for (std::size_t i = 0; i < 3; ++i) {
                const ldns_rdf* rd = ldns_rr_rdf(rr, i);
                if (ldns_rdf_size(rd) != 1) return;
                *fields[i] = ldns_rdf_data(rd)[0];
              }
              t.data_length = ldns_rdf_size(ldns_rr_rdf(rr, 3));
              out.records.push_back(t);
            },
            true, &meta);
    out.authenticated = meta.ad;
    out.ttl = meta.ttl;
    return out;
  }

  AddressAnswer address(const std::string& name, AddressFamily family) override {
    AddressAnswer out;
    Meta meta;
    const bool v4 = family == AddressFamily::v4;
    resolve(name, v4 ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_AAAA, &out.status, &out.cname_chain, &out.error,
            [&](const ldns_rr* rr) {
              if (ldns_rr_rd_count(rr) != 1) return;
              const ldns_rdf* rd = ldns_rr_rdf(rr, 0);
              char text[INET6_ADDRSTRLEN] = {};
              if (v4 && ldns_rdf_size(rd) == 4)
                inet_ntop(AF_INET, ldns_rdf_data(rd), text, sizeof text);
              else if (!v4 && ldns_rdf_size(rd) == 16)
                inet_ntop(AF_INET6, ldns_rdf_data(rd), text, sizeof text);
              if (text[0] != '\0') out.addresses.emplace_back(text);
            },
            true, &meta);
    out.authenticated = meta.ad;
    return out;
  }

 private:
  // Runs the query with retries over the servers, follows CNAMEs (re-querying the end of a
  // chain when the server did not chase it), and hands every record found to `take`.
  // What mta-sts-tlsmap needs besides the records: the AD bit of the final answer and the
  // smallest TTL of the records taken.
  struct Meta {
    bool ad = false;
    std::uint32_t ttl = 0;
  };

  template <class Take>
  void resolve(const std::string& name, ldns_rr_type type, Status* status,
               std::vector<std::string>* chain, std::string* error, Take take, bool want_ad = false,
               Meta* meta = nullptr) {
    RdfPtr qname(ldns_dname_new_frm_str(name.c_str()));
    if (!qname) {
      *status = Status::error;
      *error = "not a valid DNS name";
      return;
    }
    // AD of every answer of the lookup: a chain re-queried in parts is validated only if
    // each part was.
    bool all_ad = true;
    for (int round = 0; round < kMaxChain; ++round) {
      Outcome o = ask(qname.get(), type, want_ad);
      if (o.status != Status::ok) {
        *status = o.status;
        *error = o.error;
        return;
      }
      Extracted x = extract(o.pkt.get(), qname.get(), type);
      chain->insert(chain->end(), x.chain.begin(), x.chain.end());
      if (!x.error.empty() && x.status == Status::error) {
        *status = Status::error;
        *error = x.error;
        return;
      }
      all_ad = all_ad && ldns_pkt_ad(o.pkt.get());
      // The chain ended at a name whose records the server did not include: ask for it.
      if (x.status == Status::nodata && !x.chain.empty()) {
        qname = std::move(x.end);
        continue;
      }
      *status = x.status;
      *error = x.error;
      for (const ldns_rr* rr : x.rrs) take(rr);
      if (meta != nullptr) {
        meta->ad = all_ad;
        bool first = true;
        for (const ldns_rr* rr : x.rrs) {
          const std::uint32_t t = ldns_rr_ttl(rr);
          meta->ttl = first ? t : std::min(meta->ttl, t);
          first = false;
        }
      }
      return;
    }
    *status = Status::error;
    *error = "CNAME chain too long or looping";
  }

  // Every server, then again `retries` times. A SERVFAIL from one server is worth asking
  // another; what is reported at the end is the most telling failure seen.
  Outcome ask(const ldns_rdf* qname, ldns_rr_type type, bool want_ad) {
    Outcome worst{Status::error, nullptr, "no resolver configured"};
    bool have_servfail = false;
    for (unsigned round = 0; round <= opts_.retries; ++round) {
      for (const Server& s : opts_.servers) {
        Outcome o = query_server(s, qname, type, opts_.timeout, want_ad);
        if (o.status != Status::ok) {
          if (!have_servfail) worst = std::move(o);
          continue;
        }
        const auto rc = ldns_pkt_get_rcode(o.pkt.get());
        if (rc == LDNS_RCODE_NOERROR || rc == LDNS_RCODE_NXDOMAIN) return o;
        have_servfail = true;
        worst = {Status::servfail, nullptr,
                 std::string("resolver ") + s.address + " answered " + rcode_text(rc)};
      }
    }
    return worst;
  }

  ResolverOptions opts_;
};

}  // namespace

std::unique_ptr<Resolver> make_resolver(ResolverOptions opts) {
  return std::make_unique<LdnsResolver>(std::move(opts));
}

}  // namespace mtasts::dns
