// The production resolver (common/dns/dns.cpp) against a scripted DNS server on loopback UDP:
// how answers that a mis-pointed or hostile server can send are interpreted. The server is
// a thread with a socket; no sleeping, each test waits only for its own query.
#include "common/dns/dns.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace mtasts {
namespace {

using namespace std::chrono_literals;

// Answers every query with the header flags and rcode it is given, the question echoed and
// no records (what a referral or a non-recursive server's NOERROR looks like).
class ScriptedDns {
 public:
  ScriptedDns(bool ra, std::uint8_t rcode) : ra_(ra), rcode_(rcode) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedDns() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  unsigned short port() const { return port_; }
  int queries() const { return queries_.load(); }

 private:
  void serve() {
    std::vector<std::uint8_t> buf(4096);
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      sockaddr_storage from{};
      socklen_t flen = sizeof from;
      const ssize_t n = ::recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &flen);
      if (n < 12) continue;
      ++queries_;
      std::size_t end = 12;  // past the question name, type and class
      while (end < static_cast<std::size_t>(n) && buf[end] != 0) end += buf[end] + 1u;
      end += 5;
      if (end > static_cast<std::size_t>(n)) continue;
      std::vector<std::uint8_t> out(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(end));
      out[2] = static_cast<std::uint8_t>(0x80 | (buf[2] & 0x01));  // QR, RD copied
      out[3] = static_cast<std::uint8_t>((ra_ ? 0x80 : 0x00) | rcode_);
      for (int i = 6; i < 12; ++i) out[static_cast<std::size_t>(i)] = 0;  // no records at all
      ::sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
    }
  }
  bool ra_;
  std::uint8_t rcode_;
  int fd_ = -1;
  unsigned short port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::thread thread_;
};

std::unique_ptr<dns::Resolver> resolver_for(const ScriptedDns& s) {
  dns::ResolverOptions o;
  o.servers = {dns::Server{"127.0.0.1", s.port()}};
  o.timeout = 1000ms;
  o.retries = 0;
  return dns::make_resolver(o);
}

// A referral (or a server that does not recurse) must not read as "this domain publishes no
// policy": that would switch MTA-STS off for every domain while the resolver is mis-pointed.
TEST(DnsAnswers, NoerrorWithoutRecursionAvailableIsAFailure) {
  ScriptedDns server(/*ra=*/false, /*rcode=*/0);
  auto r = resolver_for(server);
  const dns::TxtAnswer a = r->txt("_mta-sts.example.com");
  EXPECT_TRUE(dns::is_failure(a.status)) << dns::to_string(a.status);
  EXPECT_NE(a.error.find("does not recurse"), std::string::npos) << a.error;
  const dns::AddressAnswer b = r->address("mta-sts.example.com", dns::AddressFamily::v4);
  EXPECT_TRUE(dns::is_failure(b.status)) << dns::to_string(b.status);
}

TEST(DnsAnswers, NoerrorWithRecursionAvailableAndNoRecordIsNodata) {
  ScriptedDns server(/*ra=*/true, /*rcode=*/0);
  auto r = resolver_for(server);
  EXPECT_EQ(r->txt("_mta-sts.example.com").status, dns::Status::nodata);
}

TEST(DnsAnswers, NxdomainIsNxdomain) {
  ScriptedDns server(/*ra=*/true, /*rcode=*/3);
  auto r = resolver_for(server);
  EXPECT_EQ(r->txt("_mta-sts.example.com").status, dns::Status::nxdomain);
}

}  // namespace
}  // namespace mtasts
