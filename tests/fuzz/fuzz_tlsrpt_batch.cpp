// libFuzzer target for what mta-sts-reportd reads back from its spool and from Redis
// (common/tlsrpt/codec.hpp): Batch::decode, decode_detail, decode_policy. Decoding never
// crashes; what decodes is canonical (encoding it again gives the same text) and valid; a
// decoded batch's counts agree with each other.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/tlsrpt/batch.hpp"
#include "common/tlsrpt/codec.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace mtasts::tlsrpt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string error;
  if (auto b = Batch::decode(in, &error)) {
    FUZZ_CHECK(b->encode() == in);
    std::uint64_t sessions = 0, failures = 0, detailed = 0;
    for (const auto& [key, e] : b->entries()) {
      FUZZ_CHECK(e.policy.key() == key.policy_key);
      sessions += e.counts.success + e.counts.failure;
      failures += e.counts.failure;
      for (const auto& [d, n] : e.counts.details) {
        FUZZ_CHECK(valid_detail(d, nullptr) && n > 0);
        detailed += n;
      }
    }
    FUZZ_CHECK(sessions == b->sessions() && failures - detailed == b->dropped_details());
  } else {
    FUZZ_CHECK(!error.empty());
  }
  if (auto d = decode_detail(in, &error)) FUZZ_CHECK(encode_detail(*d) == in && valid_detail(*d, nullptr));
  if (auto p = decode_policy(in, &error)) FUZZ_CHECK(encode_policy(*p) == in && valid_policy(*p, nullptr));
  if (auto f = unescape_field(in)) FUZZ_CHECK(escape_field(*f) == in);
  return 0;
}
