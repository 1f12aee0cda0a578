// mta-sts-tlsmap's metrics: every reply the responder gives is counted once under its kind
// and dialect, whichever path answered it (no lookup, the inline local hit, a worker), and
// each lookup's latency under what answered it.
#include "tlsmap/metrics.hpp"

#include <gtest/gtest.h>

#include "tests/fakes/cache_entries.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/fake_lookup_source.hpp"
#include "tests/fakes/fake_resolver.hpp"
#include "tlsmap/responder.hpp"

namespace mtasts::tlsmap {
namespace {

using test::FakeClock;
using test::FakeLookupSource;
using test::FakeResolver;

std::uint64_t replies(std::size_t kind, std::size_t dialect) { return tlsmap_metrics().replies[kind][dialect]->value(); }
constexpr std::size_t kSecure = 0, kNotfound = 3, kTemp = 4, kPerm = 5;
constexpr std::size_t kPostfix = 0, kTlsrpt = 1, kSts = 2, kUnknown = 3;

std::uint64_t lookups(const char* source) {
  std::uint64_t n = 0;
  for (auto c : metrics::registry()
                    .histogram("mta_sts_tlsmap_lookup_duration_seconds", "", {{"source", source}})
                    .counts())
    n += c;
  return n;
}

TEST(TlsmapMetrics, EveryReplyIsCountedOnceByKindAndDialect) {
  FakeLookupSource source;
  FakeClock clock;
  FakeResolver dns;
  LookupOptions lo;
  lo.local_ttl = Seconds{60};
  PolicyLookup lookup{source, clock, lo};
  ReplyOptions opts;
  opts.dane = false;
  opts.on_unknown = TlsmapAction::defer;
  Responder responder{lookup, nullptr, clock, opts};
  source.set("example.com", test::policy_entry(Mode::enforce, "1", {"mx.example.com"}, clock.now()));
  (void)tlsmap_metrics();
  const std::uint64_t redis0 = lookups("redis"), local0 = lookups("local");

  EXPECT_EQ(responder.answer("postfix example.com").rfind("OK secure", 0), 0u);         // worker, from Redis
  EXPECT_EQ(responder.answer_fast("sts example.com").value_or("").rfind("OK secure", 0), 0u);  // inline, local hit
  EXPECT_EQ(responder.answer_fast("postfix-tlsrpt [192.0.2.1]"), "NOTFOUND ");           // no lookup
  EXPECT_EQ(responder.answer_fast("postfix unknown.example"), std::nullopt);             // not local: to a worker
  EXPECT_EQ(responder.answer("postfix unknown.example").rfind("TEMP", 0), 0u);           // on-unknown = defer
  EXPECT_EQ(responder.answer("nonsense example.com").rfind("PERM", 0), 0u);

  EXPECT_EQ(replies(kSecure, kPostfix), 1u);
  EXPECT_EQ(replies(kSecure, kSts), 1u);
  EXPECT_EQ(replies(kNotfound, kTlsrpt), 1u);
  EXPECT_EQ(replies(kTemp, kPostfix), 1u);  // the inline attempt that fell through is not a reply
  EXPECT_EQ(replies(kPerm, kUnknown), 1u);
  std::uint64_t all = 0;
  for (auto& row : tlsmap_metrics().replies)
    for (auto* c : row) all += c->value();
  EXPECT_EQ(all, 5u);
  EXPECT_EQ(lookups("redis") - redis0, 2u);  // example.com first, unknown.example
  EXPECT_EQ(lookups("local") - local0, 1u);
  EXPECT_EQ(metrics::registry().counter("mta_sts_tlsmap_misses_signalled_total", "").value(), 1u);
}

}  // namespace
}  // namespace mtasts::tlsmap
