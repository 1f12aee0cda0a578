// libFuzzer target for mta-sts-tlsmap's netstring reader (read-only use of tlsmap/): fed in
// arbitrary pieces, never crashes, never holds more than its limit, and what it completes is
// exactly a netstring of the input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_check.hpp"
#include "tlsmap/netstring.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte chooses the piece size, so that every split of the stream is exercised.
  const std::size_t piece = 1 + data[0] % 16;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  mtasts::tlsmap::NetstringReader r(64);
  std::size_t pos = 0;
  while (pos < in.size()) {
    const std::string_view chunk = in.substr(pos, piece);
    const std::size_t took = r.feed(chunk);
    FUZZ_CHECK(took <= chunk.size());
    pos += took;
    if (r.state() == mtasts::tlsmap::NetstringReader::State::error) {
      FUZZ_CHECK(!r.error().empty());
      FUZZ_CHECK(r.feed(in.substr(pos)) == 0);  // sticky
      break;
    }
    if (r.state() == mtasts::tlsmap::NetstringReader::State::complete) {
      const std::string payload = r.take();
      FUZZ_CHECK(payload.size() <= 64);
      // The payload is the bytes just before the closing comma.
      FUZZ_CHECK(pos >= payload.size() + 2 && in[pos - 1] == ',');
      FUZZ_CHECK(in.substr(pos - 1 - payload.size(), payload.size()) == payload);
      FUZZ_CHECK(!mtasts::tlsmap::netstring(payload).empty());
      continue;
    }
    FUZZ_CHECK(took == chunk.size());  // need_more consumed all it was given
  }
  return 0;
}
