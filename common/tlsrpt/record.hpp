// The TLSRPT policy record (RFC 8460 section 3): TXT at `_smtp._tls.<domain>`,
// "v=TLSRPTv1; rua=<uri>[,<uri>...]" with mailto: and https: URIs. Parsed as hostile input.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mtasts::tlsrpt {

struct ReportUri {
  enum class Scheme { mailto, https };
  Scheme scheme = Scheme::mailto;
  std::string uri;      // as published (validated: no control characters, bounded length)
  std::string target;   // mailto: the addr-spec (no header fields, no injection characters);
                        // https: the URL
  friend bool operator==(const ReportUri&, const ReportUri&) = default;
};

struct Record {
  std::vector<ReportUri> rua;  // the usable URIs, in published order, bounded in number
  friend bool operator==(const Record&, const Record&) = default;
};

struct RecordParse {
  std::optional<Record> record;  // set when the text is one valid record
  std::string error;             // why not
  std::vector<std::string> warnings;  // URIs skipped (unknown scheme, bad address, over the cap)
  bool found = false;          // select_record: some record begins with "v=TLSRPTv1" (no record
                               // at all is the common case; an invalid one is worth a warning)
  std::size_t skipped = 0;     // rua URIs not used (whatever the number of warnings kept)
};

// One TXT record's text (the strings of one record already concatenated).
RecordParse parse_record(std::string_view txt);

// All TXT records found at `_smtp._tls.<domain>`: exactly one that starts with "v=TLSRPTv1"
// must exist and be valid (RFC 8460 section 3: otherwise no report is sent).
RecordParse select_record(const std::vector<std::string>& txts);

}  // namespace mtasts::tlsrpt
