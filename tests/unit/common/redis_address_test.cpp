// The forms of [redis] address: unix socket paths, host:port, bracketed IPv6, bare host.
#include "common/fleet/redis.hpp"

#include <gtest/gtest.h>

namespace mtasts {
namespace {

struct AddressCase {
  const char* text;
  bool ok;
  const char* path;
  const char* host;
  int port;
};

TEST(RedisAddress, Table) {
  const AddressCase cases[] = {
      {"unix:/run/redis/redis.sock", true, "/run/redis/redis.sock", "", 6379},
      {"/tmp/r.sock", true, "/tmp/r.sock", "", 6379},
      {"127.0.0.1:6379", true, "", "127.0.0.1", 6379},
      {"127.0.0.1:7000", true, "", "127.0.0.1", 7000},
      {"redis.example.net", true, "", "redis.example.net", 6379},
      {"redis.example.net:6380", true, "", "redis.example.net", 6380},
      {"[::1]:6380", true, "", "::1", 6380},
      {"[::1]", true, "", "::1", 6379},
      {"", false, "", "", 0},
      {"unix:", false, "", "", 0},
      {"unix:relative.sock", false, "", "", 0},
      {"::1", false, "", "", 0},
      {"host:", false, "", "", 0},
      {"host:0", false, "", "", 0},
      {"host:65536", false, "", "", 0},
      {"host:12x", false, "", "", 0},
      {":6379", false, "", "", 0},
      {"[::1", false, "", "", 0},
      {"[::1]6379", false, "", "", 0},
      {"[]:6379", false, "", "", 0},
      {"bad host:1", false, "", "", 0},
  };
  for (const auto& c : cases) {
    std::string err;
    auto a = parse_redis_address(c.text, &err);
    EXPECT_EQ(a.has_value(), c.ok) << c.text << " " << err;
    if (!a) {
      EXPECT_FALSE(err.empty()) << c.text;
      continue;
    }
    EXPECT_EQ(a->path, c.path) << c.text;
    EXPECT_EQ(a->host, c.host) << c.text;
    EXPECT_EQ(a->port, c.port) << c.text;
    EXPECT_EQ(a->is_unix(), *c.path != '\0') << c.text;
  }
  std::string err;
  EXPECT_FALSE(parse_redis_address("/" + std::string(200, 'a'), &err)) << "longer than sun_path";
}

TEST(RedisAddress, BadAddressIsAnErrorNotACrash) {
  RedisOptions o;
  o.address = "[::1";
  try {
    Connection::open(o);
    FAIL() << "opened a bad address";
  } catch (const RedisError& e) {
    EXPECT_EQ(e.kind(), RedisError::Kind::io);
    EXPECT_NE(std::string(e.what()).find("bad address"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mtasts
