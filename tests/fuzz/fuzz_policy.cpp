// libFuzzer target for the policy file parser: never crashes, a policy comes back exactly when
// there is no error, it keeps the RFC 8461 promises, and writing it out parses back the same.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/sts/policy.hpp"
#include "tests/fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  mtasts::PolicyParseResult r = mtasts::parse_policy(text);

  FUZZ_CHECK(r.policy.has_value() == r.errors.empty());
  std::size_t lines = 1;
  for (char c : text) lines += c == '\n';
  for (const auto& d : r.errors) FUZZ_CHECK(d.line <= lines && !d.message.empty());
  for (const auto& d : r.warnings) FUZZ_CHECK(d.line <= lines && !d.message.empty());
  if (!r.policy) return 0;

  const mtasts::Policy& p = *r.policy;
  FUZZ_CHECK(p.max_age.count() >= 0 && p.max_age <= mtasts::kMaxAgeLimit);
  FUZZ_CHECK(p.mode == mtasts::Mode::none || !p.mx.empty());
  FUZZ_CHECK(text.size() <= mtasts::kMaxPolicyBytes);

  std::string out = "version: STSv1\nmode: ";
  out += mtasts::to_string(p.mode);
  out += "\nmax_age: " + std::to_string(p.max_age.count()) + "\n";
  for (const auto& mx : p.mx) {
    out += "mx: " + mx.str() + "\n";
    // Each pattern matches a host of its own shape.
    std::string host = mx.wildcard() ? "mx" + mx.str().substr(1) : mx.str();
    FUZZ_CHECK(mx.matches(host) && p.mx_matches(host));
  }
  mtasts::PolicyParseResult again = mtasts::parse_policy(out);
  FUZZ_CHECK(again.policy.has_value() && again.errors.empty() && again.warnings.empty());
  FUZZ_CHECK(*again.policy == p);
  FUZZ_CHECK(!mtasts::summarize(p).empty());
  return 0;
}
