// libFuzzer target for the cache-entry decoder, the most exposed parser (every host with write
// access to Redis can store an entry): never crashes, every decoded entry keeps the
// invariants, encodes back to bytes that decode to the same entry, and the freshness rules
// and the milter's header field never see a control character from it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/sts/cache_entry.hpp"
#include "tests/fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const mtasts::DecodeResult r = mtasts::decode(bytes);
  FUZZ_CHECK(r.entry.has_value() == r.error.empty());
  if (!r.entry) return 0;
  const mtasts::CacheEntry& e = *r.entry;
  FUZZ_CHECK(mtasts::check_invariants(e).empty());
  const mtasts::DecodeResult again = mtasts::decode(mtasts::encode(e));
  FUZZ_CHECK(again.entry.has_value() && *again.entry == e);
  if (e.policy) {
    FUZZ_CHECK(mtasts::valid_policy_id(e.policy->id));
    for (const auto& mx : e.policy->policy.mx)
      for (char c : mx.str()) FUZZ_CHECK(static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f);
  }
  // The rules are total over any decoded entry (times are bounded, so no overflow).
  const mtasts::RefreshRules rules;
  for (const auto now : {e.checked_at, e.next_refresh, mtasts::SysTime{}}) {
    (void)mtasts::verdict(e, now);
    (void)mtasts::may_retry(e, now, "abc");
    (void)mtasts::next_refresh_time(e, now, rules);
    FUZZ_CHECK(mtasts::redis_ttl(e, now, mtasts::Seconds{60}) >= mtasts::Seconds{1});
  }
  return 0;
}
