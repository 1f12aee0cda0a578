// libFuzzer target for envelope recipient parsing (the milter's RCPT step): never crashes,
// and a domain it returns is a normalized name (the mtasts::Domain promise) or nothing, with
// a reason.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "milter/recipient.hpp"
#include "tests/fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const mtasts::milter::RecipientDomain r = mtasts::milter::recipient_domain(text);
  if (!r.domain) {
    FUZZ_CHECK(!r.reason.empty());
    return 0;
  }
  const std::string& d = r.domain->str();
  FUZZ_CHECK(!d.empty() && d.size() <= 253 && d.back() != '.');
  for (char c : d) FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.');
  // Normalized means stable: parsing the result gives it back.
  const mtasts::DomainParse again = mtasts::Domain::parse(d);
  FUZZ_CHECK(again.domain && *again.domain == *r.domain);
  return 0;
}
