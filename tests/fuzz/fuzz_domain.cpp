// libFuzzer target for Domain::parse: never crashes, and whatever it accepts keeps the
// promises of domain.hpp (lowercase LDH A-labels, lengths, idempotent, usable as an MX base).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/sts/domain.hpp"
#include "common/sts/mx_pattern.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

void check_name(const std::string& n) {
  FUZZ_CHECK(!n.empty() && n.size() <= 253);
  FUZZ_CHECK(n.front() != '.' && n.back() != '.');
  std::size_t labels = 1, len = 0;
  for (std::size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    if (c == '.') {
      FUZZ_CHECK(len >= 1 && n[i - 1] != '-');
      ++labels;
      len = 0;
      continue;
    }
    FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
    FUZZ_CHECK(len != 0 || c != '-');
    ++len;
    FUZZ_CHECK(len <= 63);
  }
  FUZZ_CHECK(labels >= 2 && n.back() != '-');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  mtasts::DomainParse p = mtasts::Domain::parse(text);
  if (!p.domain) {
    FUZZ_CHECK(!p.error.empty());
    return 0;
  }
  FUZZ_CHECK(p.error.empty() && !p.address_literal);
  const mtasts::Domain& d = *p.domain;
  check_name(d.str());
  FUZZ_CHECK(!mtasts::is_ip_address(d.str()));

  // Normalized once: parsing the normalized form changes nothing.
  mtasts::DomainParse again = mtasts::Domain::parse(d.str());
  FUZZ_CHECK(again.domain && *again.domain == d);
  FUZZ_CHECK(d.is_subdomain_of(d));

  // A valid domain is a valid MX pattern that matches it, whatever the case or trailing dot.
  std::string err;
  auto pat = mtasts::MxPattern::parse(d.str(), &err);
  FUZZ_CHECK(pat.has_value());
  FUZZ_CHECK(pat->matches(d.str()) && pat->matches(d.str() + "."));
  auto wild = mtasts::MxPattern::parse("*." + d.str(), &err);
  FUZZ_CHECK(wild.has_value() && wild->matches("mx." + d.str()) && !wild->matches(d.str()));
  return 0;
}
