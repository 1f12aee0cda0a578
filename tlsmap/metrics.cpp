// mta-sts-tlsmap's metrics; see metrics.hpp.
#include "tlsmap/metrics.hpp"

namespace mtasts::tlsmap {

namespace {
constexpr const char* kKindNames[TlsmapMetrics::kKinds] = {"secure", "dane", "dane-only", "notfound", "temp", "perm"};

TlsmapMetrics make() {
  TlsmapMetrics m;
  const char* dialects[TlsmapMetrics::kDialects] = {to_string(Dialect::postfix), to_string(Dialect::postfix_tlsrpt),
                                                    to_string(Dialect::sts), "unknown"};
  for (std::size_t k = 0; k < TlsmapMetrics::kKinds; ++k)
    for (std::size_t d = 0; d < TlsmapMetrics::kDialects; ++d)
      m.replies[k][d] = &metrics::registry().counter(
          "mta_sts_tlsmap_replies_total",
          "Socketmap replies by kind (secure, dane, dane-only, notfound, temp, perm) and map name (dialect).",
          {{"kind", kKindNames[k]}, {"dialect", dialects[d]}});
  return m;
}
}  // namespace

TlsmapMetrics& tlsmap_metrics() {
  static TlsmapMetrics m = make();
  return m;
}

void TlsmapMetrics::reply(std::string_view kind, std::optional<Dialect> dialect) noexcept {
  std::size_t d = kDialects - 1;
  if (dialect) {
    switch (*dialect) {
      case Dialect::postfix: d = 0; break;
      case Dialect::postfix_tlsrpt: d = 1; break;
      case Dialect::sts: d = 2; break;
    }
  }
  for (std::size_t k = 0; k < kKinds; ++k)
    if (kind == kKindNames[k]) replies[k][d]->inc();
}

}  // namespace mtasts::tlsmap
