// Test support: OpenDkim and dkim_verify; see opendkim.hpp.
#include "tests/support/opendkim.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace mtasts::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

bool listening(unsigned port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// The quoted strings of opendkim-genkey's zone-file line, joined, then cut into TXT strings.
TxtRecord txt_from_genkey(const std::string& zone_line) {
  std::string value;
  for (std::size_t pos = zone_line.find('"'); pos != std::string::npos;) {
    const auto end = zone_line.find('"', pos + 1);
    if (end == std::string::npos) break;
    value += zone_line.substr(pos + 1, end - pos - 1);
    pos = zone_line.find('"', end + 1);
  }
  if (value.find("p=") == std::string::npos) throw std::runtime_error("opendkim-genkey: no key in " + zone_line);
  std::vector<std::string> strings;
  for (std::size_t i = 0; i < value.size(); i += 255) strings.push_back(value.substr(i, 255));
  return TxtRecord(strings);
}

}  // namespace

OpenDkim::OpenDkim(const fs::path& dir, std::string domain, std::string selector)
    : domain_(std::move(domain)), selector_(std::move(selector)), dir_(dir) {
  fs::create_directories(dir_ / "keys");
  const RunResult g = run({"opendkim-genkey", "-b", "2048", "-d", domain_, "-s", selector_, "-D",
                           (dir_ / "keys").string()},
                          60s);
  if (g.exit_code != 0) throw std::runtime_error("opendkim-genkey failed: " + g.err + g.out);
  txt_ = txt_from_genkey(read_file(dir_ / "keys" / (selector_ + ".txt")));
  port_ = free_tcp_port();
  write_file(dir_ / "opendkim.conf",
             "Syslog yes\nSyslogSuccess yes\nLogWhy yes\n"
             "Domain " + domain_ + "\nSelector " + selector_ + "\nKeyFile " +
                 (dir_ / "keys" / (selector_ + ".private")).string() + "\n"
             "Socket inet:" + std::to_string(port_) + "@127.0.0.1\n"
             "Mode sv\nCanonicalization relaxed/simple\nSignatureAlgorithm rsa-sha256\n"
             "OversignHeaders From\nInternalHosts 127.0.0.1\nRequireSafeKeys no\n"
             "PidFile " + (dir_ / "opendkim.pid").string() + "\nUMask 002\n");
  syslog_ = std::make_unique<SyslogSink>(dir_ / "syslog", "mta");
  auto argv = syslog_->exec_prefix({"setpriv", "--pdeathsig", "TERM"});
  argv.insert(argv.end(), {"opendkim", "-f", "-x", (dir_ / "opendkim.conf").string()});
  proc_ = std::make_unique<Process>(argv, dir_ / "opendkim.out");
  if (!wait_until([&] { return !proc_->running() || listening(port_); }, 15s) || !proc_->running())
    throw std::runtime_error("opendkim did not start:\n" + read_file(dir_ / "opendkim.out") + log());
}

OpenDkim::~OpenDkim() {
  if (proc_) proc_->stop(5s);
}

RunResult dkim_verify(const std::string& message, const std::vector<std::string>& exec_prefix) {
  std::string m = message;
  if (m.rfind("X-Test-MX:", 0) == 0) m.erase(0, m.find('\n') + 1);
  std::vector<std::string> argv = exec_prefix;
  argv.push_back("dkimverify");
  return run(argv, 60s, m);
}

}  // namespace mtasts::test
