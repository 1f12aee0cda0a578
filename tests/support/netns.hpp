// Test support: a private network namespace for delivery tests. MTAs find MX hosts through
// the system resolver and connect to port 25; inside a namespace of its own a test can run
// dnsmasq on :53 and MX hosts on 127.x.y.z:25 without touching the machine's network, and
// the MTAs it starts see the test world's DNS as theirs.
#pragma once

#include <string>
#include <vector>

namespace mtasts::test {

class NetNamespace {
 public:
  // Creates `ip netns add mtasts-<pid>-<n>` with lo up and /etc/netns/<name>/resolv.conf
  // pointing at `nameserver`, and moves the calling thread into it: sockets the test opens
  // and every process it starts from this thread from now on live there. Throws
  // std::runtime_error on failure. Needs root (check with available()).
  explicit NetNamespace(const std::string& nameserver);
  // Moves the thread back to the namespace it came from, deletes the namespace and its
  // /etc/netns directory.
  ~NetNamespace();
  NetNamespace(const NetNamespace&) = delete;
  NetNamespace& operator=(const NetNamespace&) = delete;

  const std::string& name() const noexcept { return name_; }
  // {"ip", "netns", "exec", name}: a command run behind it also gets the namespace's
  // /etc/resolv.conf (ip bind-mounts it in a mount namespace of the command's own). Needed
  // for the MTAs; the test's own helpers are in the namespace already.
  std::vector<std::string> exec_prefix() const { return {"ip", "netns", "exec", name_}; }

  // Whether namespaces can be made here (root); when not, `why` says why (for GTEST_SKIP).
  static bool available(std::string& why);

 private:
  std::string name_;
  int original_ = -1;  // the thread's namespace before, to return to
};

}  // namespace mtasts::test
