// The netstring reader, table-driven: whole, partial and pipelined input, the 10,000-byte
// limit enforced before the payload is read, and every malformation that must close the
// connection.
#include "tlsmap/netstring.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mtasts::tlsmap {
namespace {

struct Outcome {
  std::vector<std::string> payloads;  // complete netstrings, in order
  bool error = false;
  std::string why;
  std::size_t consumed = 0;
};

// Feeds `input` in chunks of `chunk` bytes (0: all at once), taking every complete netstring.
Outcome run(const std::string& input, std::size_t chunk = 0, std::size_t max = kMaxRequest) {
  NetstringReader r(max);
  Outcome o;
  std::size_t pos = 0;
  while (pos < input.size()) {
    const std::size_t n = chunk == 0 ? input.size() - pos : std::min(chunk, input.size() - pos);
    std::string_view piece(input.data() + pos, n);
    std::size_t off = 0;
    while (off < piece.size()) {
      off += r.feed(piece.substr(off));
      if (r.state() == NetstringReader::State::error) {
        o.error = true;
        o.why = r.error();
        o.consumed = pos + off;
        return o;
      }
      if (r.state() == NetstringReader::State::complete) o.payloads.push_back(r.take());
      else break;
    }
    pos += n;
  }
  o.consumed = pos;
  return o;
}

struct Row {
  const char* name;
  std::string input;
  std::vector<std::string> payloads;
  bool error;
  const char* why;  // substring of the error
};

TEST(NetstringReader, Table) {
  const std::string big(kMaxRequest, 'x');
  const std::vector<Row> rows = {
      {"one", "19:postfix example.com,", {"postfix example.com"}, false, ""},
      {"empty payload", "0:,", {""}, false, ""},
      {"pipelined", "3:abc,2:de,0:,", {"abc", "de", ""}, false, ""},
      {"leading zeros", "003:abc,", {"abc"}, false, ""},
      {"payload with comma and colon", "5:a,b:c,", {"a,b:c"}, false, ""},
      {"binary payload", std::string("3:\0\n\r,", 6), {std::string("\0\n\r", 3)}, false, ""},
      {"exactly the limit", std::to_string(kMaxRequest) + ":" + big + ",", {big}, false, ""},
      {"partial stays pending", "10:abc", {}, false, ""},
      {"over the limit", "10001:", {}, true, "longer than 10000"},
      {"huge length", "99999999999999999999:", {}, true, "longer than"},
      {"no length", ":abc,", {}, true, "without a length"},
      {"letter in length", "1a:abc,", {}, true, "bad netstring length"},
      {"space before length", " 3:abc,", {}, true, "bad netstring length"},
      {"missing comma", "3:abcd", {}, true, "not terminated"},
      {"good then bad", "3:abc,x", {"abc"}, true, "bad netstring length"},
      {"too many leading zeros", "00000000000001:a,", {}, true, "too long"},
  };
  for (const Row& row : rows) {
    for (std::size_t chunk : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{7}}) {
      SCOPED_TRACE(std::string(row.name) + " chunk=" + std::to_string(chunk));
      const Outcome o = run(row.input, chunk);
      EXPECT_EQ(o.payloads, row.payloads);
      EXPECT_EQ(o.error, row.error) << o.why;
      if (row.error) {
        EXPECT_NE(o.why.find(row.why), std::string::npos) << o.why;
      }
    }
  }
}

TEST(NetstringReader, RejectsAnOversizedLengthBeforeAnyPayloadByte) {
  // The client announces 20,000 bytes and sends them: the reader stops at the length, so not
  // one payload byte is taken in (the connection is closed without buffering it).
  NetstringReader r;
  const std::string input = "20000:" + std::string(20000, 'a') + ",";
  const std::size_t used = r.feed(input);
  EXPECT_EQ(r.state(), NetstringReader::State::error);
  EXPECT_LE(used, 5u);
}

TEST(NetstringReader, StopsAfterEachCompleteNetstring) {
  // The caller decides how many pipelined requests to take in.
  NetstringReader r;
  const std::string input = "1:a,1:b,";
  EXPECT_EQ(r.feed(input), 4u);
  EXPECT_EQ(r.state(), NetstringReader::State::complete);
  EXPECT_EQ(r.feed(std::string_view(input).substr(4)), 0u) << "nothing is consumed until take()";
  EXPECT_EQ(r.take(), "a");
  EXPECT_EQ(r.feed(std::string_view(input).substr(4)), 4u);
  EXPECT_EQ(r.take(), "b");
  EXPECT_TRUE(r.idle());
}

TEST(NetstringReader, IdleOnlyBetweenNetstrings) {
  NetstringReader r;
  EXPECT_TRUE(r.idle());
  r.feed("1");
  EXPECT_FALSE(r.idle());
}

TEST(Netstring, Encodes) {
  EXPECT_EQ(netstring("NOTFOUND "), "9:NOTFOUND ,");
  EXPECT_EQ(netstring(""), "0:,");
}

}  // namespace
}  // namespace mtasts::tlsmap
