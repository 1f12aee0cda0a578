// Claim tokens (common/util/random.hpp): 128 bits from the kernel, never repeated, not even by a
// forked child that would share a user-space generator's state.
#include "common/util/random.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

namespace mtasts {
namespace {

TEST(RandomHex, ThirtyTwoHexDigitsForATokenAndNoRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    const std::string t = random_hex(16);
    ASSERT_EQ(t.size(), 32u);
    ASSERT_EQ(t.find_first_not_of("0123456789abcdef"), std::string::npos) << t;
    ASSERT_TRUE(seen.insert(t).second) << "repeated token " << t;
  }
  EXPECT_EQ(random_hex(100).size(), 200u);
  EXPECT_EQ(random_hex(0), "");
}

TEST(RandomHex, ForkedChildDrawsItsOwnTokens) {
  (void)random_hex(16);  // any state a generator keeps is initialised before the fork
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string t = random_hex(16);
    const auto n = ::write(fds[1], t.data(), t.size());
    ::_exit(n == static_cast<ssize_t>(t.size()) ? 0 : 1);
  }
  const std::string mine = random_hex(16);
  char buf[32];
  std::size_t got = 0;
  while (got < sizeof buf) {
    const auto n = ::read(fds[0], buf + got, sizeof buf - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(fds[0]);
  ::close(fds[1]);
  ASSERT_EQ(got, sizeof buf);
  EXPECT_NE(std::string(buf, sizeof buf), mine);
}

}  // namespace
}  // namespace mtasts
