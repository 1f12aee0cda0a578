// libFuzzer target for DNS answer handling: the production resolver (common/dns/dns.cpp, with
// ldns) queries a scripted server on loopback UDP that answers with the fuzz input: the
// query's id, then the input's flags and counts, the query's own question, and the input's
// records. Whatever comes back, the resolver never crashes, a failure says why, and an
// address it returns is an address.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/dns/dns.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

std::mutex g_mu;
std::vector<std::uint8_t> g_answer;  // the current input: 10 header bytes, then records

class Server {
 public:
  Server() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    std::thread([this] { serve(); }).detach();  // lives as long as the fuzzing process
  }
  unsigned short port() const { return port_; }

 private:
  void serve() {
    std::vector<std::uint8_t> q(4096);
    for (;;) {
      sockaddr_storage from{};
      socklen_t flen = sizeof from;
      const ssize_t n = ::recvfrom(fd_, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&from), &flen);
      if (n < 12) continue;
      std::size_t qend = 12;
      while (qend < static_cast<std::size_t>(n) && q[qend] != 0) qend += q[qend] + 1u;
      qend += 5;
      if (qend > static_cast<std::size_t>(n)) continue;
      std::vector<std::uint8_t> out(q.begin(), q.begin() + 2);  // the query's id
      {
        std::lock_guard lk(g_mu);
        std::vector<std::uint8_t> a = g_answer;
        a.resize(std::max<std::size_t>(a.size(), 10), 0);
        out.insert(out.end(), a.begin(), a.begin() + 10);       // flags and counts
        out.insert(out.end(), q.begin() + 12, q.begin() + static_cast<std::ptrdiff_t>(qend));
        out.insert(out.end(), a.begin() + 10, a.end());          // records
      }
      ::sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
    }
  }
  int fd_ = -1;
  unsigned short port_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Server server;
  static std::unique_ptr<mtasts::dns::Resolver> resolver = [] {
    mtasts::dns::ResolverOptions o;
    o.servers = {mtasts::dns::Server{"127.0.0.1", server.port()}};
    o.timeout = std::chrono::milliseconds(20);  // answers come at once; garbage is dropped
    o.retries = 0;
    return mtasts::dns::make_resolver(o);
  }();
  if (size == 0) return 0;
  {
    std::lock_guard lk(g_mu);
    g_answer.assign(data + 1, data + size);
  }
  switch (data[0] % 5) {
    case 0: {
      const auto a = resolver->txt("_mta-sts.example.com");
      FUZZ_CHECK(!mtasts::dns::is_failure(a.status) || !a.error.empty());
      break;
    }
    case 1:
    case 2: {
      const auto a = resolver->address("mta-sts.example.com",
                                       data[0] % 5 == 1 ? mtasts::dns::AddressFamily::v4 : mtasts::dns::AddressFamily::v6);
      // A record with malformed rdata is skipped (ok with no address: discovery then says the
      // host has no address); what is returned is a real address.
      for (const auto& ip : a.addresses) {
        unsigned char buf[16];
        FUZZ_CHECK(inet_pton(AF_INET, ip.c_str(), buf) == 1 || inet_pton(AF_INET6, ip.c_str(), buf) == 1);
      }
      break;
    }
    case 3: {
      const auto a = resolver->mx("example.com");
      FUZZ_CHECK(!mtasts::dns::is_failure(a.status) || !a.error.empty());
      break;
    }
    default: {
      const auto a = resolver->tlsa("_25._tcp.mx.example.com");
      FUZZ_CHECK(!mtasts::dns::is_failure(a.status) || !a.error.empty());
      break;
    }
  }
  return 0;
}
