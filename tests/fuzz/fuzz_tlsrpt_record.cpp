// libFuzzer target for the `_smtp._tls` TXT record parser (RFC 8460 section 3). Input
// framing: '\n' separates the TXT records of one RRset. Promises checked: no crash, and
// whatever is accepted can go into a header and an argv as is.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/tlsrpt/record.hpp"
#include "tests/fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> records;
  std::size_t start = 0;
  while (start <= in.size()) {
    const std::size_t nl = in.find('\n', start);
    records.emplace_back(in.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }

  mtasts::tlsrpt::RecordParse one = mtasts::tlsrpt::parse_record(in);
  FUZZ_CHECK(one.record.has_value() == one.error.empty());
  mtasts::tlsrpt::RecordParse p = mtasts::tlsrpt::select_record(records);
  FUZZ_CHECK(p.record.has_value() == p.error.empty());
  FUZZ_CHECK(p.warnings.size() <= 13);
  for (const auto* r : {&one, &p}) {
    if (!r->record) continue;
    FUZZ_CHECK(!r->record->rua.empty() && r->record->rua.size() <= 10);
    for (const auto& u : r->record->rua) {
      FUZZ_CHECK(!u.target.empty() && u.uri.size() <= 1024);
      for (char c : u.target) {
        const auto b = static_cast<unsigned char>(c);
        FUZZ_CHECK(b > 0x20 && b < 0x7f);
        if (u.scheme == mtasts::tlsrpt::ReportUri::Scheme::mailto) {
          FUZZ_CHECK(std::string_view("<>,;:\"\\()[]").find(c) == std::string_view::npos);
        }
      }
      if (u.scheme == mtasts::tlsrpt::ReportUri::Scheme::mailto) {
        FUZZ_CHECK(u.target.front() != '-');
        FUZZ_CHECK(u.target.find('@') != std::string::npos);
      }
    }
  }
  return 0;
}
