// libFuzzer target for mta-sts-tlsmap's input side: the netstring reader and the request
// parser. Whatever a client sends: no crash; feeding byte by byte gives exactly what feeding
// at once gives; no payload over kMaxRequest is ever produced and an over-long length is
// refused before its payload is read; every payload re-encodes to a netstring that reads back the same;
// a request's domain keeps Domain's promises (lowercase LDH, no trailing dot).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_check.hpp"
#include "tlsmap/netstring.hpp"
#include "tlsmap/request.hpp"

namespace {

using mtasts::tlsmap::NetstringReader;

struct Run {
  std::vector<std::string> payloads;
  bool error = false;
  std::size_t consumed = 0;  // bytes taken, up to and including the error's byte
};

Run feed(std::string_view in, std::size_t chunk) {
  NetstringReader r;
  Run out;
  std::size_t pos = 0;
  while (pos < in.size()) {
    const std::size_t used = r.feed(in.substr(pos, chunk));
    FUZZ_CHECK(used <= chunk);
    pos += used;
    if (r.state() == NetstringReader::State::error) {
      out.error = true;
      break;
    }
    if (r.state() == NetstringReader::State::complete) {
      std::string p = r.take();
      FUZZ_CHECK(p.size() <= mtasts::tlsmap::kMaxRequest);
      out.payloads.push_back(std::move(p));
    } else {
      FUZZ_CHECK(used == std::min(chunk, in.size() - (pos - used)));
    }
  }
  out.consumed = pos;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const Run whole = feed(in, in.size() + 1);
  const Run bytes = feed(in, 1);
  FUZZ_CHECK(whole.payloads == bytes.payloads);
  FUZZ_CHECK(whole.error == bytes.error);
  FUZZ_CHECK(whole.consumed == bytes.consumed);

  // The payloads re-encode to netstrings that read back the same (leading zeros of a
  // length are not kept, so the bytes may differ).
  std::string again;
  for (const auto& p : whole.payloads) again += mtasts::tlsmap::netstring(p);
  const Run reread = feed(again, again.size() + 1);
  FUZZ_CHECK(!reread.error);
  FUZZ_CHECK(reread.payloads == whole.payloads);

  for (const auto& p : whole.payloads) {
    const auto req = mtasts::tlsmap::parse_request(p);
    if (req.domain) {
      const std::string& d = req.domain->str();
      FUZZ_CHECK(!d.empty() && d.size() <= 253 && d.back() != '.' && d.front() != '.');
      for (char c : d) FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.');
      FUZZ_CHECK(req.dialect.has_value());
    }
  }
  return 0;
}
