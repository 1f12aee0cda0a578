// The milter socket option: every accepted form and the errors a typo produces.
#include "milter/socket_spec.hpp"

#include <gtest/gtest.h>

namespace mtasts::milter {
namespace {

TEST(SocketSpec, AcceptedForms) {
  struct Row {
    const char* in;
    const char* libmilter;
  } rows[] = {
      {"unix:/run/mta-sts/milter.sock", "unix:/run/mta-sts/milter.sock"},
      {"local:/tmp/m.sock", "unix:/tmp/m.sock"},
      {"/tmp/m.sock", "unix:/tmp/m.sock"},
      {"inet:8891", "inet:8891"},
      {"inet:8891@127.0.0.1", "inet:8891@127.0.0.1"},
      {"inet:8891@localhost", "inet:8891@localhost"},
      {"inet6:8891@::1", "inet6:8891@::1"},
  };
  for (const auto& r : rows) {
    const SocketSpec s = parse_socket_spec(r.in);
    EXPECT_TRUE(s.ok()) << r.in << ": " << s.error;
    EXPECT_EQ(s.libmilter(), r.libmilter);
  }
}

TEST(SocketSpec, Errors) {
  for (const char* bad : {"unix:relative.sock", "unix:", "inet:", "inet:0", "inet:65536", "inet:12x@h", "inet:25@",
                          "tcp:25", "inet6:abc"}) {
    EXPECT_FALSE(parse_socket_spec(bad).ok()) << bad;
  }
  EXPECT_FALSE(parse_socket_spec("unix:/" + std::string(120, 'a')).ok());
}

}  // namespace
}  // namespace mtasts::milter
