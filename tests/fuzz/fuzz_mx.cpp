// libFuzzer target for MX patterns: input is "<pattern>\n<host>". Parsing and matching never
// crash, the canonical form is stable, and matching an ASCII host ignores case and one
// trailing dot.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/sts/mx_pattern.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {
std::string upper(std::string_view s) {
  std::string o(s);
  for (char& c : o) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return o;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::size_t nl = in.find('\n');
  std::string_view pattern = in.substr(0, nl);
  std::string_view host = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);

  std::string err;
  bool dot = false;
  auto p = mtasts::MxPattern::parse(pattern, &err, &dot);
  if (!p) {
    FUZZ_CHECK(!err.empty());
    return 0;
  }
  std::string canon = p->str();
  auto again = mtasts::MxPattern::parse(canon, &err, &dot);
  FUZZ_CHECK(again && *again == *p && !dot && again->str() == canon);

  bool m = p->matches(host);
  bool ascii = true;
  for (char c : host) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  // A host in Unicode form is compared as its A-label (RFC 6125): its bytes are not the
  // pattern's, and a Unicode full stop may stand for its trailing dot. The ASCII rules below
  // are checked on ASCII hosts.
  if (!ascii) return 0;
  FUZZ_CHECK(p->matches(upper(host)) == m);
  if (host.empty() || host.back() != '.') FUZZ_CHECK(p->matches(std::string(host) + ".") == m);
  if (m) {
    std::string_view h = host;
    if (!h.empty() && h.back() == '.') h.remove_suffix(1);
    // An exact pattern matches only its own length; "*." stands for at least one character.
    FUZZ_CHECK(p->wildcard() ? h.size() >= canon.size() : h.size() == canon.size());
  }
  return 0;
}
