// The JSON checker used by the ctl tests must itself reject what is not JSON, or the shape
// tests would prove nothing.
#include "tests/unit/ctl/mini_json.hpp"

#include <gtest/gtest.h>

namespace mtasts::test {
namespace {

TEST(MiniJson, AcceptsWhatCtlWrites) {
  JsonValue v = parse_json(R"({"a":true,"b":[1,-2,"x\"\u00e9"],"c":null,"d":{}} )" "\n");
  ASSERT_TRUE(v.is_object());
  EXPECT_TRUE(v["a"].boolean);
  EXPECT_EQ(v["b"].array[1].number, -2);
  EXPECT_EQ(v["b"].array[2].string, "x\"\xc3\xa9");
  EXPECT_TRUE(v["c"].is_null());
  EXPECT_TRUE(v["d"].is_object());
}

TEST(MiniJson, RejectsMalformedInput) {
  for (const char* bad : {"", "{", "{\"a\":}", "{\"a\":1,}", "[1 2]", "{} {}", "{\"a\":1,\"a\":2}",
                          "\"\x01\"", "01", "{a:1}", "tru", "[\"\\x\"]"}) {
    EXPECT_EQ(parse_json(bad).type, JsonValue::Type::invalid) << bad;
  }
}

}  // namespace
}  // namespace mtasts::test
