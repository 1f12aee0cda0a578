// libFuzzer target for the `_mta-sts` TXT parser. Input framing: '\n' separates records and
// NUL separates the character-strings of one record, so both levels get exercised.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/sts/txt_record.hpp"
#include "tests/fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> joined;
  if (size > 0) {
    records.emplace_back(1);
    joined.emplace_back();
  }
  for (size_t i = 0; i < size; ++i) {
    char c = static_cast<char>(data[i]);
    if (c == '\n') {
      records.emplace_back(1);
      joined.emplace_back();
    } else if (c == '\0') {
      records.back().emplace_back();
    } else {
      records.back().back().push_back(c);
      joined.back().push_back(c);
    }
  }

  mtasts::TxtResult r = mtasts::parse_sts_txt(records);
  switch (r.status) {
    case mtasts::TxtStatus::policy:
      FUZZ_CHECK(r.errors.empty());
      FUZZ_CHECK(!r.id.empty() && r.id.size() <= 32);
      for (char c : r.id) {
        FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
      }
      break;
    case mtasts::TxtStatus::invalid:
      FUZZ_CHECK(!r.errors.empty() && r.id.empty());
      break;
    case mtasts::TxtStatus::no_policy:
      FUZZ_CHECK(r.errors.empty() && r.id.empty());
      break;
  }

  // Splitting a record into strings never changes the meaning.
  mtasts::TxtResult j = mtasts::parse_sts_txt_records(joined);
  FUZZ_CHECK(j.status == r.status && j.id == r.id && j.errors == r.errors && j.warnings == r.warnings);

  // The id found is what a minimal record with that id yields.
  if (r.status == mtasts::TxtStatus::policy) {
    mtasts::TxtResult m = mtasts::parse_sts_txt_records({"v=STSv1; id=" + r.id});
    FUZZ_CHECK(m.status == mtasts::TxtStatus::policy && m.id == r.id);
  }
  return 0;
}
