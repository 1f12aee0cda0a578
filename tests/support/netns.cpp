// Test support: NetNamespace; see netns.hpp.
#include "tests/support/netns.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "tests/support/process.hpp"

namespace mtasts::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* kPrefix = "mtasts-";

void run_checked(const std::vector<std::string>& argv) {
  const RunResult r = run(argv, 30s);
  if (r.exit_code != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    throw std::runtime_error("NetNamespace: " + cmd + "failed: " + r.err + r.out);
  }
}

void remove_namespace(const std::string& name) {
  run({"ip", "netns", "del", name}, 30s);
  std::error_code ec;
  fs::remove_all(fs::path("/etc/netns") / name, ec);
}

// Namespaces left by a test process that died without its destructors (a crash, a ctest
// timeout): their names carry the pid of their maker.
void remove_orphans() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/run/netns", ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(kPrefix, 0) != 0) continue;
    const std::string rest = n.substr(std::strlen(kPrefix));
    const pid_t pid = static_cast<pid_t>(std::atol(rest.substr(0, rest.find('-')).c_str()));
    if (pid > 1 && ::kill(pid, 0) != 0 && errno == ESRCH) remove_namespace(n);
  }
}

}  // namespace

bool NetNamespace::available(std::string& why) {
  // Only root is a reason to skip: without iproute2 the constructor fails, as it should where
  // scripts/install-deps.sh has run.
  if (::geteuid() != 0) {
    why = "network namespaces need root";
    return false;
  }
  return true;
}

NetNamespace::NetNamespace(const std::string& nameserver) {
  static std::atomic<unsigned> counter{0};
  remove_orphans();
  name_ = kPrefix + std::to_string(::getpid()) + "-" + std::to_string(++counter);
  const fs::path etc = fs::path("/etc/netns") / name_;
  fs::create_directories(etc);
  write_file(etc / "resolv.conf", "nameserver " + nameserver + "\noptions timeout:2 attempts:2\n");
  try {
    run_checked({"ip", "netns", "add", name_});
    run_checked({"ip", "-n", name_, "link", "set", "lo", "up"});
    original_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = ::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    if (original_ < 0 || target < 0) throw std::runtime_error("NetNamespace: cannot open namespace files");
    const int rc = ::setns(target, CLONE_NEWNET);
    const int err = errno;
    ::close(target);
    if (rc != 0) throw std::runtime_error(std::string("NetNamespace: setns failed: ") + std::strerror(err));
  } catch (...) {
    if (original_ >= 0) ::close(original_);
    remove_namespace(name_);
    throw;
  }
}

NetNamespace::~NetNamespace() {
  if (original_ >= 0) {
    (void)::setns(original_, CLONE_NEWNET);
    ::close(original_);
  }
  remove_namespace(name_);
}

}  // namespace mtasts::test
