// The strict JSON reader: a table of valid and invalid texts, and its bounds.
#include <gtest/gtest.h>

#include <string>

#include "common/util/json_parse.hpp"

namespace mtasts::json {
namespace {

TEST(JsonParse, ReadsValues) {
  std::string err;
  const auto v = parse(R"( {"a":[1,-2,3.5e1,true,false,null],"s":"x\u00e9\ud83d\ude00\n\"","a":"last"} )", &err);
  ASSERT_TRUE(v) << err;
  ASSERT_TRUE(v->is_object());
  EXPECT_EQ(v->find("a")->text, "last");  // duplicate key: the last one wins
  EXPECT_EQ(v->find("s")->text, "x\xc3\xa9\xf0\x9f\x98\x80\n\"");
  EXPECT_EQ(v->find("missing"), nullptr);
  const auto n = parse("[1,-2,3.5e1,9223372036854775808]", &err);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->array[0].integer, 1);
  EXPECT_EQ(n->array[1].integer, -2);
  EXPECT_FALSE(n->array[2].integer);
  EXPECT_EQ(n->array[2].text, "3.5e1");
  EXPECT_FALSE(n->array[3].integer);  // out of range: text only
}

TEST(JsonParse, RefusesWhatIsNotStrictJson) {
  for (const char* bad : {"", " ", "{", "}", "[1,]", "{\"a\":1,}", "{'a':1}", "{\"a\" 1}", "01", "1.", "-", "+1",
                          ".5", "1e", "tru", "nul", "\"abc", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"",
                          "\"\\ud800\\u0041\"", "\"a\nb\"", "\"\xff\"", "\"\xc0\x80\"", "\"\xed\xa0\x80\"",
                          "{} {}", "[1] x", "{\"a\":1}}", "NaN", "Infinity"}) {
    std::string err;
    EXPECT_FALSE(parse(bad, &err)) << bad;
    EXPECT_FALSE(err.empty()) << bad;
  }
}

TEST(JsonParse, BoundsDepthSizeAndItems) {
  std::string err;
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_FALSE(parse(deep, &err));
  EXPECT_NE(err.find("deep"), std::string::npos) << err;
  ParseLimits l;
  l.max_bytes = 10;
  EXPECT_FALSE(parse("\"0123456789\"", &err, l));
  l = ParseLimits{};
  l.max_items = 3;
  EXPECT_TRUE(parse("[1,2,3]", &err, l));
  EXPECT_FALSE(parse("[1,2,3,4]", &err, l));
  // A 1 MiB string is read when within the size limit.
  const std::string big = "\"" + std::string(1 << 19, 'x') + "\"";
  const auto v = parse(big, &err);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->text.size(), 1u << 19);
}

}  // namespace
}  // namespace mtasts::json
