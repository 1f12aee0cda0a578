// The `_mta-sts.<domain>` TXT record parser (RFC 8461 section 3.1). Pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mtasts {

enum class TxtStatus {
  policy,     // exactly one valid STSv1 record: `id` is set
  no_policy,  // no record begins with "v=STSv1;" (or the RRset is empty)
  invalid,    // several STSv1 records, or the one STSv1 record is malformed
};

struct TxtResult {
  TxtStatus status = TxtStatus::no_policy;
  std::string id;                     // when status == policy
  std::vector<std::string> errors;    // why status is invalid
  std::vector<std::string> warnings;  // e.g. a repeated id (first wins), non-STS records ignored
};

// One element per TXT record of the RRset; each record is the list of its
// character-strings, concatenated with nothing in between.
TxtResult parse_sts_txt(const std::vector<std::vector<std::string>>& records);

// Convenience: one string per record (strings already concatenated).
TxtResult parse_sts_txt_records(const std::vector<std::string>& records);

const char* to_string(TxtStatus s) noexcept;

}  // namespace mtasts
